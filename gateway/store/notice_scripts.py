"""Typed wrappers of the notice scripts: named parameters in, small values out."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis.asyncio as aioredis

from gateway.core.audit import audit_entry
from gateway.core.records import Notice, QueueEntry
from gateway.core.statuses import NoticeStatus
from gateway.store.batch import pack_events
from gateway.store.coalesce import Coalescer
from gateway.store.keys import Keys
from gateway.store.replicas import NO_WAIT, ReplicaWait
from gateway.store.scripts import scripts


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


class CreateOutcome(StrEnum):
    CREATED = "created"
    EXISTING = "existing"  # made earlier with the same idempotency key and body
    CONFLICT = "conflict"  # the idempotency key was used with another body


@dataclass(frozen=True, slots=True)
class CreateResult:
    outcome: CreateOutcome
    notice_id: str
    warnings_so_far: int = 0


@dataclass(frozen=True, slots=True)
class CreateExtras:
    """What a new notice brings along besides its record: Redis keys ('' for none) and the
    values that go with them."""

    audit: Mapping[str, str]
    counters: Sequence[str] = ()  # figures to add 1 to (gateway.core.figures names)
    warnings: str = ""  # the plate's warning slips, for warnings_so_far
    window_ms: int = 0
    latest_alert: str = ""  # the reporter's latest-alert mark, kept latest_ttl_s
    latest_ttl_s: int = 0
    follow_ups_due: str = ""  # the set of follow-ups due, at follow_up_due_ms
    follow_up_due_ms: int = 0


@dataclass(frozen=True, slots=True)
class Fallback:
    """A notice to create, with its queue entry, if an outcome ends the original."""

    notice: Notice
    queue: str
    entry: QueueEntry
    audit: Mapping[str, str]

    @classmethod
    def of(cls, notice: Notice, queue: str) -> Fallback:
        audit = audit_entry(
            "notice_created",
            at=notice.created_at,
            key_id=notice.key_id,
            key_name="",
            notice_id=notice.id,
            kind=notice.kind,
            to=notice.to,
            channel=notice.channel,
            fallback_of=notice.fallback_of,
            plate=notice.plate,
        )
        return cls(notice, queue, QueueEntry.for_notice(notice), audit)


@dataclass(frozen=True, slots=True)
class OutcomeResult:
    changed: bool  # False: the notice was final or further along; nothing else was done
    retry_scheduled: bool
    fallback_id: str  # the notice's fallback (made now or earlier), or ''


class NoticeScripts:
    """``wait``: the replicas a new notice and the SMPP events (carrier ids, receipts) wait for
    before they are acknowledged (``gateway.store.replicas``)."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, wait: ReplicaWait = NO_WAIT) -> None:
        self.redis = redis
        self.keys = keys
        self.wait = wait
        # New notices from concurrent requests go to Redis together (gateway.store.coalesce).
        self.coalescer = Coalescer(redis, wait)
        self._create, self._set_status, self._outcome, self._sms_events, self._expire = scripts(
            redis,
            keys,
            "create_notice",
            "set_status",
            "outcome",
            "sms_events",
            "expire_unreceipted",
        )

    async def create_notice(
        self,
        *,
        notice: Notice,
        queue: str,
        entry: QueueEntry,
        idempotency_key: str,
        body_hash: str,
        idempotency_ttl_s: int,
        retention_s: int,
        now_ms: int,
        extras: CreateExtras,
    ) -> CreateResult:
        """``idempotency_key`` is a Redis key or ''."""
        k, x = self.keys, extras
        lane = k.notice_lane(notice.id)
        res = await self.coalescer.call(
            self._create,
            keys={
                "notice": k.notice(notice.id),
                "history": k.history(notice.id),
                "queue": queue,
                "audit": k.audit_log(lane),
                "events": k.events(lane),
                "idempotency": idempotency_key,
                "warnings": x.warnings,
                "latest_alert": x.latest_alert,
                "follow_ups_due": x.follow_ups_due,
            },
            args={
                "id": notice.id,
                "body_hash": body_hash,
                "idempotency_ttl_s": idempotency_ttl_s,
                "retention_s": retention_s,
                "record_json": _json(notice.to_hash()),
                "history_json": _json(notice.history_entry()),
                "entry_json": _json(entry.fields()),
                "now_ms": now_ms,
                "window_ms": x.window_ms,
                "audit_json": _json(dict(x.audit)),
                "counters_json": _json(list(x.counters)),
                "latest_ttl_s": x.latest_ttl_s,
                "follow_up_due_ms": x.follow_up_due_ms,
            },
        )
        return CreateResult(CreateOutcome(res[0]), str(res[1]), int(res[2]) if len(res) > 2 else 0)

    async def set_status(
        self, *, notice_id: str, status: NoticeStatus, at: str, detail: Mapping[str, Any]
    ) -> bool:
        res = await self._set_status(
            keys=self.keys.notice_step(notice_id),
            args={"id": notice_id, "status": status.value, "at": at, "detail_json": _json(detail)},
        )
        return bool(res)

    async def outcome(
        self,
        *,
        notice_id: str,
        status: NoticeStatus,
        at: str,
        detail: Mapping[str, Any],
        retry_set: str,
        retry_at_ms: int | None,
        fallback: Fallback | None,
        retention_s: int,
    ) -> OutcomeResult:
        k = self.keys
        fb = fallback.notice if fallback else None
        res = await self._outcome(
            keys={
                **self.keys.notice_step(notice_id),
                "retry": retry_set,
                "audit": k.audit_log(k.notice_lane(notice_id)),
                "fallback_notice": k.notice(fb.id) if fb else "",
                "fallback_history": k.history(fb.id) if fb else "",
                "fallback_queue": fallback.queue if fallback else "",
            },
            args={
                "id": notice_id,
                "status": status.value,
                "at": at,
                "detail_json": _json(detail),
                "retry_at_ms": "" if retry_at_ms is None else retry_at_ms,
                "fallback_id": fb.id if fb else "",
                "fallback_record_json": _json(fb.to_hash()) if fb else "",
                "fallback_history_json": _json(fb.history_entry()) if fb else "",
                "fallback_entry_json": _json(fallback.entry.fields()) if fallback else "",
                "fallback_audit_json": _json(dict(fallback.audit)) if fallback else "",
                "retention_s": retention_s,
            },
        )
        return OutcomeResult(bool(res[0]), bool(res[1]), str(res[2]))

    # -- the SMS receive path, batched (``ScriptBatcher``) -------------------------------------
    def submitted_event(
        self,
        notice_id: str,
        part: int,
        parts: int,
        smsc_message_id: str,
        at: str,
        form: str,
        scope: str,
        lane: int,
        to_tail: str = "",
    ) -> tuple[list[Any], list[str]]:
        """A part got its carrier id (mapped under its stored ``form`` in the SMSC's id
        space ``scope``): the event's fields and keys for ``sms_events`` in the notice's
        ``lane``."""
        k = self.keys
        keys = [
            k.carrier_id(scope, form, lane),
            k.early_receipt(scope, form, lane),
            k.notice(notice_id),
            k.history(notice_id),
            k.submitted_parts(notice_id),
            k.receipt_parts(notice_id),
        ]
        return ["s", notice_id, part, smsc_message_id, parts, at, to_tail], keys

    def receipt_event(
        self,
        smsc_message_id: str,
        forms: list[str],
        link: str,
        scope: str,
        status: NoticeStatus,
        at: str,
        stat: str,
        err: str,
        to_tail: str = "",
        *,
        lane: int,
    ) -> tuple[list[Any], list[str]]:
        """A final delivery receipt whose id may match the stored ``forms`` (best first) in
        the SMSC's id space ``scope``: its fields and keys for ``sms_events`` in ``lane``
        (its notice's, or where it is parked until that is known)."""
        k = self.keys
        keys = [
            key
            for f in forms
            for key in (k.carrier_id(scope, f, lane), k.early_receipt(scope, f, lane))
        ]
        rid = {"id": smsc_message_id, "link": link, "forms": forms, "scope": scope}
        return ["r", rid, status.value, at, stat, err, to_tail], keys

    async def sms_events(
        self,
        *,
        events: list[Any],
        event_keys: list[str],
        lane: int,
        mapping_ttl_s: int,
        early_ttl_s: int,
        receipt_ttl_ms: int,
    ) -> list[Any]:
        """Per event: 1/0 for a carrier id (every part has one yet), ``final``, ``partial`` or
        ``early`` for a receipt. Every event's keys are in ``lane``."""
        k = self.keys
        res = await self.wait.call(
            self.redis,
            self._sms_events,
            keys={
                "webhooks": k.webhook_queue(lane),
                "events": k.events(lane),
                "receipts_parked": k.receipts_parked(lane),
                "receipts_unmatched": k.receipts_unmatched(lane),
                "awaiting": k.awaiting_receipts(lane),
            },
            args={
                "mapping_ttl_s": mapping_ttl_s,
                "early_ttl_s": early_ttl_s,
                "receipt_ttl_ms": receipt_ttl_ms,
                "events": pack_events(events),
            },
            more_keys=event_keys,
        )
        return list(res)

    async def expire_unreceipted(
        self, *, lane: int, now_ms: int, at: str, max_expired: int = 500
    ) -> int:
        """Submitted notices of ``lane`` whose receipt is overdue end ``expired``
        (no_receipt)."""
        k = self.keys
        res = await self._expire(
            keys={
                "awaiting": k.awaiting_receipts(lane),
                "webhooks": k.webhook_queue(lane),
                "events": k.events(lane),
            },
            args={"now_ms": now_ms, "max": max_expired, "at": at},
        )
        return int(res)
