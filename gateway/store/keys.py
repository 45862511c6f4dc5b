"""Every Redis key name the gateway uses, built in one place.

Keys of one entity share a hash tag (the part in braces): a notice ``{ntc_x}``, a job
``{job_x}``, a plate, a binding request, a carrier message id. A script about one entity then
touches one Redis Cluster slot. The Lua scripts that must find a key themselves (see
``gateway.store.scripts``) get builders rendered from these same methods.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "gw"

    def notice(self, notice_id: str) -> str:
        return f"{self.prefix}:n:{{{notice_id}}}"

    def history(self, notice_id: str) -> str:
        return f"{self.prefix}:n:{{{notice_id}}}:h"

    def submitted_parts(self, notice_id: str) -> str:
        return f"{self.prefix}:n:{{{notice_id}}}:sub"

    def receipt_parts(self, notice_id: str) -> str:
        """The final status of each part of a notice of several parts."""
        return f"{self.prefix}:n:{{{notice_id}}}:dlr"

    def idempotency(self, key_id: str, idem_key: str) -> str:
        return f"{self.prefix}:idem:{{{key_id}:{idem_key}}}"

    def carrier_id(self, scope: str, smsc_message_id: str) -> str:
        """A part a carrier id stands for. Ids are unique within one SMSC only (``scope``,
        ``SmppLink.id_space``): two carriers may hand out the same one."""
        return f"{self.prefix}:smsc:{{{scope}/{smsc_message_id}}}"

    @property
    def awaiting_receipts(self) -> str:
        """Submitted SMS notices, scored by when their receipt is overdue."""
        return f"{self.prefix}:sms:awaiting-receipts"

    def early_receipt(self, scope: str, smsc_message_id: str) -> str:
        """A receipt that arrived before its carrier id was recorded."""
        return f"{self.prefix}:smsc:{{{scope}/{smsc_message_id}}}:early"

    @property
    def receipts_parked(self) -> str:
        """Parked receipts by the time they came (sorted set of their summaries)."""
        return f"{self.prefix}:smsc:parked"

    @property
    def receipts_unmatched(self) -> str:
        """Parked receipts that no carrier id claimed in time: listed for admins."""
        return f"{self.prefix}:smsc:unmatched"

    def sent_today(self, to: str, day: str) -> str:
        """Reminders sent to one recipient on one day (the daily cap)."""
        return f"{self.prefix}:cap:{{{to}}}:{day}"

    def recent_reminder(self, template: str, to: str) -> str:
        """A recipient got this template lately (duplicate suppression across jobs)."""
        return f"{self.prefix}:dedup:{{{to}}}:{template}"

    def api_key(self, key_hash: str) -> str:
        return f"{self.prefix}:apikey:{key_hash}"

    @property
    def api_key_index(self) -> str:
        return f"{self.prefix}:apikeys"

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
        return f"{self.prefix}:plate:{{{plate}}}:binding"

    @property
    def binding_audit(self) -> str:
        return f"{self.prefix}:binding-audit"

    def binding_audit_of(self, plate: str) -> str:
        return f"{self.prefix}:plate:{{{plate}}}:audit"

    def plate_calls(self, plate: str) -> str:
        """Parking notices for a plate in the last hour (zset: notice id -> ms)."""
        return f"{self.prefix}:plate:{{{plate}}}:calls"

    @property
    def api_key_events(self) -> str:
        """Pub/sub channel: a key was revoked or changed (its hash), for API caches."""
        return f"{self.prefix}:apikeys:changed"

    def binding_request(self, ref: str) -> str:
        return f"{self.prefix}:breq:{{{ref}}}"

    def binding_requests_per_day(self, phone: str, day: str) -> str:
        return f"{self.prefix}:breq-day:{{{phone}}}:{day}"

    def warnings(self, plate: str) -> str:
        """The plate's warning slips (strikes): notice id -> when, over the policy window."""
        return f"{self.prefix}:plate:{{{plate}}}:warnings"

    def latest_alert(self, phone: str) -> str:
        """The latest accident alert to a reporter, while a reply to it is still matched."""
        return f"{self.prefix}:alert:{{{phone}}}:latest"

    @property
    def follow_ups_due(self) -> str:
        """Parking notices by the time a missing follow-up is counted (deadline + 2 h)."""
        return f"{self.prefix}:follow-ups-due"

    def figures(self, bucket: str) -> str:
        """The figures of /v1/stats: one hash per hour since the epoch, and ``total``."""
        return f"{self.prefix}:figures:{bucket}"

    @property
    def audit_log(self) -> str:
        """Who notified whom: every notice created and every follow-up (a stream)."""
        return f"{self.prefix}:audit"

    @property
    def events(self) -> str:
        """Every status change and gateway event, capped: GET /v1/events/stream reads it."""
        return f"{self.prefix}:events"

    def console_session(self, session_hash: str) -> str:
        """A console login: key hash, role, CSRF token (hash; TTL: the idle timeout)."""
        return f"{self.prefix}:console:{{{session_hash}}}"

    @property
    def accident_replies(self) -> str:
        """The latest replies to accident alerts, newest first (a capped list)."""
        return f"{self.prefix}:accident-replies"

    @property
    def jobs_recent(self) -> str:
        """Reminder jobs by when they were made (the newest few hundred, for the console)."""
        return f"{self.prefix}:jobs:recent"

    @property
    def suspected_clones(self) -> str:
        return f"{self.prefix}:suspected-clones"

    @property
    def voice_queue(self) -> str:
        return f"{self.prefix}:q:voice"

    @property
    def voice_bulk_queue(self) -> str:
        return f"{self.prefix}:q:voice-bulk"

    @property
    def voice_retry(self) -> str:
        return f"{self.prefix}:voice:retry"

    @property
    def active_calls(self) -> str:
        return f"{self.prefix}:voice:active"

    @property
    def sms_queue(self) -> str:
        return f"{self.prefix}:q:sms"

    @property
    def sms_bulk_queue(self) -> str:
        return f"{self.prefix}:q:sms-bulk"

    @property
    def email_queue(self) -> str:
        return f"{self.prefix}:q:email"

    @property
    def mo_queue(self) -> str:
        return f"{self.prefix}:q:mo"

    def mo_parts(self, source: str, reference: int) -> str:
        """The parts so far of a concatenated MO message (hash: seq -> text)."""
        return f"{self.prefix}:mo-parts:{source}:{reference}"

    @property
    def opt_outs(self) -> str:
        return f"{self.prefix}:optout"

    def job(self, job_id: str) -> str:
        return f"{self.prefix}:job:{{{job_id}}}"

    def job_rows(self, job_id: str) -> str:
        return f"{self.prefix}:job:{{{job_id}}}:rows"

    def job_counts(self, job_id: str) -> str:
        return f"{self.prefix}:job:{{{job_id}}}:counts"

    def job_bad_rows(self, job_id: str) -> str:
        return f"{self.prefix}:job:{{{job_id}}}:bad"

    def job_lease(self, job_id: str) -> str:
        return f"{self.prefix}:job:{{{job_id}}}:lease"

    @property
    def jobs_active(self) -> str:
        return f"{self.prefix}:jobs:active"

    @property
    def jobs_cancelled(self) -> str:
        return f"{self.prefix}:jobs:cancelled"

    @property
    def webhook_queue(self) -> str:
        return f"{self.prefix}:q:webhooks"

    @property
    def webhook_retry(self) -> str:
        return f"{self.prefix}:webhooks:retry"

    @property
    def webhook_dead(self) -> str:
        return f"{self.prefix}:webhooks:dead"

    def smpp_bound(self, consumer: str) -> str:
        return f"{self.prefix}:smpp:bound:{consumer}"

    @property
    def smpp_bound_pattern(self) -> str:
        return f"{self.prefix}:smpp:bound:*"
