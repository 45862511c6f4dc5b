"""Receipts whose carrier id matched no part: parked by ``sms_events`` (a carrier id may
still come), reported once the grace is over, and listed for admins."""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis

from gateway.store.keys import Keys
from gateway.store.scripts import Script

KEEP = 1000  # newest unmatched receipts listed


class UnmatchedReceipts:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._report = Script(redis, "unmatched_receipts", keys)

    async def report(self, grace_s: float, forget_s: float) -> list[dict[str, Any]]:
        """Receipts parked longer than ``grace_s``, each returned to one caller only."""
        due = await self._report(
            keys={
                "receipts_parked": self.keys.receipts_parked,
                "receipts_unmatched": self.keys.receipts_unmatched,
            },
            args={"grace_ms": int(grace_s * 1000), "forget_ms": int(forget_s * 1000), "keep": KEEP},
        )
        return [json.loads(m) for m in due]

    async def newest(self, limit: int = 100) -> list[dict[str, Any]]:
        """The unmatched receipts, newest first: id, link, stat, err, at."""
        members = await self.redis.zrevrange(self.keys.receipts_unmatched, 0, limit - 1)
        return [json.loads(m) for m in members]
