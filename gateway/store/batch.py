"""Pipelined script calls: many small Redis writes from a hot loop become one round trip.

``submit`` returns a future at once; ``run`` (an owned task) flushes the queue in one
pipeline every ``interval`` seconds or when it is full, and once more when cancelled.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

log = logging.getLogger(__name__)


class ScriptBatcher:
    def __init__(self, redis: aioredis.Redis, interval: float = 0.002, max_batch: int = 100):
        self.redis = redis
        self.interval = interval
        self.max_batch = max_batch
        self._queue: list[tuple[AsyncScript, list[Any], asyncio.Future[Any]]] = []
        self._full = asyncio.Event()
        self._closing = False

    def close(self) -> None:
        """Let ``run`` flush what is queued and end."""
        self._closing = True
        self._full.set()

    def submit(self, script: AsyncScript, args: list[Any]) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((script, args, fut))
        if len(self._queue) >= self.max_batch:
            self._full.set()
        return fut

    async def run(self) -> None:
        try:
            while not self._closing:
                try:
                    async with asyncio.timeout(self.interval):
                        await self._full.wait()
                except TimeoutError:
                    pass
                self._full.clear()
                await self._flush()
        finally:
            await asyncio.shield(self._flush())

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            pipe = self.redis.pipeline(transaction=False)
            for script, args, _ in batch:
                # On a pipeline this only queues EVALSHA (and registers the script for load).
                await script(args=args, client=pipe)
            try:
                results = await pipe.execute(raise_on_error=False)
            except Exception as exc:  # the whole round trip failed: every caller learns it
                log.error("Redis pipeline of %d writes failed: %r", len(batch), exc)
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, _, fut), res in zip(batch, results, strict=True):
                if fut.done():
                    continue
                if isinstance(res, Exception):
                    fut.set_exception(res)
                else:
                    fut.set_result(res)
