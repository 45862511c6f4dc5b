"""A live consumer takes back its own entries that it does not hold (real Redis)."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from gateway.store.keys import Keys
from gateway.store.streams import StreamGroup


async def test_orphans_are_the_idle_entries_pending_on_this_consumer_and_not_in_hand(
    redis_server: str, prefix: str
) -> None:
    r = aioredis.from_url(redis_server, decode_responses=True)
    keys = Keys(prefix)
    stream = f"{prefix}:orphan-test"
    me = StreamGroup(r, keys, stream, "g", "me", dead_after=0.2)
    other = StreamGroup(r, keys, stream, "g", "other", dead_after=0.2)
    try:
        await me.ensure()
        ids = [await r.xadd(stream, {"n": str(i)}) for i in range(4)]
        assert len(await me.read(3, 0)) == 3  # ids 0-2 pending on "me"
        assert len(await other.read(1, 0)) == 1  # id 3 pending on "other": not mine
        assert await me.orphans(set()) == []  # not idle long enough yet
        await asyncio.sleep(0.15)
        taken = await me.orphans({ids[1]})  # id 1 is being worked on
        assert [eid for eid, _ in taken] == [ids[0], ids[2]]
        assert [f["n"] for _, f in taken] == ["0", "2"]
        assert await me.orphans(set()) == []  # at most every third of dead_after
        await r.xdel(stream, ids[0])  # gone from the stream meanwhile: acked, not returned
        await asyncio.sleep(0.15)
        again = await me.orphans({ids[1]})
        assert [eid for eid, _ in again] == [ids[2]]
        pending = await r.xpending_range(stream, "g", "-", "+", 10, consumername="me")
        assert {p["message_id"] for p in pending} == {ids[1], ids[2]}
        # Settled, its ack queued and not sent yet (the acker is not running here): not
        # taken back, or the channel would get an entry it has just finished.
        me.ack_later(ids[2])
        await asyncio.sleep(0.15)
        assert await me.orphans({ids[1]}) == []
    finally:
        await r.delete(stream)
        await r.aclose()
