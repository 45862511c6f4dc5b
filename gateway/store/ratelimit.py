"""GCRA rate limiting shared by every process through one Redis key; and a link's rate that
the SMSC's throttling slows (AIMD), shared the same way."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import redis.asyncio as aioredis

from gateway.store.coalesce import Coalescer
from gateway.store.keys import Keys
from gateway.store.outage import STORE_DOWN, Outage
from gateway.store.scripts import Script


class Gcra:
    """Generic cell rate algorithm; ``take`` grants up to ``want`` tokens atomically."""

    def __init__(self, redis: aioredis.Redis) -> None:
        # The script builds no key name: it renders the same under any prefix.
        self._script = Script(redis, "gcra", Keys())
        # Concurrent requests' limits go to Redis together (gateway.store.coalesce).
        self._calls = Coalescer(redis)

    async def take(self, key: str, rate: float, burst: int, want: int = 1) -> tuple[int, float]:
        """(granted tokens, seconds until the next token when none was granted)."""
        granted, wait_ms = await self._calls.call(
            self._script,
            keys={"limiter": key},
            args={"rate_per_s": rate, "burst": burst, "want": want},
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
            outage = Outage(f"rate {self.key}")
            while self._tokens <= 0:
                try:
                    granted, wait = await self._take(self.batch)
                except STORE_DOWN as exc:  # a sender waits Redis out, it does not end
                    await outage.pause(exc)
                    continue
                outage.ok()
                if granted:
                    self._tokens += granted
                else:
                    await asyncio.sleep(max(wait, 0.001))
            self._tokens -= 1

    async def _take(self, want: int) -> tuple[int, float]:
        return await self.gcra.take(self.key, self.rate, self.burst, want)


@dataclass(frozen=True, slots=True)
class Aimd:
    """How a throttled link's rate moves: times ``factor`` on throttling (at most once per
    ``hold`` seconds), plus ``increase`` tokens/s each second, never below ``floor``."""

    floor: float
    increase: float
    factor: float = 0.5
    hold: float = 1.0


class AdaptiveRate(SharedRate):
    """A ``SharedRate`` whose rate the SMSC's throttling slows and time restores (AIMD).

    ``throttled`` costs no round trip: the cut rides the next token request, which it makes
    come at once (the tokens in hand are dropped, so the slower rate holds from the next send).
    """

    def __init__(self, redis: aioredis.Redis, keys: Keys, name: str, rate: float, aimd: Aimd):
        super().__init__(Gcra(redis), keys.link_rate(name), rate)
        self._script = Script(redis, "adaptive_rate", keys)
        self._state = keys.link_rate_state(name)
        self.aimd = aimd
        self.current = rate  # as last heard from Redis
        self.cuts = 0  # cuts this process made
        self._cut_due = False

    def throttled(self) -> None:
        self._cut_due = True
        self._tokens = 0

    async def _take(self, want: int) -> tuple[int, float]:
        a, throttled = self.aimd, self._cut_due
        self._cut_due = False
        granted, wait_ms, rate_milli, cut = await self._script(
            keys={"limiter": self.key, "state": self._state},
            args={
                "max_rate": self.rate,
                "floor": min(a.floor, self.rate),
                "increase_per_s": a.increase,
                "factor": a.factor,
                "hold_ms": int(a.hold * 1000),
                "burst": self.burst,
                "want": want,
                "throttled": int(throttled),
            },
        )
        self.current = int(rate_milli) / 1000.0
        self.cuts += int(cut)
        return int(granted), int(wait_ms) / 1000.0
