"""Which Redis the ``gateway`` fixtures use: ``redis_backend`` is the session's one Redis, and
for tests marked ``sentinel`` also the session's Sentinel set (the test runs twice)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.redis_sentinel import RedisBackend, SentinelSet, running_sentinel_set


@pytest.fixture(scope="session")
def sentinel_set() -> Iterator[SentinelSet]:
    """A primary, a replica and three sentinels for the session (about 0.5 s to start)."""
    with running_sentinel_set() as stack:
        yield stack


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Tests marked "sentinel" run twice: on one Redis and on the Sentinel set.
    if "redis_backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "sentinel"
    ):
        metafunc.parametrize("redis_backend", ["single", "sentinel"], indirect=True)


@pytest.fixture
def redis_backend(request: pytest.FixtureRequest) -> RedisBackend:
    if getattr(request, "param", "single") == "sentinel":
        stack: SentinelSet = request.getfixturevalue("sentinel_set")
        return RedisBackend("sentinel", stack.env["GATEWAY_REDIS_URL"], stack.env)
    return RedisBackend("single", request.getfixturevalue("redis_server"), {})
