"""Receipts whose carrier id matched no part: parked by ``sms_events`` (a carrier id may
still come), reported once the grace is over, and listed for admins."""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis

from gateway.store.keys import Keys
from gateway.store.lane_merge import newest_of_lanes
from gateway.store.scripts import Script

KEEP = 1000  # newest unmatched receipts listed
LISTED = ("id", "link", "stat", "err", "at")  # what an admin is shown of one


class UnmatchedReceipts:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._report = Script(redis, "unmatched_receipts", keys)

    async def report(self, grace_s: float, forget_s: float) -> list[dict[str, Any]]:
        """Receipts parked longer than ``grace_s`` (in every lane), each returned to one
        caller only."""
        k, due = self.keys, []
        for lane in k.each_lane():
            due += await self._report(
                keys={
                    "receipts_parked": k.receipts_parked(lane),
                    "receipts_unmatched": k.receipts_unmatched(lane),
                },
                args={
                    "grace_ms": int(grace_s * 1000),
                    "forget_ms": int(forget_s * 1000),
                    "keep": KEEP,
                },
            )
        return [json.loads(m) for m in due]

    async def newest(self, limit: int = 100) -> list[dict[str, Any]]:
        """The unmatched receipts, newest first: id, link, stat, err, at."""

        async def unmatched(lane: int) -> list[tuple[str, float]]:
            key = self.keys.receipts_unmatched(lane)
            got: list[tuple[str, float]] = await self.redis.zrevrange(
                key, 0, limit - 1, withscores=True
            )
            return got

        members = await newest_of_lanes(self.keys.each_lane(), unmatched, lambda m: m[1], limit)
        return [{f: v for f, v in json.loads(m).items() if f in LISTED} for m, _ in members]
