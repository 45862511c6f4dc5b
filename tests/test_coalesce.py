"""Concurrent script calls go to Redis together (gateway.store.coalesce), in the real Redis:
one pipeline for the lot, each caller its own answer or its own error."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from gateway.store.coalesce import Coalescer
from gateway.store.keys import Keys
from gateway.store.scripts import Script
from tests.conftest import free_port


async def _calls(r: aioredis.Redis) -> dict[str, int]:
    stats = await r.info("commandstats")
    return {name: int(v["calls"]) for name, v in stats.items()}


def _take(c: Coalescer, gcra: Script, key: str, rate: object = 10) -> asyncio.Future[object]:
    return asyncio.ensure_future(
        c.call(gcra, keys={"limiter": key}, args={"rate_per_s": rate, "burst": 5, "want": 1})
    )


async def test_calls_made_together_go_in_one_pipeline_and_each_gets_its_answer(
    r: aioredis.Redis, prefix: str
) -> None:
    gcra = Script(r, "gcra", Keys())
    c = Coalescer(r)
    await _take(c, gcra, f"{prefix}:warm")  # the script loaded, the pool warm
    before = await _calls(r)
    answers = await asyncio.gather(*(_take(c, gcra, f"{prefix}:k{i}") for i in range(50)))
    after = await _calls(r)
    assert answers == [[1, 0]] * 50  # every limiter granted its first token
    assert after["cmdstat_evalsha"] - before["cmdstat_evalsha"] == 50
    # A pipeline of scripts asks once whether Redis has them: once per batch.
    assert after["cmdstat_script|exists"] - before.get("cmdstat_script|exists", 0) == 1
    # Again on one key: the limiter's answers, the burst of 5 and no more (the first call,
    # sent alone, and the batch after it are two round trips: their order is Redis's).
    again = await asyncio.gather(*(_take(c, gcra, f"{prefix}:one") for _ in range(8)))
    assert sorted(g for g, _ in again) == [0] * 3 + [1] * 5


async def test_a_scripts_error_reaches_only_its_caller(r: aioredis.Redis, prefix: str) -> None:
    gcra = Script(r, "gcra", Keys())
    c = Coalescer(r)
    good = [_take(c, gcra, f"{prefix}:g{i}") for i in range(3)]
    bad = _take(c, gcra, f"{prefix}:bad", rate="not a number")
    assert await asyncio.gather(*good) == [[1, 0]] * 3
    with pytest.raises(ResponseError):
        await bad


async def test_a_store_away_fails_every_call_of_the_batch_as_an_outage(prefix: str) -> None:
    away = aioredis.Redis(port=free_port(), decode_responses=True)
    try:
        gcra = Script(away, "gcra", Keys())
        c = Coalescer(away)
        calls = [_take(c, gcra, f"{prefix}:x{i}") for i in range(4)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(e, RedisConnectionError) for e in results), results
    finally:
        await away.aclose()


async def test_a_caller_that_gives_up_leaves_the_others_their_answers(
    r: aioredis.Redis, prefix: str
) -> None:
    gcra = Script(r, "gcra", Keys())
    c = Coalescer(r)
    first, second, third = (_take(c, gcra, f"{prefix}:c{i}") for i in range(3))
    await asyncio.sleep(0)
    second.cancel()
    assert await asyncio.gather(first, third) == [[1, 0], [1, 0]]
    assert second.cancelled()
    # Its call was sent anyway: the limiter has the token taken.
    assert await r.exists(f"{prefix}:c1") == 1
