"""Reading the figures the scripts count (gateway.core.figures): hour buckets and totals."""

from __future__ import annotations

import redis.asyncio as aioredis

from gateway.core.figures import Period, sum_hours
from gateway.store.keys import Keys


class FigureStore:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def periods(self, periods: list[Period]) -> list[dict[str, int]]:
        """Each period's counters, its hour buckets added up (one round trip)."""
        pipe = self.redis.pipeline(transaction=False)
        for p in periods:
            for hour in range(p.first_hour, p.end_hour):
                pipe.hgetall(self.keys.figures(str(hour)))
        hours = await pipe.execute()
        out, i = [], 0
        for p in periods:
            n = p.end_hour - p.first_hour
            out.append(sum_hours(hours[i : i + n]))
            i += n
        return out

    async def totals(self) -> dict[str, int]:
        """Every counter since the gateway started counting."""
        raw = await self.redis.hgetall(self.keys.figures("total"))
        return {k: int(v) for k, v in raw.items()}
