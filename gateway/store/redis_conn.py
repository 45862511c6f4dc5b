"""The Redis client, made from ``RedisSettings``: one server, the primary Sentinel names, or
a Redis Cluster (docs/redis-cluster.md)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster, TransactionStrategy
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelManagedConnection
from redis.backoff import ExponentialBackoff
from redis.driver_info import DriverInfo
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException

from gateway.settings import RedisSettings
from gateway.store.outage import STORE_DOWN

# How long asking one sentinel, or connecting to the primary it names, may take: a sentinel
# or primary whose host is gone costs this, not a TCP timeout of minutes.
SENTINEL_TIMEOUT = 1.0


class _HiredisPacking:
    """Commands packed by hiredis (C) instead of redis-py's Python loop, which took 18 us a
    script call (4.6% of a ``serve`` process's samples; hiredis: 2.5 us), the same bytes.
    What hiredis does not take (a command name with a space, a value of another type) goes
    to redis-py, which packs it or raises its own error."""

    def pack_command(self, *args: Any) -> list[bytes]:
        first = args[0] if args else None
        if isinstance(first, str) and " " not in first:
            try:
                return [hiredis.pack_command(args)]
            except TypeError:
                pass
        return super().pack_command(*args)  # type: ignore[misc,no-any-return]


class _Connection(_HiredisPacking, Connection):  # type: ignore[misc]
    pass


class _SentinelConnection(_HiredisPacking, SentinelManagedConnection):  # type: ignore[misc]
    pass


class _Sentinel(Sentinel):  # type: ignore[misc]
    """One question to the sentinels at a time: ``discover_master`` reorders its list of
    sentinels in place (the one that answered first), and tasks asking at once during a
    failover could leave one sentinel in it twice and another not at all (redis-py 8.1)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._asking = asyncio.Lock()

    async def discover_master(self, service_name: str) -> Any:
        async with self._asking:
            return await super().discover_master(service_name)


class SentinelRedis(aioredis.Redis):  # type: ignore[misc]
    """A client of the primary Sentinel names; closing it closes the sentinel connections
    (the clients it was made with, whatever order the sentinels' list is in by then)."""

    sentinel: Sentinel | None = None
    sentinel_clients: tuple[aioredis.Redis, ...] = ()

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        try:
            await super().aclose(close_connection_pool)
        finally:
            for client in self.sentinel_clients:
                await client.aclose()


def connect(settings: RedisSettings) -> aioredis.Redis:
    """A client whose replies are ``str`` (all our values are UTF-8 text).

    A command that meets a dropped connection is sent again a few times within about half a
    second (a reconnect, a short blip); longer outages are waited out by the loops around the
    commands (``gateway.store.outage``) and answered 503 by the API.

    With ``redis_sentinels`` every new connection asks the sentinels for the primary of
    ``redis_service``; after a failover the old primary's connections fail (refused, or
    READONLY once it is a replica, which redis-py turns into a ConnectionError) and the next
    ones go to the promoted replica. The database, username and password come from
    ``redis_url``. The client's name and version (CLIENT SETINFO) are looked up once, here:
    left to the pool, each new connection read the package's metadata from disk (1.2 ms a
    connection; 4.6% of the API process's CPU when a burst of requests opened connections).
    """
    common: dict[str, Any] = {
        "decode_responses": True,
        "health_check_interval": 30,
        "socket_keepalive": True,
        "max_connections": 512,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=3),
        "retry_on_error": list(STORE_DOWN),
        "driver_info": DriverInfo(),
    }
    url = urlsplit(settings.redis_url)
    nodes = settings.cluster_nodes()
    if nodes:
        return _cluster(nodes, url, common)
    sentinels = settings.sentinel_addresses()
    if not sentinels:
        if urlsplit(settings.redis_url).scheme == "redis":  # TLS and sockets: redis-py's
            common["connection_class"] = _Connection
        return aioredis.Redis.from_url(settings.redis_url, **common)
    sentinel_password = settings.redis_sentinel_password.get_secret_value()
    sentinel = _Sentinel(
        sentinels,
        sentinel_kwargs={
            "socket_timeout": SENTINEL_TIMEOUT,
            "socket_connect_timeout": SENTINEL_TIMEOUT,
            "password": sentinel_password or None,
            "decode_responses": True,
        },
    )
    client = sentinel.master_for(
        settings.redis_service,
        redis_class=SentinelRedis,
        db=int(url.path.strip("/") or 0),
        username=unquote(url.username) if url.username else None,
        password=unquote(url.password) if url.password else None,
        socket_connect_timeout=SENTINEL_TIMEOUT,
        connection_class=_SentinelConnection,
        **common,
    )
    assert isinstance(client, SentinelRedis)
    client.sentinel = sentinel
    client.sentinel_clients = tuple(sentinel.sentinels)
    return client


