"""Script calls that concurrent requests make at the same moment go to Redis together.

The API makes one or two script calls per request (the key's rate limit, the new notice). A
call alone costs redis-py about 75 µs of CPU (its connection pool, retry wrapper and reply
handling) and Redis about 20; sixty-four in one pipeline cost about 22 and 7 each
(``bench/floor.py``). ``Coalescer.call`` queues the call; a flush, started on the next turn
of the event loop, sends the calls queued by then (up to ``max_batch``) in one pipeline,
and with replicas to wait for, one ``WAIT`` after the lot (``gateway.store.replicas``: an
answer means its write is on the replicas). A call made with nothing else in flight goes at
once, alone; one flush is in flight at a time, and calls made meanwhile go in the next:
under load the batches grow by themselves, and a call alone waits for nothing.

A call whose batch fails as a whole (the store away, ``NotReplicated``) gets that error,
as a call of its own would: the API answers 503, and a write that did land is found again
by the caller's idempotency key. A script's own error reaches only its caller. A Redis
Cluster client refuses scripts in a pipeline (redis-py): there every call goes alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, ResponseError

from gateway.store.redis_conn import is_cluster
from gateway.store.replicas import NO_WAIT, ReplicaWait, demoted, on_primary
from gateway.store.scripts import Script

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Call:
    script: Script
    keys: Mapping[str, str]
    args: Mapping[str, Any]
    more_keys: Sequence[str]
    answer: asyncio.Future[Any]


class Coalescer:
    def __init__(
        self, redis: aioredis.Redis, wait: ReplicaWait = NO_WAIT, max_batch: int = 64
    ) -> None:
        self.redis = redis
        self.wait = wait
        self.max_batch = max_batch
        self._alone = is_cluster(redis)
        self._queue: list[_Call] = []
        self._flush: asyncio.Task[None] | None = None
        self._direct = 0  # calls sent alone, not yet answered

    async def call(
        self,
        script: Script,
        keys: Mapping[str, str],
        args: Mapping[str, Any],
        *,
        more_keys: Sequence[str] = (),
    ) -> Any:
        """``script``'s answer, once its write is stored (and on the replicas waited for)."""
        if self._alone:
            return await self.wait.call(self.redis, script, keys, args, more_keys=more_keys)
        if (self._flush is None or self._flush.done()) and not self._direct:
            # Nothing else in flight: sent at once, as without this class. Calls made while
            # it is out start a batch.
            self._direct += 1
            try:
                return await self.wait.call(self.redis, script, keys, args, more_keys=more_keys)
            finally:
                self._direct -= 1
        script.operands(keys, args, more_keys)  # a wrong call fails here, not in a batch
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        answer.add_done_callback(_retrieved)
        self._queue.append(_Call(script, keys, args, more_keys, answer))
        if self._flush is None or self._flush.done():
            self._flush = asyncio.create_task(self._run(), name="coalesced-calls")
        # Shielded: a caller that gives up (a request cancelled) leaves its call in the
        # batch, whose answer then goes to no one.
        return await asyncio.shield(answer)

    async def _run(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            try:
                await self._send(batch)  # every call of the batch gets its answer or error
            except asyncio.CancelledError:
                for c in self._queue:
                    _settle(c.answer, ConnectionError("the gateway is stopping"))
                self._queue = []
                raise

    async def _send(self, batch: list[_Call]) -> None:
        if len(batch) == 1:
            # Alone: sent as it would be without this class (a pipeline of scripts first
            # asks Redis whether it has them: a round trip more for one call).
            c = batch[0]
            try:
                result = await self.wait.call(
                    self.redis, c.script, c.keys, c.args, more_keys=c.more_keys
                )
            except BaseException as exc:  # cancelled too: its caller is not left waiting
                _settle(c.answer, exc)
                if not isinstance(exc, Exception):
                    raise
            else:
                _settle(c.answer, result)
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for c in batch:
                    await c.script(c.keys, c.args, more_keys=c.more_keys, client=pipe)
                if self.wait.replicas:
                    pipe.execute_command("WAIT", self.wait.replicas, self.wait.timeout_ms)
                replies = await on_primary(self.redis, pipe.execute(raise_on_error=False))
            if self.wait.replicas:
                acked = replies.pop()
                if isinstance(acked, ResponseError):
                    raise await demoted(self.redis, acked)
                if isinstance(acked, Exception):
                    raise acked
                self.wait.check(f"{len(batch)} calls", int(acked))
        except BaseException as exc:  # cancelled too: no caller is left waiting
            for c in batch:
                _settle(c.answer, exc)
            if not isinstance(exc, Exception):
                raise
            return
        for c, reply in zip(batch, replies, strict=True):
            if isinstance(reply, NoScriptError):
                # A server without the script (restarted while the pipeline was retried):
                # it did not run; sent again alone, which loads it.
                try:
                    reply = await self.wait.call(
                        self.redis, c.script, c.keys, c.args, more_keys=c.more_keys
                    )
                except Exception as exc:
                    reply = exc
            _settle(c.answer, reply)


def _retrieved(answer: asyncio.Future[Any]) -> None:
    """An answer whose caller gave up is still looked at: no "never retrieved" warning."""
    if not answer.cancelled():
        answer.exception()


def _settle(answer: asyncio.Future[Any], value: Any) -> None:
    if answer.done():
        return
    if isinstance(value, asyncio.CancelledError):
        answer.cancel()
    elif isinstance(value, BaseException):
        answer.set_exception(value)
    else:
        answer.set_result(value)
