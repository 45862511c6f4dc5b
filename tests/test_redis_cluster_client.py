"""The gateway's Redis Cluster client where redis-py's differs from what the gateway needs
(gateway/store/redis_conn.py), on the session's real 3+3 cluster."""

from __future__ import annotations

import threading

import pytest
import redis

from gateway.settings import RedisSettings
from gateway.store.redis_conn import connect
from tests.redis_cluster import ClusterSet


def _getkeys_calls(cluster: ClusterSet) -> int:
    total = 0
    for node in cluster.nodes:
        with redis.Redis(port=node.port) as r:
            stats = r.info("commandstats")
            total += int(stats.get("cmdstat_command|getkeys", {}).get("calls", 0))
    return total


async def test_stream_reads_and_transactions_stay_in_the_callers_loop(
    cluster_set: ClusterSet, prefix: str
) -> None:
    client = connect(RedisSettings(redis_url=cluster_set.url))
    stream = f"{prefix}:{{{prefix}.L0}}:q"
    try:
        await client.xgroup_create(stream, "g", id="0", mkstream=True)
        await client.xadd(stream, {"a": "1"})
        before = _getkeys_calls(cluster_set)
        got = [await client.xreadgroup("g", "c", {stream: ">"}, count=10, block=1)]
        got += [await client.xreadgroup("g", "c", {stream: ">"}, count=10, block=1)]
        assert got[0][0][1][0][1] == {"a": "1"}
        assert _getkeys_calls(cluster_set) == before  # no round trip to find the key

        threads = threading.active_count()
        pipe = client.pipeline(transaction=True)
        pipe.hset(f"{stream}:h", "f", "v")
        pipe.expire(f"{stream}:h", 60)
        pipe.hgetall(f"{stream}:h")
        assert threading.active_count() == threads  # queued here, not in a thread of its own
        assert (await pipe.execute())[-1] == {"f": "v"}
        with pytest.raises(TypeError, match="Lua script"):
            await client.pipeline(transaction=True).watch(f"{stream}:h")
    finally:
        await client.aclose()  # its node connections are of this loop: it closes
