"""A live consumer takes back its own entries that it does not hold (real Redis)."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from gateway.store.keys import Keys
from gateway.store.replicas import NO_WAIT
from gateway.store.streams import ClaimOwn, StreamGroup


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


async def test_claim_own_takes_again_only_what_this_consumer_still_holds(
    redis_server: str, prefix: str
) -> None:
    # A worker's confirmation before it hands over what it read: an entry another consumer
    # holds now (it read it after a rollback, or reclaimed it), acked or deleted, is left out.
    r = aioredis.from_url(redis_server, decode_responses=True)
    keys = Keys(prefix)
    streams = [f"{prefix}:{{{prefix}.L0}}:claim-a", f"{prefix}:{{{prefix}.L0}}:claim-b"]
    claim_own = ClaimOwn(r, keys)
    try:
        ids: list[list[str]] = []
        for stream in streams:
            await r.xgroup_create(stream, "g", id="0", mkstream=True)
            ids.append([await r.xadd(stream, {"n": str(i)}) for i in range(4)])
            await r.xreadgroup("g", "me", {stream: ">"}, count=4)
        a, b = ids
        await r.xclaim(streams[0], "g", "other", 0, [a[1]])  # another worker holds it now
        await r.xack(streams[0], "g", a[2])  # settled
        await r.xdel(streams[1], b[0])  # gone from the stream
        got = await claim_own(NO_WAIT, streams, "g", "me", ids)
        assert got == [[a[0], a[3]], [b[1], b[2], b[3]]]
        pending = await r.xpending_range(streams[0], "g", "-", "+", 10, consumername="other")
        assert [p["message_id"] for p in pending] == [a[1]]  # still the other's
    finally:
        await r.delete(*streams)
        await r.aclose()
