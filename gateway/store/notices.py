"""Notices in Redis: atomic creation with idempotency, status transitions and outcomes."""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from gateway.core.audit import audit_entry
from gateway.core.records import Notice, QueueEntry
from gateway.core.statuses import NoticeStatus
from gateway.store.batch import ScriptBatcher
from gateway.store.keys import Keys
from gateway.store.notice_scripts import (
    CreateExtras,
    CreateOutcome,
    CreateResult,
    Fallback,
    NoticeScripts,
    OutcomeResult,
)
from gateway.store.replicas import NO_WAIT, ReplicaWait
from gateway.store.sms_writes import SmsWrites

log = logging.getLogger(__name__)

RETENTION_SECONDS = 30 * 24 * 3600
# Redis serves no one else while a script runs: time an accident alert's commands may wait.
# 40 events took 0.6-0.8 ms at the median in the slow log (1.0 ms, up to 4.9, while the host
# was slow; 100 took 1.5 ms). With 20, and the smaller admission slices and stream reads that
# came with them, a PING's p99 under a bulk job fell from 4.5-6.0 ms to 3.3 ms.
SMS_EVENTS_PER_CALL = 50
# A parking notice with no follow-up this long after its deadline counts as missing one.
FOLLOW_UP_MISSING_AFTER_MS = 2 * 3600 * 1000
# The latest-alert mark outlives the reply window by this much: an MO is matched by when it
# was received, and the MO handler may read it late (the window itself is checked exactly).
MO_LATENESS_S = 3600


def notice_counters(notice: Notice) -> list[str]:
    """The figures a new notice adds 1 to (gateway.core.figures)."""
    if notice.kind == "parking_notice":
        return ["parking:notices"]
    if notice.kind == "accident_alert":
        return [f"accident:{notice.accident_type}:alerts"]
    return []


_last_iso: tuple[int, str] = (0, "")


def now_iso() -> str:
    """UTC timestamp with milliseconds, as used in history and webhooks (formatted once per
    millisecond: the SMS path asks for it several times per message)."""
    global _last_iso
    ms = time.time_ns() // 1_000_000
    if _last_iso[0] != ms:
        stamp = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
        _last_iso = (ms, stamp.replace("+00:00", "Z"))
    return _last_iso[1]


def new_notice_id(keys: Keys | None = None, lane: int = 0) -> str:
    """Time-ordered, unguessable id: ``ntc_`` + ms timestamp (base 36) + 64 random bits, the
    last byte of which names the store ``lane`` of ``keys`` the notice is kept in."""
    ms = int(time.time() * 1000)
    tail = secrets.token_hex(8)
    if keys is None:
        if lane:
            raise ValueError("a notice id for a lane needs the Keys that have it")
        return f"ntc_{_b36(ms)}{tail}"
    return f"ntc_{_b36(ms)}{keys.stamp_lane(tail, lane)}"


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out or "0"


class IdempotencyConflict(Exception):
    def __init__(self, notice_id: str) -> None:
        super().__init__(notice_id)
        self.notice_id = notice_id


