"""Typed wrappers of the voice worker's scripts: call slots, retries, clone reports."""

from __future__ import annotations

import json
from collections.abc import Sequence

import redis.asyncio as aioredis

from gateway.store.keys import Keys
from gateway.store.scripts import Script


class VoiceScripts:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.keys = keys
        self._slot = Script(redis, "call_slot", keys)
        self._retries = Script(redis, "move_voice_retries", keys)
        self._clone = Script(redis, "record_suspected_clone", keys)

    async def take_call_slot(self, *, member: str, ttl_ms: int, max_calls: int) -> bool:
        """A slot under the call limit all workers share; False when every slot is taken."""
        res = await self._slot(
            keys={"active_calls": self.keys.active_calls},
            args={"member": member, "ttl_ms": ttl_ms, "max": max_calls},
        )
        return bool(res)

    async def move_due_retries(self, *, now_ms: int, max_moved: int = 100) -> int:
        """Due retries back on their queue (reminders on the bulk one), each exactly once."""
        k = self.keys
        res = await self._retries(
            keys={"retry": k.voice_retry, "queue": k.voice_queue, "bulk_queue": k.voice_bulk_queue},
            args={"now_ms": now_ms, "max": max_moved},
        )
        return int(res)

    async def record_suspected_clone(
        self, *, notice_id: str, at: str, recipients: Sequence[tuple[str, str]]
    ) -> int:
        """Count a "not my vehicle" against the notice's plate and send the report to each
        (key id, events URL) in ``recipients``. The plate's count, or 0 without a plate."""
        k = self.keys
        res = await self._clone(
            keys={
                "notice": k.notice(notice_id),
                "clones": k.suspected_clones,
                "webhooks": k.webhook_queue,
                "events": k.events,
            },
            args={
                "notice_id": notice_id,
                "at": at,
                "recipients_json": json.dumps([list(r) for r in recipients], ensure_ascii=False),
            },
        )
        return int(res)
