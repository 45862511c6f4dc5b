"""A store's lane count is written by its first process; one set to another refuses to start
(gateway/store/lane_count.py)."""

from __future__ import annotations

import asyncio
import sys

import pytest
import redis.asyncio as aioredis

from gateway.store.keys import Keys
from gateway.store.lane_count import LaneCountChanged, check_lane_count


async def test_a_new_store_takes_the_lane_count_it_is_first_started_with(
    r: aioredis.Redis, prefix: str
) -> None:
    await check_lane_count(r, Keys(prefix, 3))
    assert await r.get(Keys(prefix).lane_count) == "3"
    await check_lane_count(r, Keys(prefix, 3))  # again: the same
    with pytest.raises(LaneCountChanged, match="GATEWAY_REDIS_LANES=3"):
        await check_lane_count(r, Keys(prefix, 4))
    with pytest.raises(LaneCountChanged):
        await check_lane_count(r, Keys(prefix, 1))


async def test_a_store_from_before_the_mark_with_notices_in_it_has_one_lane(
    r: aioredis.Redis, prefix: str
) -> None:
    await r.xadd(Keys(prefix).events(0), {"type": "status"})
    with pytest.raises(LaneCountChanged, match="kept in 1 lane"):
        await check_lane_count(r, Keys(prefix, 3))
    await check_lane_count(r, Keys(prefix))
    assert await r.get(Keys(prefix).lane_count) == "1"


async def test_serve_refuses_to_start_on_a_store_of_another_lane_count(
    r: aioredis.Redis, prefix: str, redis_server: str
) -> None:
    await r.set(Keys(prefix).lane_count, "1")
    env = {"GATEWAY_REDIS_URL": redis_server, "GATEWAY_REDIS_PREFIX": prefix, "PATH": ""}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "serve", "--role", "api",
        env={**env, "GATEWAY_REDIS_LANES": "3"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 2
    assert b"GATEWAY_REDIS_LANES=1" in err
