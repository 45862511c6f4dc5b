"""How often one plate's owner is notified about parking: a sliding window per plate, shared
by every API process (one script call counts and checks)."""

from __future__ import annotations

import redis.asyncio as aioredis

from gateway.store.keys import Keys
from gateway.store.scripts import Script

WINDOW_MS = 3600 * 1000


class PlateCalls:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._count = Script(redis, "plate_calls", keys)

    async def count(self, *, plate: str, notice_id: str, max_calls: int) -> float:
        """Count a parking notice against its plate: 0 when counted, else the seconds until
        the plate may be notified again (nothing counted)."""
        counted, wait_ms = await self._count(
            keys={"plate_calls": self.keys.plate_calls(plate)},
            args={"member": notice_id, "window_ms": WINDOW_MS, "max": max_calls},
        )
        return 0.0 if int(counted) else max(0.001, int(wait_ms) / 1000)

    async def uncount(self, *, plate: str, notice_id: str) -> None:
        """A notice that was not created after all (an idempotent replay) does not count."""
        await self.redis.zrem(self.keys.plate_calls(plate), notice_id)
