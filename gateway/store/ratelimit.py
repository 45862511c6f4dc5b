"""GCRA rate limiting shared by every process through one Redis key."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from gateway.store.keys import Keys
from gateway.store.scripts import Script


class Gcra:
    """Generic cell rate algorithm; ``take`` grants up to ``want`` tokens atomically."""

    def __init__(self, redis: aioredis.Redis) -> None:
        # The script builds no key name: it renders the same under any prefix.
        self._script = Script(redis, "gcra", Keys())

    async def take(self, key: str, rate: float, burst: int, want: int = 1) -> tuple[int, float]:
        """(granted tokens, seconds until the next token when none was granted)."""
        granted, wait_ms = await self._script(
            keys={"limiter": key}, args={"rate_per_s": rate, "burst": burst, "want": want}
        )
        return int(granted), int(wait_ms) / 1000.0


class SharedRate:
    """Paces one process's sends so that all processes together keep to ``rate`` per second.

    Tokens are fetched from Redis a small batch at a time, so the hot path costs one Redis
    call per batch rather than per message.
    """

    def __init__(self, gcra: Gcra, key: str, rate: float) -> None:
        self.gcra = gcra
        self.key = key
        self.rate = rate
        self.batch = max(1, min(64, int(rate / 20)))
        self.burst = max(self.batch, int(rate / 10))
        self._tokens = 0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while self._tokens <= 0:
                granted, wait = await self.gcra.take(self.key, self.rate, self.burst, self.batch)
                if granted:
                    self._tokens += granted
                else:
                    await asyncio.sleep(max(wait, 0.001))
            self._tokens -= 1
