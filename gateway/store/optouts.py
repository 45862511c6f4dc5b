"""Numbers that opted out of reminders (never out of accident or parking notices)."""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis

from gateway.store.keys import Keys
from gateway.store.notices import now_iso


class OptOutStore:
    """The set is kept in every lane (a reminder job's admission checks its own lane's
    copy); lane 0's copy, with when and how each number opted out and the log, is the
    record the others follow."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._record = keys.opt_outs(0)

    @property
    def _meta(self) -> str:
        return self._record + ":meta"

    @property
    def _log(self) -> str:
        return self._record + ":log"

    async def add(self, number: str, via: str, detail: str = "") -> bool:
        entry = {"phone": number, "at": now_iso(), "via": via, "detail": detail}
        # The copies first: a crash between the two leaves no lane sending to the number.
        for lane in self.keys.each_lane()[1:]:
            await self.redis.sadd(self.keys.opt_outs(lane), number)
        pipe = self.redis.pipeline(transaction=True)
        pipe.sadd(self._record, number)
        pipe.hset(self._meta, number, json.dumps(entry, ensure_ascii=False))
        pipe.lpush(self._log, json.dumps({**entry, "event": "opted_out"}, ensure_ascii=False))
        pipe.ltrim(self._log, 0, 99_999)
        added = (await pipe.execute())[0]
        return bool(added)

    async def remove(self, number: str, by: str) -> bool:
        entry = {"phone": number, "at": now_iso(), "via": "admin", "detail": by}
        for lane in self.keys.each_lane()[1:]:  # here too the copies first: the record last
            await self.redis.srem(self.keys.opt_outs(lane), number)
        pipe = self.redis.pipeline(transaction=True)
        pipe.srem(self._record, number)
        pipe.hdel(self._meta, number)
        pipe.lpush(self._log, json.dumps({**entry, "event": "opted_in"}, ensure_ascii=False))
        pipe.ltrim(self._log, 0, 99_999)
        return bool((await pipe.execute())[0])

    async def contains(self, number: str) -> bool:
        return bool(await self.redis.sismember(self._record, number))

    async def list(self, cursor: int, count: int) -> tuple[int, list[dict[str, Any]]]:
        next_cursor, numbers = await self.redis.sscan(self._record, cursor, count=count)
        metas = await self.redis.hmget(self._meta, numbers) if numbers else []
        out = [json.loads(m) if m else {"phone": n} for n, m in zip(numbers, metas, strict=True)]
        return int(next_cursor), out
