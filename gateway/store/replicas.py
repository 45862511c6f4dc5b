"""Waiting for replicas before an acknowledgement leaves the gateway.

A 202 for a new notice and a receipt answered to the SMSC promise that the write behind them
survives. With one Redis that is the primary's own persistence; with Sentinel a failover
promotes a replica, and a write the replica had not received yet is gone. ``ReplicaWait``
sends ``WAIT <replicas> <timeout>`` on the same connection, right after the write (one
pipeline: one round trip, plus the replica's acknowledgement): a write it confirms is on the
replica Sentinel promotes. One it cannot confirm in time raises ``NotReplicated`` (a
``STORE_DOWN`` error): the API answers 503, a receipt stays unanswered and its batch is
written again (the scripts are idempotent per event) until a replica confirms it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from gateway.settings import RedisSettings
from gateway.store.outage import NotReplicated
from gateway.store.scripts import Script

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReplicaWait:
    replicas: int = 0  # 0: acknowledge once the primary has the write
    timeout_ms: int = 500

    @classmethod
    def of(cls, settings: RedisSettings) -> ReplicaWait:
        return cls(settings.replicas_to_wait(), settings.redis_wait_timeout_ms)

    async def call(
        self,
        redis: aioredis.Redis,
        script: Script,
        keys: Mapping[str, str],
        args: Mapping[str, Any],
        *,
        more_keys: Sequence[str] = (),
    ) -> Any:
        """``script``'s answer, once ``replicas`` replicas have its write."""
        if not self.replicas:
            return await script(keys, args, more_keys=more_keys)
        async with redis.pipeline(transaction=False) as pipe:
            await script(keys, args, more_keys=more_keys, client=pipe)
            pipe.execute_command("WAIT", self.replicas, self.timeout_ms)
            result, acked = await _on_primary(redis, pipe.execute())
        self._check(script.name, int(acked))
        return result

    async def touch(self, redis: aioredis.Redis, key: str, ttl_s: int) -> None:
        """Once the writes before it (on any connection) are on the replicas: an ``EXPIRE``
        of ``key`` and ``WAIT`` on one connection. The key must exist where it lands, so a
        failover between those writes and this call cannot pass for a confirmation."""
        if not self.replicas:
            return
        async with redis.pipeline(transaction=False) as pipe:
            pipe.expire(key, ttl_s)
            pipe.execute_command("WAIT", self.replicas, self.timeout_ms)
            found, acked = await _on_primary(redis, pipe.execute())
        if not found:
            raise NotReplicated(f"{key} is not on the primary (a failover lost it)")
        self._check("touch", int(acked))

    def _check(self, what: str, acked: int) -> None:
        if acked < self.replicas:
            log.warning(
                "%s: %d of %d replicas confirmed the write within %d ms",
                what,
                acked,
                self.replicas,
                self.timeout_ms,
            )
            raise NotReplicated(
                f"{what}: {acked} of {self.replicas} replicas within {self.timeout_ms} ms"
            )


async def _on_primary(redis: aioredis.Redis, replies: Awaitable[list[Any]]) -> list[Any]:
    """A pipeline's replies; a node demoted by a failover (still connected from before it)
    runs a script that wrote nothing but refuses WAIT: that is the store being away, and the
    pool's idle connections are dropped so the next ones ask the sentinels again."""
    try:
        return await replies
    except ResponseError as exc:
        if "replica" not in str(exc):
            raise
        await redis.connection_pool.disconnect(inuse_connections=False)
        raise NotReplicated(f"WAIT went to a replica: {exc}") from exc


NO_WAIT = ReplicaWait()
