"""The API key's rate limit when tokens are fetched a few at a time: never more than the shared
limiter grants, across processes; slow keys one token per request."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from gateway.store.keys import Keys
from gateway.store.ratelimit import Gcra, batch_of


@pytest.fixture
async def r(redis_server: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_server, decode_responses=True)
    yield client
    await client.aclose()


def test_slow_keys_take_one_token_at_a_time() -> None:
    assert batch_of(1, 2) == 1
    assert batch_of(100, 200) == 2
    assert batch_of(100_000, 100_000) == 32
    assert batch_of(10_000, 5) == 5  # never more than the burst


async def test_two_processes_together_get_no_more_than_the_burst(r: aioredis.Redis) -> None:
    key = Keys("t").rate("key:k1")
    a, b = Gcra(r), Gcra(r)  # two processes' limiters on one key, batches of 10
    start = time.monotonic()
    results = [await (a if i % 2 else b).take_one(key, 500, 40) for i in range(100)]
    elapsed = time.monotonic() - start
    granted = sum(1 for ok, _ in results if ok)
    assert granted >= 30  # the burst, less what the other process holds unspent
    assert granted <= 40 + 500 * elapsed + 1  # the burst and what the rate added meanwhile
    assert any(not ok and wait > 0 for ok, wait in results)


async def test_a_slow_key_is_refused_at_once_past_its_burst(r: aioredis.Redis) -> None:
    gcra = Gcra(r)
    key = Keys("t").rate("key:k2")
    results = [await gcra.take_one(key, 1, 2) for _ in range(4)]
    assert [ok for ok, _ in results] == [True, True, False, False]
    assert results[-1][1] > 0
