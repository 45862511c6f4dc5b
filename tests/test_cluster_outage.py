"""A Redis Cluster gone away is an outage like a single Redis's restart: the cluster client's
error then is one the loops wait out (``STORE_DOWN``), not a bug that ends them (a channel
task ended on "Redis Cluster cannot be connected" when the nodes stopped)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from gateway.settings import RedisSettings
from gateway.store.keys import Keys
from gateway.store.outage import STORE_DOWN
from gateway.store.redis_conn import ClusterReset, connect, reset_is_an_outage
from tests.redis_cluster import ClusterSet, running_cluster_set


@pytest.fixture
def own_cluster() -> Iterator[ClusterSet]:
    """A cluster of this test's own: its nodes are stopped (the session's must stay up)."""
    with running_cluster_set() as stack:
        yield stack


@pytest.fixture
async def client(own_cluster: ClusterSet) -> AsyncIterator[Any]:
    redis_client = connect(RedisSettings(redis_url=own_cluster.url))
    try:
        yield redis_client
    finally:
        await redis_client.aclose()


async def first_error(call: Callable[[], Awaitable[Any]], within: float = 15.0) -> Exception:
    """The first error ``call`` raises, trying every 50 ms for ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            await call()
        except Exception as exc:
            return exc
        await asyncio.sleep(0.05)
    raise AssertionError(f"no error within {within} s")


async def test_a_stopped_cluster_is_an_outage(own_cluster: ClusterSet, client: Any) -> None:
    key = Keys().in_lane(0) + "probe"
    await client.set(key, "1")
    for node in own_cluster.nodes:
        node.stop()
    error = await first_error(lambda: client.get(key))
    assert isinstance(error, STORE_DOWN), repr(error)
    again = await first_error(lambda: client.get(key))  # the slot map asked again: no node
    assert isinstance(again, STORE_DOWN), repr(again)


async def test_a_write_on_a_connection_a_cluster_reset_closed_is_an_outage() -> None:
    """redis-py closes every node's connections on CLUSTERDOWN, also one another task is
    writing on: its write fails with AttributeError on the socket that is gone."""
    with pytest.raises(ClusterReset) as caught:
        async with reset_is_an_outage("EVALSHA"):
            None.writelines([b"x"])  # type: ignore[attr-defined]
    assert isinstance(caught.value, STORE_DOWN)
    with pytest.raises(AttributeError):  # any other AttributeError is a bug: not hidden
        async with reset_is_an_outage("EVALSHA"):
            object().missing  # type: ignore[attr-defined]  # noqa: B018
