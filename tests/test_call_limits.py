"""GATEWAY_MAX_CALLS holds across worker processes: the slot set lives in Redis."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from gateway.store import lua


async def test_call_slots_are_shared_and_expire(redis_server: str, prefix: str) -> None:
    # Two clients stand for two worker processes sharing one Redis.
    a = aioredis.Redis.from_url(redis_server, decode_responses=True)
    b = aioredis.Redis.from_url(redis_server, decode_responses=True)
    try:
        key = f"{prefix}:voice:active"
        slot_a, slot_b = a.register_script(lua.CALL_SLOT), b.register_script(lua.CALL_SLOT)
        assert await slot_a(keys=[key], args=["n1:1", 300, 2]) == 1
        assert await slot_b(keys=[key], args=["n2:1", 60_000, 2]) == 1
        assert await slot_a(keys=[key], args=["n3:1", 60_000, 2]) == 0  # full for everyone
        await asyncio.sleep(0.4)  # n1's slot expired (its process "died")
        assert await slot_b(keys=[key], args=["n3:1", 60_000, 2]) == 1
        await b.zrem(key, "n2:1")  # a call ends
        assert await slot_a(keys=[key], args=["n4:1", 60_000, 2]) == 1
    finally:
        await a.aclose()
        await b.aclose()
