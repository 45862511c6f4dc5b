"""Typed wrappers of the voice worker's scripts: call slots, retries, clone reports."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import redis.asyncio as aioredis

from gateway.core.statuses import NoticeStatus
from gateway.store.keys import Keys
from gateway.store.scripts import Script


@dataclass(frozen=True, slots=True)
class CallStart:
    """What ``begin_call`` decided: ``dial`` (the notice is ``dialing`` and holds a slot),
    ``full`` (every slot taken: try again later) or ``skip`` (final, gone, no attempts left)."""

    state: Literal["dial", "full", "skip"]
    attempt: int = 0
    to: str = ""
    text: str = ""
    kind: str = ""

    @classmethod
    def of(cls, res: Any) -> CallStart:
        if res[0] != "dial":
            return cls(res[0])
        return cls("dial", int(res[1]), str(res[2]), str(res[3]), str(res[4]))


class VoiceScripts:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._reserve = Script(redis, "reserve_call", keys)
        self._begin = Script(redis, "begin_call", keys)
        self._retries = Script(redis, "move_voice_retries", keys)
        self._clone = Script(redis, "record_suspected_clone", keys)

    async def begin_call(
        self,
        *,
        notice_id: str,
        slot: str,
        at: str,
        ttl_ms: int,
        max_calls: int,
        max_attempts: int,
    ) -> CallStart:
        """The notice's next attempt: a slot (``slot``, the caller's name for this start)
        under the call limit all workers share, then the move to ``dialing``. Two calls, as
        the limit is one key for every lane (docs/redis-cluster.md): the slot is given back
        when the notice is not to be called; a worker that dies between the two holds it until
        ``ttl_ms``."""
        taken = await self._reserve(
            keys={"active_calls": self.keys.active_calls},
            args={"slot": slot, "ttl_ms": ttl_ms, "max_calls": max_calls},
        )
        if not int(taken):
            # Every slot busy: a notice that is not to be called any more (cancelled with its
            # job, answered meanwhile, out of attempts) is told so now, not kept waiting.
            to_call = await self._still_to_call(notice_id, max_attempts)
            return CallStart("full" if to_call else "skip")
        start = CallStart("skip")
        try:
            res = await self._begin(
                keys=self.keys.notice_step(notice_id),
                args={"id": notice_id, "at": at, "max_attempts": max_attempts},
            )
            start = CallStart.of(res)
        finally:
            if start.state != "dial":  # not to be called, or an error, or cancelled
                # Given back if Redis still answers (else it expires by itself).
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.release_call(slot))
        return start

    async def _still_to_call(self, notice_id: str, max_attempts: int) -> bool:
        status, attempt = await self.redis.hmget(self.keys.notice(notice_id), "status", "attempt")
        if status is None or int(attempt or 0) >= max_attempts:
            return False
        try:
            return not NoticeStatus(status).is_hard
        except ValueError:
            return False

    async def release_call(self, slot: str) -> None:
        """A call slot given back: the call ended, or did not start."""
        await self.redis.zrem(self.keys.active_calls, slot)

    async def move_due_retries(self, *, now_ms: int, max_moved: int = 100) -> int:
        """Due retries back on their lane's queue (reminders on the bulk one), each exactly
        once."""
        k, moved = self.keys, 0
        for i in k.each_lane():
            moved += int(
                await self._retries(
                    keys={
                        "retry": k.voice_retry(i),
                        "queue": k.voice_queue(i),
                        "bulk_queue": k.voice_bulk_queue(i),
                    },
                    args={"now_ms": now_ms, "max": max_moved},
                )
            )
        return moved

    async def record_suspected_clone(
        self, *, notice_id: str, at: str, recipients: Sequence[tuple[str, str]]
    ) -> int:
        """Count a "not my vehicle" against the notice's plate and send the report to each
        (key id, events URL) in ``recipients``. The plate's count, or 0 without a plate."""
        k = self.keys
        lane = k.notice_lane(notice_id)
        res = await self._clone(
            keys={
                "notice": k.notice(notice_id),
                "clones": k.suspected_clones(lane),
                "webhooks": k.webhook_queue(lane),
                "events": k.events(lane),
            },
            args={
                "notice_id": notice_id,
                "at": at,
                "recipients_json": json.dumps([list(r) for r in recipients], ensure_ascii=False),
            },
        )
        return int(res)
