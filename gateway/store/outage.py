"""Redis going away is routine (a restart, a failover): loops wait it out instead of ending.

``STORE_DOWN`` are the errors that mean "Redis is not there right now"; anything else is a
bug and still ends the loop (and the process, non-zero). A loop calls ``Outage.pause`` on
those errors and ``Outage.ok`` after a step that worked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    ReadOnlyError,
    RedisError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)
T = TypeVar("T")


class NotReplicated(RedisError):  # type: ignore[misc]
    """The primary has a write, but not the replicas an acknowledgement waits for
    (``gateway.store.replicas``): until they do, a failover could lose it."""


# BusyLoadingError: a restarted Redis still reading its AOF. ReadOnlyError: a replica just
# demoted by a failover (with Sentinel, redis-py reports it as a ConnectionError; so is
# MasterNotFoundError, while no sentinel names a primary). TryAgainError: a cluster slot in
# migration. ClusterDownError, SlotNotCoveredError: a cluster promoting a replica (its
# primary of a slot is gone). A cluster with no node answering is a ConnectionError
# (gateway.store.redis_conn.ClusterUnreachable). NotReplicated: no replica confirmed a
# write in time.
STORE_DOWN: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    BusyLoadingError,
    ReadOnlyError,
    TryAgainError,
    ClusterDownError,
    SlotNotCoveredError,
    ConnectionResetError,
    NotReplicated,
)


class Outage:
    """Back-off state of one loop: first pause 0.1 s, doubling up to ``cap``."""

    def __init__(self, what: str, cap: float = 2.0) -> None:
        self.what = what
        self.cap = cap
        self._delay = 0.0
        self._since = 0.0

    @property
    def down(self) -> bool:
        return self._delay > 0

    async def pause(self, exc: BaseException) -> None:
        loop = asyncio.get_running_loop()
        if not self.down:
            self._since = loop.time()
            log.warning("%s: Redis unavailable (%r); waiting for it", self.what, exc)
        self._delay = min(self.cap, max(0.1, self._delay * 2))
        await asyncio.sleep(self._delay)

    def ok(self) -> None:
        if self.down:
            took = asyncio.get_running_loop().time() - self._since
            log.warning("%s: Redis is back after %.1f s", self.what, took)
            self._delay = 0.0


async def once_reachable(what: str, step: Callable[[], Awaitable[T]]) -> T:
    """Run ``step`` (a loop's start-up: its consumer group, its heartbeat) until Redis lets
    it through: a store away when a process starts is waited out like one that goes away
    later, instead of ending the loop before it ran."""
    outage = Outage(what)
    while True:
        try:
            result = await step()
        except STORE_DOWN as exc:
            await outage.pause(exc)
            continue
        outage.ok()
        return result