class _OneSlotTransaction(TransactionStrategy):  # type: ignore[misc]
    """A ``MULTI`` pipeline on a cluster, queued in the caller's loop. redis-py 8.1 runs
    every command queued on a cluster transaction in a new thread with its own event loop
    (``asyncio.run``): a thread per command, and a client first used there keeps node
    connections of a loop that is gone ("Event loop is closed" when it closes). The
    gateway's transactions name a key as every command's first argument, all of one slot
    (docs/redis-cluster.md), so the slot is computed here and the command queued;
    ``execute`` (MULTI/EXEC on the slot's primary, following MOVED) is redis-py's. WATCH is
    refused: a change that must read first is a Lua script."""

    def execute_command(self, *args: Any, **kwargs: Any) -> ClusterPipeline:
        if args[0] in self.IMMEDIATE_EXECUTE_COMMANDS:
            raise TypeError(f"{args[0]} on a cluster transaction: write a Lua script")
        self._pipeline_slots.add(self._pipe.cluster_client.keyslot(args[1]))
        return super(TransactionStrategy, self).execute_command(*args, **kwargs)

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> Any:
        if self._pipe.cluster_client._initialize:  # the slot map, read in this loop
            await self._pipe.cluster_client.initialize()
        return await super().execute(raise_on_error, allow_redirections)


def is_cluster(redis: Any) -> bool:
    """Whether ``redis`` is a Redis Cluster client (which refuses scripts in a pipeline)."""
    return isinstance(redis, RedisCluster)


class ClusterUnreachable(RedisConnectionError):  # type: ignore[misc]
    """No node of the cluster gave a slot map to work with: none answered (every node
    stopped or restarting), or they disagreed or left slots uncovered (a failover under
    way). A ``ConnectionError``, so in ``STORE_DOWN``: the loops wait it out, the API
    answers 503. redis-py raises a bare ``RedisClusterException`` for these, the class it
    also raises for a command it cannot route (a bug, which must still end the loop)."""


class ClusterReset(RedisConnectionError):  # type: ignore[misc]
    """A command met a connection closed under it. On CLUSTERDOWN (a failover under way)
    redis-py resets its whole client, closing every node's connections, also those other
    tasks are writing on at that moment; their write then fails on a socket that is gone
    (``AttributeError`` in redis-py 8.1). It is the store being away: in ``STORE_DOWN``,
    so the write is waited out and sent again (the scripts are idempotent per event), not
    taken for a bug (which made the SMS path send its parts again, as duplicates)."""


@contextlib.asynccontextmanager
async def reset_is_an_outage(what: object) -> AsyncIterator[None]:
    try:
        yield
    except AttributeError as exc:
        if "NoneType" not in str(exc):
            raise
        raise ClusterReset(f"{what}: its connection was closed by a cluster reset") from exc


class _Pipeline(ClusterPipeline):  # type: ignore[misc]
    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> Any:
        async with reset_is_an_outage("a pipeline"):
            return await super().execute(raise_on_error, allow_redirections)


class _Cluster(RedisCluster):  # type: ignore[misc]
    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with reset_is_an_outage(args[0] if args else "a command"):
            return await super().execute_command(*args, **kwargs)

    async def _determine_slot(self, command: str, *args: Any) -> int:
        """A stream read's slot from its own arguments: redis-py asked the server (COMMAND
        GETKEYS, a round trip) before every XREADGROUP, whose keys it cannot find alone."""
        if command.upper() in ("XREADGROUP", "XREAD"):
            words = [a.upper() if isinstance(a, (str, bytes)) else a for a in args]
            at = next(i for i, w in enumerate(words) if w in ("STREAMS", b"STREAMS")) + 1
            streams = args[at : at + (len(args) - at) // 2]
            slots = {self.keyslot(k) for k in streams}
            if len(slots) == 1:
                return int(slots.pop())
        return await super()._determine_slot(command, *args)  # type: ignore[no-any-return]

    async def initialize(self, *args: Any, **kwargs: Any) -> RedisCluster:
        try:
            return await super().initialize(*args, **kwargs)
        except RedisClusterException as exc:
            raise ClusterUnreachable(str(exc)) from exc

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ClusterPipeline:
        if shard_hint:
            raise TypeError("shard_hint is not used in cluster mode")
        pipe = _Pipeline(self, transaction)
        if transaction:
            pipe._execution_strategy = _OneSlotTransaction(pipe)
        return pipe


def _cluster(nodes: list[tuple[str, int]], url: Any, common: dict[str, Any]) -> aioredis.Redis:
    """A Redis Cluster client: it reads the slot map from the first node that answers and
    sends each command (each script, by its first key) to the primary of its slot, following
    MOVED after a failover or a resharding. ``max_connections`` is per node there. It is not
    an ``aioredis.Redis`` but answers the same commands the store modules send."""
    client = _Cluster(
        startup_nodes=[ClusterNode(host, port) for host, port in nodes],
        username=unquote(url.username) if url.username else None,
        password=unquote(url.password) if url.password else None,
        socket_connect_timeout=SENTINEL_TIMEOUT,
        **common,
    )
    return client