class NoticeStore:
    """Reads and writes notices; every multi-key change is one Lua script call."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        idempotency_ttl: float = 86400,
        wait: ReplicaWait = NO_WAIT,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.idempotency_ttl = int(idempotency_ttl)
        self.wait = wait
        self.scripts = NoticeScripts(redis, keys, wait)

    async def create(
        self,
        notice: Notice,
        queue: str,
        entry: QueueEntry | None = None,
        *,
        idempotency_key: str | None = None,
        body_hash: str = "",
        key_name: str = "",
        warnings_window_ms: int | None = None,
        reply_window_s: int | None = None,
        audit_extra: Mapping[str, str] | None = None,
    ) -> CreateResult:
        """Store a new notice and queue ``entry`` (by default the notice's own), or return
        the one made with the same idempotency key. The notice's audit entry and figures are
        written with it. With ``warnings_window_ms`` (a parking notice) the plate's warning
        slips over that window are counted and the notice waits for its follow-up; with
        ``reply_window_s`` (an accident alert) the reporter's replies are matched to it."""
        k = self.keys
        now_ms = int(time.time() * 1000)
        parking = warnings_window_ms is not None
        extras = CreateExtras(
            audit=audit_entry(
                "notice_created",
                at=notice.created_at,
                key_id=notice.key_id,
                key_name=key_name,
                notice_id=notice.id,
                kind=notice.kind,
                to=notice.to,
                channel=notice.channel,
                template=notice.template,
                officer_id=notice.officer_id,
                plate=notice.plate,
                case_id=notice.case_id,
                **(audit_extra or {}),
            ),
            counters=notice_counters(notice),
            warnings=k.warnings(notice.plate) if parking else "",
            window_ms=warnings_window_ms or 0,
            latest_alert=k.latest_alert(notice.to) if reply_window_s else "",
            latest_ttl_s=reply_window_s + MO_LATENESS_S if reply_window_s else 0,
            follow_ups_due=k.follow_ups_due(k.notice_lane(notice.id)) if parking else "",
            follow_up_due_ms=notice.deadline_ms + FOLLOW_UP_MISSING_AFTER_MS,
        )
        idem = ""
        if idempotency_key:
            lane = k.notice_lane(notice.id)
            idem = k.idempotency(notice.key_id, idempotency_key, lane)
            earlier = await self._idempotency_lane(notice.key_id, idempotency_key, lane, body_hash)
            if earlier is not None:
                return earlier
        res = await self.scripts.create_notice(
            notice=notice,
            queue=queue,
            entry=entry or QueueEntry.for_notice(notice),
            idempotency_key=idem,
            body_hash=body_hash,
            idempotency_ttl_s=self.idempotency_ttl,
            retention_s=RETENTION_SECONDS,
            now_ms=now_ms,
            extras=extras,
        )
        if res.outcome is CreateOutcome.CONFLICT:
            raise IdempotencyConflict(res.notice_id)
        return res

    async def _idempotency_lane(
        self, key_id: str, idem_key: str, lane: int, body_hash: str
    ) -> CreateResult | None:
        """With several lanes, an idempotency key's record is in the lane of the notice made
        with it: the lane is written first (``SET NX``), and a request whose notice would be
        in another lane is answered from the record there. (Its body differs: a notice's lane
        follows from its recipient or plate. A record not there yet is one being made, or
        one whose making failed: a conflict either way.)"""
        if self.keys.lanes == 1:
            return None
        pointer = self.keys.idempotency_lane(key_id, idem_key)
        # On the replicas before the notice is made: a failover cannot lose it and let the
        # same key make a second notice elsewhere.
        (taken,) = await self.wait.commands(
            self.redis, pointer, ("SET", pointer, lane, "NX", "EX", self.idempotency_ttl)
        )
        if taken:
            return None
        raw = await self.redis.get(pointer)
        other = int(raw) if raw is not None and str(raw).isdigit() else lane
        if other == lane or other >= self.keys.lanes:
            return None
        hash_, notice_id = await self.redis.hmget(
            self.keys.idempotency(key_id, idem_key, other), "hash", "id"
        )
        if notice_id is not None and hash_ == body_hash:
            return CreateResult(CreateOutcome.EXISTING, str(notice_id))
        raise IdempotencyConflict(str(notice_id or ""))

    async def get(self, notice_id: str) -> Notice | None:
        """The notice with its history."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.notice(notice_id))
        pipe.lrange(self.keys.history(notice_id), 0, -1)
        record, history = await pipe.execute()
        if not record:
            return None
        return Notice.from_hash(record, [json.loads(h) for h in history])

    async def transition(
        self, notice_id: str, status: NoticeStatus, detail: Mapping[str, Any] | None = None
    ) -> bool:
        """Move a notice to ``status`` unless it is already final or further along."""
        return await self.scripts.set_status(
            notice_id=notice_id, status=status, at=now_iso(), detail=detail or {}
        )

    async def outcome(
        self,
        notice_id: str,
        status: NoticeStatus,
        detail: Mapping[str, Any],
        *,
        retry_at_ms: int | None = None,
        fallback: Fallback | None = None,
    ) -> OutcomeResult:
        """What a channel learned, in one atomic step: the status change (history, job
        counts, webhook) and, only if the status changed, the notice put on the retry set
        for ``retry_at_ms`` (epoch ms; the voice channel's set is the one that exists) and
        ``fallback`` created and linked by ``fallback_id`` (once: an existing link stays)."""
        return await self.scripts.outcome(
            notice_id=notice_id,
            status=status,
            at=now_iso(),
            detail=detail,
            retry_set=self.keys.voice_retry(self.keys.notice_lane(notice_id)),
            retry_at_ms=retry_at_ms,
            fallback=fallback,
            retention_s=RETENTION_SECONDS,
        )

    async def submitted_parts(self, notice_id: str) -> dict[str, str]:
        return dict(await self.redis.hgetall(self.keys.submitted_parts(notice_id)))

    # The SMPP receive path's writes: they return at once, and land within milliseconds in
    # one script call with the others (``sms_events.lua``).
    async def expire_unreceipted(self) -> int:
        """Submitted SMS notices whose receipt is overdue end ``expired`` (no_receipt)."""
        expired = 0
        for lane in self.keys.each_lane():
            expired += await self.scripts.expire_unreceipted(
                lane=lane, now_ms=int(time.time() * 1000), at=now_iso()
            )
        if expired:
            log.warning("%d SMS notices had no receipt in time and are expired", expired)
        return expired

    def sms_writes(self, mapping_ttl: float, early_ttl: float, interval: float) -> SmsWrites:
        """What an SMS link writes: one batcher per lane (a batch's events all go to one
        lane's ``sms_events``), and the routing of carrier ids and receipts to them."""

        def batcher(lane: int) -> ScriptBatcher:
            async def send(events: list[Any], event_keys: list[str]) -> list[Any]:
                return await self.scripts.sms_events(
                    events=events,
                    event_keys=event_keys,
                    lane=lane,
                    mapping_ttl_s=int(mapping_ttl),
                    early_ttl_s=int(early_ttl),
                    receipt_ttl_ms=int(mapping_ttl * 1000),
                )

            return ScriptBatcher(send, width=7, interval=interval, max_batch=SMS_EVENTS_PER_CALL)

        batchers = [batcher(lane) for lane in self.keys.each_lane()]
        return SmsWrites(self.redis, self.keys, self.scripts, batchers)
