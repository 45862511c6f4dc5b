"""Every Redis key name the gateway uses, built in one place.

Keys carry a hash tag (the part in braces), so that every key one Lua script or one MULTI
touches is in one Redis Cluster slot (docs/redis-cluster.md). That tag is a **lane**'s,
``{<prefix>.L<i>}``: the keys of a notice, a job, a plate, a binding request, a carrier
message id, and the shared queues, outbox, sets, streams and figures the scripts write with
them. The shared ones are kept once per lane (``sms_queue(lane)`` ...), and a script writes
those of the lane of the entity it works on. Which lane an entity is in: a notice's is
written in its id (``notice_lane``), a recipient's and a plate's are hashed
(``recipient_lane``, ``plate_lane``), a binding request's is its reference modulo the lanes
(``ref_lane``), a reminder job's is hashed from its id (``job_lane``) and each of its rows is
admitted in its recipient's lane, where that lane's part of the job's progress is kept
(``job(job_id, lane)``, ``job_counts(job_id, lane)``). With one lane every such key is in one
slot, on one cluster shard.
Keys used only alone or with keys of the same owner keep their own tag (API keys, rate
limiters, console sessions) or none (heartbeats, bound SMPP sessions). The Lua scripts that
must find a key themselves (see ``gateway.store.scripts``) get builders rendered from these
same methods.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass


def hashed_lane(entity: str, lanes: int) -> int:
    """An entity's lane by its name (CRC-32 modulo ``lanes``): the same in every process."""
    return zlib.crc32(entity.encode()) % lanes if lanes > 1 else 0


