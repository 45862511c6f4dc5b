"""GATEWAY_MAX_CALLS holds across worker processes: the slot set lives in Redis."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from gateway.store.keys import Keys
from gateway.store.voice_scripts import VoiceScripts


async def test_call_slots_are_shared_and_expire(redis_server: str, prefix: str) -> None:
    # Two clients stand for two worker processes sharing one Redis.
    a = aioredis.Redis.from_url(redis_server, decode_responses=True)
    b = aioredis.Redis.from_url(redis_server, decode_responses=True)
    try:
        keys = Keys(prefix)
        slot_a = VoiceScripts(a, keys).take_call_slot
        slot_b = VoiceScripts(b, keys).take_call_slot
        assert await slot_a(member="n1:1", ttl_ms=300, max_calls=2)
        assert await slot_b(member="n2:1", ttl_ms=60_000, max_calls=2)
        assert not await slot_a(member="n3:1", ttl_ms=60_000, max_calls=2)  # full for everyone
        await asyncio.sleep(0.4)  # n1's slot expired (its process "died")
        assert await slot_b(member="n3:1", ttl_ms=60_000, max_calls=2)
        await b.zrem(keys.active_calls, "n2:1")  # a call ends
        assert await slot_a(member="n4:1", ttl_ms=60_000, max_calls=2)
    finally:
        await a.aclose()
        await b.aclose()
