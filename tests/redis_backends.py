"""Which Redis the ``gateway`` fixtures use: ``redis_backend`` is the session's one Redis, and
for tests marked ``sentinel`` also the session's Sentinel set, for tests marked ``cluster``
also the session's Redis Cluster, with three lanes (the test runs once more on each)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.redis_cluster import ClusterSet, running_cluster_set
from tests.redis_sentinel import RedisBackend, SentinelSet, running_sentinel_set


@pytest.fixture(scope="session")
def sentinel_set() -> Iterator[SentinelSet]:
    """A primary, a replica and three sentinels for the session (about 0.5 s to start)."""
    with running_sentinel_set() as stack:
        yield stack


@pytest.fixture(scope="session")
def cluster_set() -> Iterator[ClusterSet]:
    """Three primaries and three replicas for the session (a few seconds to start)."""
    with running_cluster_set() as stack:
        yield stack


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Tests marked "sentinel" / "cluster" run once more on each: one Redis first.
    if "redis_backend" not in metafunc.fixturenames:
        return
    backends = ["single"]
    backends += [m for m in ("sentinel", "cluster") if metafunc.definition.get_closest_marker(m)]
    if len(backends) > 1:
        metafunc.parametrize("redis_backend", backends, indirect=True)


@pytest.fixture
def redis_backend(request: pytest.FixtureRequest) -> RedisBackend:
    name = getattr(request, "param", "single")
    if name == "sentinel":
        stack: SentinelSet = request.getfixturevalue("sentinel_set")
        return RedisBackend("sentinel", stack.env["GATEWAY_REDIS_URL"], stack.env)
    if name == "cluster":
        cluster: ClusterSet = request.getfixturevalue("cluster_set")
        # Three lanes: each lane's tag is a slot of its own, most often on another shard, so
        # entities and readers cross slots (docs/redis-cluster.md).
        return RedisBackend("cluster", cluster.url, {**cluster.env, "GATEWAY_REDIS_LANES": "3"})
    return RedisBackend("single", request.getfixturevalue("redis_server"), {})