class _Named:
    """A key of the gateway's that takes no argument and is in no lane:
    ``<prefix>:{<prefix>.<tag>}:<suffix>`` for one with its own ``tag``; ``<prefix>:<suffix>``
    for one in no slot of its own (``tag=""``: a pub/sub channel, a pattern)."""

    def __init__(self, suffix: str, tag: str) -> None:
        self.suffix = suffix
        self.tag = tag

    def __get__(self, keys: Keys, owner: type | None = None) -> str:
        if self.tag:
            return f"{keys.prefix}:{{{keys.prefix}.{self.tag}}}:{self.suffix}"
        return f"{keys.prefix}:{self.suffix}"


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "gw"
    # How many lanes the shared structures (queues, outbox, sets, streams, figures) are kept
    # in; readers and consumers walk them all (``each_lane``). Fixed for a deployment.
    lanes: int = 1

    def each_lane(self) -> range:
        return range(self.lanes)

    def notice_lane(self, notice_id: str) -> int:
        """The lane written in a notice id: its last byte (two hex digits) modulo ``lanes``
        (``notice_id_in_lane`` picks it). Anyone holding the id finds the notice's keys."""
        if self.lanes == 1:
            return 0
        try:
            return int(notice_id[-2:], 16) % self.lanes
        except ValueError:
            return 0

    def stamp_lane(self, random_hex: str, lane: int) -> str:
        """``random_hex`` (a notice id's tail) with its last byte moved to one that is
        ``lane`` modulo ``lanes``, so that ``notice_lane`` reads ``lane`` from it."""
        if not 0 <= lane < self.lanes:
            raise ValueError(f"lane {lane} is not one of {self.lanes}")
        if self.lanes == 1:
            return random_hex
        b = int(random_hex[-2:], 16)
        b = b - b % self.lanes + lane
        if b > 255:
            b -= self.lanes
        return f"{random_hex[:-2]}{b:02x}"

    def recipient_lane(self, to: str) -> int:
        """The lane of a recipient (a national number or an address): the notices sent to
        them (but a plate's), a job's rows for them, their latest-alert mark, their MO parts."""
        return hashed_lane(to, self.lanes)

    def carrier_lane(self, smsc_message_id: str) -> int:
        """Where a receipt whose notice is not known yet is parked: the carrier id's lane."""
        return hashed_lane(smsc_message_id, self.lanes)

    def plate_lane(self, plate: str) -> int:
        """The lane of a plate's keys (binding, warning slips, calls, audit), its parking
        notices and its binding requests (whose reference names the lane: ``ref_lane``)."""
        return hashed_lane(plate, self.lanes)

    def ref_lane(self, ref: str) -> int:
        """The lane of a binding request: its reference (digits) modulo ``lanes``; the
        reference is picked for its plate's lane (``new_ref``)."""
        if self.lanes == 1:
            return 0
        if ref.isascii() and ref.isdigit():
            return int(ref) % self.lanes
        return hashed_lane(ref, self.lanes)

    def job_lane(self, job_id: str) -> int:
        """The lane of a reminder job's own keys (the job, its rows, bad rows and lease). Its
        rows' notices, their recipients' daily cap and duplicate keys, and the counts and
        ``done`` of those rows are in each recipient's lane."""
        return hashed_lane(job_id, self.lanes)

    def lane_tag(self, lane: int) -> str:
        return f"{{{self.prefix}.L{lane}}}"

    def in_lane(self, lane: int) -> str:
        """The start of every key in ``lane``: ``<prefix>:{<prefix>.L<lane>}:``."""
        return f"{self.prefix}:{self.lane_tag(lane)}:"

    def notice(self, notice_id: str) -> str:
        return f"{self.in_lane(self.notice_lane(notice_id))}n:{notice_id}"

    def history(self, notice_id: str) -> str:
        return f"{self.in_lane(self.notice_lane(notice_id))}n:{notice_id}:h"

    def submitted_parts(self, notice_id: str) -> str:
        return f"{self.in_lane(self.notice_lane(notice_id))}n:{notice_id}:sub"

    def receipt_parts(self, notice_id: str) -> str:
        """The final status of each part of a notice of several parts."""
        return f"{self.in_lane(self.notice_lane(notice_id))}n:{notice_id}:dlr"

    def notice_step(self, notice_id: str) -> dict[str, str]:
        """The keys every step on a notice writes (a script's ``notice, history, webhooks,
        events``): the notice's own, and its lane's outbox and events."""
        lane = self.notice_lane(notice_id)
        return {
            "notice": self.notice(notice_id),
            "history": self.history(notice_id),
            "webhooks": self.webhook_queue(lane),
            "events": self.events(lane),
        }

    def idempotency(self, key_id: str, idem_key: str, lane: int) -> str:
        """The notice made with an idempotency key: in the notice's lane."""
        return f"{self.in_lane(lane)}idem:{key_id}:{idem_key}"

    def idempotency_lane(self, key_id: str, idem_key: str) -> str:
        """The lane an idempotency key's notice was made in (with several lanes: written
        before the notice, so that a replay finds its record)."""
        return f"{self.prefix}:idem-lane:{{{key_id}:{idem_key}}}"

    def carrier_id(self, scope: str, smsc_message_id: str, lane: int) -> str:
        """A part a carrier id stands for, in its notice's ``lane``. Ids are unique within
        one SMSC only (``scope``, ``SmppLink.id_space``): two carriers may hand out the same
        one."""
        return f"{self.in_lane(lane)}smsc:{scope}/{smsc_message_id}"

    # Submitted SMS notices, scored by when their receipt is overdue.
    def awaiting_receipts(self, lane: int) -> str:
        return f"{self.in_lane(lane)}sms:awaiting-receipts"

    def early_receipt(self, scope: str, smsc_message_id: str, lane: int) -> str:
        """A receipt that arrived before its carrier id was recorded, parked in ``lane``: its
        notice's when known, else its carrier id's (``carrier_lane``)."""
        return f"{self.in_lane(lane)}smsc:{scope}/{smsc_message_id}:early"

    # Parked receipts by the time they came (sorted set of their summaries).
    def receipts_parked(self, lane: int) -> str:
        return f"{self.in_lane(lane)}smsc:parked"

    # Parked receipts that no carrier id claimed in time: listed for admins.
    def receipts_unmatched(self, lane: int) -> str:
        return f"{self.in_lane(lane)}smsc:unmatched"

    def sent_today(self, to: str, day: str) -> str:
        """Reminders sent to one recipient on one day (the daily cap)."""
        return f"{self.in_lane(self.recipient_lane(to))}cap:{to}:{day}"

    def recent_reminder(self, template: str, to: str) -> str:
        """A recipient got this template lately (duplicate suppression across jobs)."""
        return f"{self.in_lane(self.recipient_lane(to))}dedup:{to}:{template}"

    def api_key(self, key_hash: str) -> str:
        return f"{self.prefix}:{{{self.prefix}.apikeys}}:key:{key_hash}"

    api_key_index = _Named("index", tag="apikeys")  # with api_key in one MULTI

    def rate(self, name: str) -> str:
        return f"{self.prefix}:rate:{name}"

    def link_rate(self, link: str) -> str:
        """An SMPP link's GCRA limiter (its rate is ``link_rate_state``'s)."""
        return f"{self.prefix}:rate:{{{link}}}"

    def link_rate_state(self, link: str) -> str:
        """An SMPP link's current rate after the SMSC's throttling (AIMD), when below its tps."""
        return f"{self.prefix}:rate:{{{link}}}:aimd"

    def heartbeat(self, group: str, consumer: str) -> str:
        return f"{self.prefix}:hb:{group}:{consumer}"

    def binding(self, plate: str) -> str:
        return f"{self.in_lane(self.plate_lane(plate))}plate:{plate}:binding"

    def binding_audit(self, lane: int) -> str:
        return f"{self.in_lane(lane)}binding-audit"

    def binding_audit_of(self, plate: str) -> str:
        return f"{self.in_lane(self.plate_lane(plate))}plate:{plate}:audit"

    def plate_calls(self, plate: str) -> str:
        """Parking notices for a plate in the last hour (zset: notice id -> ms)."""
        return f"{self.in_lane(self.plate_lane(plate))}plate:{plate}:calls"

    # Pub/sub channel: a key was revoked or changed (its hash), for API caches.
    api_key_events = _Named("apikeys:changed", tag="")

    def binding_request(self, ref: str) -> str:
        return f"{self.in_lane(self.ref_lane(ref))}breq:{ref}"

    def binding_requests_per_day(self, phone: str, day: str) -> str:
        """A phone's binding requests today: a key of its own (the phone's requests are for
        plates in any lane), counted before a request is opened."""
        return f"{self.prefix}:breq-day:{{{phone}}}:{day}"

    def warnings(self, plate: str) -> str:
        """The plate's warning slips (strikes): notice id -> when, over the policy window."""
        return f"{self.in_lane(self.plate_lane(plate))}plate:{plate}:warnings"

    def latest_alert(self, phone: str) -> str:
        """The latest accident alert to a reporter, while a reply to it is still matched."""
        return f"{self.in_lane(self.recipient_lane(phone))}alert:{phone}:latest"

    # Parking notices by the time a missing follow-up is counted (deadline + 2 h).
    def follow_ups_due(self, lane: int) -> str:
        return f"{self.in_lane(lane)}follow-ups-due"

    def figures(self, bucket: str, lane: int = 0) -> str:
        """The figures of /v1/stats: one hash per hour since the epoch, and ``total``; each
        lane's scripts count in its own (the readers sum the lanes)."""
        return f"{self.in_lane(lane)}figures:{bucket}"

    # Who notified whom: every notice created and every follow-up (a stream).
    def audit_log(self, lane: int) -> str:
        return f"{self.in_lane(lane)}audit"

    # Every status change and gateway event, capped: GET /v1/events/stream reads it.
    def events(self, lane: int) -> str:
        return f"{self.in_lane(lane)}events"

    def console_session(self, session_hash: str) -> str:
        """A console login: key hash, role, CSRF token (hash; TTL: the idle timeout)."""
        return f"{self.prefix}:console:{{{session_hash}}}"

    # The latest replies to accident alerts, newest first (a capped list).
    def accident_replies(self, lane: int) -> str:
        return f"{self.in_lane(lane)}accident-replies"

    # Reminder jobs by when they were made (the newest few hundred, for the console).
    def jobs_recent(self, lane: int) -> str:
        return f"{self.in_lane(lane)}jobs:recent"

    def suspected_clones(self, lane: int) -> str:
        return f"{self.in_lane(lane)}suspected-clones"

    def voice_queue(self, lane: int) -> str:
        return f"{self.in_lane(lane)}q:voice"

    def voice_bulk_queue(self, lane: int) -> str:
        return f"{self.in_lane(lane)}q:voice-bulk"

    def voice_retry(self, lane: int) -> str:
        return f"{self.in_lane(lane)}voice:retry"

    # Call slots taken, scored by when each expires: one key for every lane, as the limit
    # (GATEWAY_MAX_CALLS) is the whole gateway's.
    active_calls = _Named("voice:active", tag="calls")

    def sms_queue(self, lane: int) -> str:
        return f"{self.in_lane(lane)}q:sms"

    def sms_bulk_queue(self, lane: int) -> str:
        return f"{self.in_lane(lane)}q:sms-bulk"

    def email_queue(self, lane: int) -> str:
        return f"{self.in_lane(lane)}q:email"

    def mo_queue(self, lane: int) -> str:
        return f"{self.in_lane(lane)}q:mo"

    def mo_parts(self, source: str, reference: int) -> str:
        """The parts so far of a concatenated MO message (hash: seq -> text)."""
        return f"{self.in_lane(self.recipient_lane(source))}mo-parts:{source}:{reference}"

    def opt_outs(self, lane: int) -> str:
        return f"{self.in_lane(lane)}optout"

    def job(self, job_id: str, lane: int | None = None) -> str:
        """The job's hash in its own lane; with ``lane``, that lane's part of its progress (a
        hash of ``done`` and ``lane_cursor``: the rows admitted there). In the job's own lane
        the two are one hash."""
        return f"{self.in_lane(self.job_lane(job_id) if lane is None else lane)}job:{job_id}"

    def job_rows(self, job_id: str) -> str:
        return f"{self.in_lane(self.job_lane(job_id))}job:{job_id}:rows"

    def job_counts(self, job_id: str, lane: int | None = None) -> str:
        """The rows per status, of the rows admitted in ``lane`` (by default the job's)."""
        lane = self.job_lane(job_id) if lane is None else lane
        return f"{self.in_lane(lane)}job:{job_id}:counts"

    def job_bad_rows(self, job_id: str) -> str:
        return f"{self.in_lane(self.job_lane(job_id))}job:{job_id}:bad"

    def job_lease(self, job_id: str) -> str:
        return f"{self.in_lane(self.job_lane(job_id))}job:{job_id}:lease"

    def jobs_active(self, lane: int) -> str:
        return f"{self.in_lane(lane)}jobs:active"

    def jobs_cancelled(self, lane: int) -> str:
        return f"{self.in_lane(lane)}jobs:cancelled"

    def webhook_queue(self, lane: int) -> str:
        return f"{self.in_lane(lane)}q:webhooks"

    def webhook_retry(self, lane: int) -> str:
        return f"{self.in_lane(lane)}webhooks:retry"

    def webhook_dead(self, lane: int) -> str:
        return f"{self.in_lane(lane)}webhooks:dead"

    # The SMPP links bound now: consumer -> until when (ms) its worker says so (a sorted set
    # the readiness probe reads with one range; no scan of the keyspace).
    smpp_bound = _Named("smpp:bound", tag="links")

    # How many lanes the store is kept in, written by the first process (lane_count.py).
    lane_count = _Named("lanes", tag="")
