"""The event hub stops reading while no client listens, and the next client still gets
exactly the entries after it subscribed (none of those written meanwhile)."""

from __future__ import annotations

import asyncio

from gateway.api.event_hub import EventHub, entry_key
from gateway.settings import RedisSettings
from gateway.store.apikeys import ApiKey
from gateway.store.keys import Keys
from gateway.store.redis_conn import connect

ADMIN = ApiKey("key_a", "a", "admin", (), "", 1.0, 1, "2026-12-02T00:00:00.000Z")


async def test_a_client_after_an_idle_time_gets_only_what_follows(
    redis_server: str, prefix: str
) -> None:
    redis = connect(RedisSettings(redis_url=redis_server, redis_prefix=prefix))
    stream = Keys(prefix).events(0)
    hub = EventHub(redis, [stream])
    await hub.start()
    try:
        first = await hub.subscribe(ADMIN)
        await redis.xadd(stream, {"type": "status", "id": "n1"})
        async with asyncio.timeout(5):
            while not first.frames:
                await asyncio.sleep(0.01)
        hub.unsubscribe(first)
        await asyncio.sleep(1.2)  # the reader's blocking read ends; then it waits
        assert hub._stale
        for n in range(3):  # nobody listens: not read
            await redis.xadd(stream, {"type": "status", "id": f"idle{n}"})
        newest = (await redis.xrevrange(stream, count=1))[0][0]
        assert hub.position[0] != entry_key(newest)
        later = await hub.subscribe(ADMIN)
        assert later.last == [entry_key(newest)]
        await redis.xadd(stream, {"type": "status", "id": "n2"})
        async with asyncio.timeout(5):
            while not later.frames:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        (only,) = later.take()
        assert b'"id":"n2"' in only
    finally:
        await hub.stop()
        await redis.aclose()
