"""GATEWAY_MAX_CALLS holds across worker processes: the slot set lives in Redis, and a slot
is taken in the same script call that moves the notice to dialing."""

from __future__ import annotations

import asyncio
import json

import redis.asyncio as aioredis

from gateway.core.records import Notice
from gateway.core.statuses import NoticeStatus
from gateway.store.keys import Keys
from gateway.store.notices import NoticeStore, now_iso
from gateway.store.voice_scripts import VoiceScripts


async def _parking(store: NoticeStore, keys: Keys, n: int) -> str:
    notice = Notice(
        id=f"ntc_slot{n}", kind="parking_notice", channel="voice", to=f"1380000000{n}",
        created_at=now_iso(), key_id="k1", text=f"请挪车 {n}",
    )  # fmt: skip
    await store.create(notice, keys.voice_queue(0))
    return notice.id


async def test_call_slots_are_shared_and_expire(redis_server: str, prefix: str) -> None:
    # Two clients stand for two worker processes sharing one Redis.
    a = aioredis.Redis.from_url(redis_server, decode_responses=True)
    b = aioredis.Redis.from_url(redis_server, decode_responses=True)
    try:
        keys = Keys(prefix)
        store = NoticeStore(a, keys)
        ids = [await _parking(store, keys, n) for n in range(5)]

        async def begin(r: aioredis.Redis, nid: str, ttl_ms: int = 60_000) -> str:
            start = await VoiceScripts(r, keys).begin_call(
                notice_id=nid, slot=f"{nid}:s", at=now_iso(), ttl_ms=ttl_ms, max_calls=2,
                max_attempts=2,
            )  # fmt: skip
            return start.state

        assert await begin(a, ids[0], ttl_ms=300) == "dial"
        assert await begin(b, ids[1]) == "dial"
        assert await begin(a, ids[2]) == "full"  # full for everyone
        assert (await a.hget(keys.notice(ids[2]), "status")) == "queued"  # not dialing
        # A notice no longer to be called is told so while every slot is busy, not kept
        # waiting for one (a cancelled job's calls).
        await store.transition(ids[4], NoticeStatus.CANCELLED, {})
        assert await begin(b, ids[4]) == "skip"
        assert await begin(b, "ntc_gone") == "skip"
        await asyncio.sleep(0.4)  # the first slot expired (its process "died")
        assert await begin(b, ids[2]) == "dial"
        await VoiceScripts(b, keys).release_call(f"{ids[1]}:s")  # a call ends
        assert await begin(a, ids[3]) == "dial"
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_call_starts_with_what_the_worker_needs_or_not_at_all(
    redis_server: str, prefix: str
) -> None:
    r = aioredis.Redis.from_url(redis_server, decode_responses=True)
    try:
        keys = Keys(prefix)
        store = NoticeStore(r, keys)
        voice = VoiceScripts(r, keys)
        nid = await _parking(store, keys, 7)

        slots = iter(range(100))

        async def begin():  # type: ignore[no-untyped-def]
            return await voice.begin_call(
                notice_id=nid, slot=f"s{next(slots)}", at=now_iso(), ttl_ms=60_000,
                max_calls=10, max_attempts=2,
            )  # fmt: skip

        first = await begin()
        assert (first.state, first.attempt, first.to, first.text) == (
            "dial", 1, "13800000007", "请挪车 7",
        )  # fmt: skip
        assert first.kind == "parking_notice"
        history = [json.loads(h) for h in await r.lrange(keys.history(nid), 0, -1)]
        assert [h["detail"] for h in history if h["status"] == "dialing"] == [{"attempt": 1}]
        assert (await begin()).attempt == 2  # the retry's attempt
        assert (await begin()).state == "skip"  # no attempts left: no slot taken
        assert await r.zcard(keys.active_calls) == 2
        other = await _parking(store, keys, 8)
        await store.transition(other, NoticeStatus.CANCELLED, {})
        gone = await voice.begin_call(
            notice_id=other, slot="g", at=now_iso(), ttl_ms=60_000, max_calls=10, max_attempts=2
        )
        missing = await voice.begin_call(
            notice_id="ntc_none", slot="m", at=now_iso(), ttl_ms=60_000, max_calls=10,
            max_attempts=2,
        )  # fmt: skip
        assert (gone.state, missing.state) == ("skip", "skip")
        assert await r.zcard(keys.active_calls) == 2  # their slots were given back
        # A slot taken again by the same start is the same slot, not a second one.
        again = await voice._reserve(
            keys={"active_calls": keys.active_calls},
            args={"slot": "s0", "ttl_ms": 60_000, "max_calls": 2},
        )
        assert (again, await r.zcard(keys.active_calls)) == (1, 2)
    finally:
        await r.aclose()
