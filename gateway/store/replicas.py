"""Waiting for replicas before an acknowledgement leaves the gateway.

A 202 for a new notice and a receipt answered to the SMSC promise that the write behind them
survives. With one Redis that is the primary's own persistence; with Sentinel a failover
promotes a replica, and a write the replica had not received yet is gone. ``ReplicaWait``
sends ``WAIT <replicas> <timeout>`` on the same connection, right after the write (one
pipeline: one round trip, plus the replica's acknowledgement): a write it confirms is on the
replica Sentinel promotes. On a Redis Cluster the write and ``WAIT`` go together to the
primary of the write's slot (``WAIT`` counts that shard's replicas, the ones a promotion
picks from); a node that no longer holds the slot answers MOVED, and that is an outage too.
One it cannot confirm in time raises ``NotReplicated`` (a
``STORE_DOWN`` error): the API answers 503, a receipt stays unanswered and its batch is
written again (the scripts are idempotent per event) until a replica confirms it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import PipelineCommand
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    NoScriptError,
    ResponseError,
    TryAgainError,
)

from gateway.settings import RedisSettings
from gateway.store.outage import NotReplicated
from gateway.store.redis_conn import is_cluster, reset_is_an_outage
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
        if is_cluster(redis):
            key_list, arg_list = script.operands(keys, args, more_keys)
            evalsha = ("EVALSHA", script.sha, len(key_list), *key_list, *arg_list)
            commands = [evalsha, self._wait]
            result, acked = await _on_slot_primary(redis, key_list[0], commands, script)
            self.check(script.name, int(acked))
            return result
        async with redis.pipeline(transaction=False) as pipe:
            await script(keys, args, more_keys=more_keys, client=pipe)
            pipe.execute_command("WAIT", self.replicas, self.timeout_ms)
            result, acked = await on_primary(redis, pipe.execute())
        self.check(script.name, int(acked))
        return result

    async def touch(self, redis: aioredis.Redis, key: str, ttl_s: int) -> None:
        """Once the writes before it (on any connection) are on the replicas: an ``EXPIRE``
        of ``key`` and ``WAIT`` on one connection. The key must exist where it lands, so a
        failover between those writes and this call cannot pass for a confirmation."""
        if not self.replicas:
            return
        (found,) = await self.commands(redis, key, ("EXPIRE", key, ttl_s))
        if not found:
            raise NotReplicated(f"{key} is not on the primary (a failover lost it)")

    async def commands(
        self, redis: aioredis.Redis, key: str, *writes: tuple[Any, ...], atomic: bool = False
    ) -> list[Any]:
        """``writes`` (commands on ``key``'s slot; with ``atomic``, in one ``MULTI``) on one
        connection, then ``WAIT`` for the replicas; the writes' replies."""
        batch = [("MULTI",), *writes, ("EXEC",)] if atomic else list(writes)
        if self.replicas:
            batch.append(self._wait)
        if is_cluster(redis):
            replies = await _on_slot_primary(redis, key, batch)
        else:
            async with redis.pipeline(transaction=False) as pipe:
                for command in batch:
                    pipe.execute_command(*command)
                replies = await on_primary(redis, pipe.execute())
        if self.replicas:
            self.check(str(writes[0][0]), int(replies.pop()))
        return list(replies[-1]) if atomic else replies

    @property
    def _wait(self) -> tuple[Any, ...]:
        return ("WAIT", self.replicas, self.timeout_ms)

    def check(self, what: str, acked: int) -> None:
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


async def on_primary(redis: aioredis.Redis, replies: Awaitable[list[Any]]) -> list[Any]:
    """A pipeline's replies; a node demoted by a failover (still connected from before it)
    runs a script that wrote nothing but refuses WAIT: that is the store being away, and the
    pool's idle connections are dropped so the next ones ask the sentinels again."""
    try:
        return await replies
    except ResponseError as exc:
        err = await demoted(redis, exc)
        if err is exc:
            raise
        raise err from exc


async def demoted(redis: aioredis.Redis, exc: ResponseError) -> Exception:
    """What a pipeline's ``exc`` means: a ``WAIT`` refused by a node demoted in a failover is
    the store being away (the pool's idle connections dropped, so the next ones ask the
    sentinels again); any other error stays itself."""
    if "replica" not in str(exc):
        return exc  # type: ignore[no-any-return]
    await redis.connection_pool.disconnect(inuse_connections=False)
    return NotReplicated(f"WAIT went to a replica: {exc}")


async def _on_slot_primary(
    redis: Any, key: str, commands: Sequence[tuple[Any, ...]], script: Any = None
) -> list[Any]:
    """``commands`` (writes, then ``WAIT``) on one connection to the primary the client has
    for ``key``'s slot, not redirected: a WAIT that went elsewhere than the writes would
    confirm nothing. A script the node has not loaded yet (a promoted replica, a new node)
    is loaded there and the commands sent once more. Their replies, in order."""
    if redis._initialize:  # the slot map, read once
        await redis.initialize()
    node = redis.get_node_from_key(key)
    for attempt in (1, 2):
        cmds = [PipelineCommand(i, *c) for i, c in enumerate(commands)]
        async with reset_is_an_outage(commands[0][0]):
            await node.execute_pipeline(cmds)
        replies = [c.result for c in cmds]
        if script is not None and attempt == 1 and isinstance(replies[0], NoScriptError):
            await node.execute_command("SCRIPT", "LOAD", script.source)
            continue
        for reply in replies:
            if isinstance(reply, (MovedError, AskError, TryAgainError, ClusterDownError)):
                if isinstance(reply, MovedError):  # the next call asks the slot's new primary
                    await redis.nodes_manager.move_slot(reply)
                raise NotReplicated(f"{commands[0][0]} on {node.name}: {reply}") from reply
            if isinstance(reply, ResponseError) and "replica" in str(reply):
                raise NotReplicated(f"{commands[0][0]} on {node.name}: {reply}") from reply
            if isinstance(reply, Exception):
                raise reply
        return replies
    raise AssertionError("unreachable")


NO_WAIT = ReplicaWait()
