"""Parking follow-ups: what the officer found when the time was up, once per notice, and
the count of notices whose follow-up never came."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis.asyncio as aioredis

from gateway.store.keys import Keys
from gateway.store.scripts import Script

# A follow-up later than this after the deadline is refused: the officer has left the street.
LATE_AFTER_MS = 24 * 3600 * 1000


class FollowUpResult(StrEnum):
    RECORDED = "recorded"
    REPLAYED = "replayed"  # the same request (same Idempotency-Key and body) again
    DONE = "done"  # another follow-up came first
    UNKNOWN = "unknown"
    FORBIDDEN = "forbidden"
    TOO_LATE = "too_late"


@dataclass(frozen=True, slots=True)
class FollowUp:
    result: FollowUpResult
    outcome: str  # the follow-up's (the first one's, for DONE and REPLAYED)
    warning_number: int
    penalty_due: bool
    status: str  # the notice's status afterwards


class FollowUpStore:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.keys = keys
        self._record = Script(redis, "follow_up", keys)
        self._missing = Script(redis, "follow_ups_missing", keys)

    async def record(
        self,
        *,
        notice_id: str,
        plate: str,
        key_id: str,
        admin: bool,
        outcome: str,
        at: str,
        now_ms: int,
        window_ms: int,
        replay_mark: str,
        detail: Mapping[str, Any],
        audit: Mapping[str, str],
    ) -> FollowUp:
        """``plate`` is the notice's (its warning slips' key); ``replay_mark`` tells a
        handheld's retry of this very request ('' when it sent no Idempotency-Key)."""
        k = self.keys
        lane = k.notice_lane(notice_id)
        res = await self._record(
            keys={
                "notice": k.notice(notice_id),
                "history": k.history(notice_id),
                "warnings": k.warnings(plate),
                "follow_ups_due": k.follow_ups_due(lane),
                "webhooks": k.webhook_queue(lane),
                "events": k.events(lane),
                "audit": k.audit_log(lane),
            },
            args={
                "id": notice_id,
                "key_id": key_id,
                "admin": "1" if admin else "0",
                "outcome": outcome,
                "at": at,
                "now_ms": now_ms,
                "window_ms": window_ms,
                "late_ms": LATE_AFTER_MS,
                "replay_mark": replay_mark,
                "detail_json": json.dumps(dict(detail), ensure_ascii=False),
                "audit_json": json.dumps(dict(audit), ensure_ascii=False),
            },
        )
        return FollowUp(
            FollowUpResult(res[0]), str(res[1]), int(res[2] or 0), res[3] == "1", str(res[4])
        )

    async def count_missing(self, *, now_ms: int, max_count: int = 500) -> int:
        """Notices 2 h past their deadline without a follow-up, counted once each; how many
        were looked at."""
        looked = 0
        for lane in self.keys.each_lane():
            looked += int(
                await self._missing(
                    keys={"follow_ups_due": self.keys.follow_ups_due(lane)},
                    args={"now_ms": now_ms, "max": max_count},
                )
            )
        return looked
