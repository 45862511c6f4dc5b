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
        """Each period's counters, its hour buckets of every lane added up (one round
        trip)."""
        lanes = self.keys.lanes
        pipe = self.redis.pipeline(transaction=False)
        for p in periods:
            for hour in range(p.first_hour, p.end_hour):
                for lane in self.keys.each_lane():
                    pipe.hgetall(self.keys.figures(str(hour), lane))
        hours = await pipe.execute()
        out, i = [], 0
        for p in periods:
            n = (p.end_hour - p.first_hour) * lanes
            out.append(sum_hours(hours[i : i + n]))
            i += n
        return out

    async def totals(self) -> dict[str, int]:
        """Every counter since the gateway started counting, over every lane."""
        pipe = self.redis.pipeline(transaction=False)
        for lane in self.keys.each_lane():
            pipe.hgetall(self.keys.figures("total", lane))
        return sum_hours(await pipe.execute())
