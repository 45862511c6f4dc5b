"""The changes that must be atomic, raced from separate connections against the real Redis:
clone reports, job cancel, the voice retry mover, an outcome with its fallback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from gateway.core.records import Notice, QueueEntry
from gateway.core.statuses import NoticeStatus
from gateway.store.job_scripts import JobScripts, Progress
from gateway.store.keys import Keys
from gateway.store.notice_scripts import Fallback
from gateway.store.notices import NoticeStore, now_iso
from gateway.store.voice_scripts import VoiceScripts

AT = "2026-11-28T08:00:00.000Z"


@pytest.fixture
async def clients(redis_server: str) -> AsyncIterator[tuple[aioredis.Redis, aioredis.Redis]]:
    """Two clients stand for two worker processes sharing one Redis."""
    a = aioredis.Redis.from_url(redis_server, decode_responses=True)
    b = aioredis.Redis.from_url(redis_server, decode_responses=True)
    yield a, b
    await a.aclose()
    await b.aclose()


def voice_notice(notice_id: str, *, kind: str = "parking_notice") -> Notice:
    return Notice(
        id=notice_id,
        kind=kind,
        channel="voice",
        to="13800000001",
        text="请挪车",
        plate="云A12345",
        location="人民路",
        key_id="k1",
        callback_url="https://cb.example/hook",
        created_at=AT,
        parts=1,
    )


async def webhooks(r: aioredis.Redis, keys: Keys, lane: int = 0) -> list[dict[str, str]]:
    return [fields for _, fields in await r.xrange(keys.webhook_queue(lane))]


async def test_clone_reports_from_two_workers_at_once_count_exactly(
    clients: tuple[aioredis.Redis, aioredis.Redis], prefix: str
) -> None:
    a, b = clients
    keys = Keys(prefix)
    store = NoticeStore(a, keys)
    for i in range(4):
        await store.create(voice_notice(f"ntc_c{i}"), keys.voice_queue(0))
    recipients = [("cc1", "https://cc.example/events")]
    workers = [VoiceScripts(a, keys), VoiceScripts(b, keys)]
    counts = await asyncio.gather(
        *(
            w.record_suspected_clone(notice_id=f"ntc_c{i % 4}", at=AT, recipients=recipients)
            for i in range(50)
            for w in workers
        )
    )
    assert sorted(counts) == list(range(1, 101))  # every report saw its own count
    report = json.loads(await a.hget(keys.suspected_clones(0), "云A12345"))
    assert report["count"] == 100
    sent = await webhooks(a, keys)
    assert len(sent) == 100
    assert {json.loads(w["body"])["detail"]["count"] for w in sent} == set(range(1, 101))


async def test_a_clone_report_for_a_notice_without_a_plate_counts_nothing(
    clients: tuple[aioredis.Redis, aioredis.Redis], prefix: str
) -> None:
    a, _ = clients
    keys = Keys(prefix)
    await a.hset(keys.notice("ntc_np"), mapping={"id": "ntc_np", "status": "queued"})
    got = await VoiceScripts(a, keys).record_suspected_clone(
        notice_id="ntc_np", at=AT, recipients=[("cc1", "https://cc.example/events")]
    )
    assert got == 0
    assert not await a.exists(keys.suspected_clones(0), keys.webhook_queue(0))


async def test_job_cancel_is_one_step_with_its_callback_however_many_race(
    clients: tuple[aioredis.Redis, aioredis.Redis], prefix: str
) -> None:
    a, b = clients
    keys = Keys(prefix)
    await a.hset(
        keys.job("job_x"),
        mapping={
            "id": "job_x",
            "status": "running",
            "total": 3,
            "channel": "sms",
            "key_id": "k1",
            "callback_url": "https://cb.example/jobs",
        },
    )
    await a.hset(keys.job_counts("job_x"), mapping={"queued": 2, "delivered": 1, "capped": 0})
    await a.zadd(keys.jobs_active(0), {"job_x": 1})
    scripts = [JobScripts(a, keys), JobScripts(b, keys)]
    before = await asyncio.gather(
        *(s.cancel(job_id="job_x", at=AT) for _ in range(20) for s in scripts)
    )
    assert sorted(before) == ["cancelled"] * 39 + ["running"]
    job = await a.hgetall(keys.job("job_x"))
    assert (job["status"], job["cancelled_at"]) == ("cancelled", AT)
    assert not await a.zscore(keys.jobs_active(0), "job_x")
    assert await a.zscore(keys.jobs_cancelled(0), "job_x")
    (hook,) = await webhooks(a, keys)
    assert json.loads(hook["body"]) == {
        "id": "job_x",
        "kind": "reminder_job",
        "channel": "sms",
        "status": "cancelled",
        "at": AT,
        "detail": {"total": 3, "counts": {"queued": 2, "delivered": 1}},
    }


async def test_a_job_ends_once_when_its_lanes_add_up_however_many_dispatchers_race(
    clients: tuple[aioredis.Redis, aioredis.Redis], prefix: str
) -> None:
    a, b = clients
    keys = Keys(prefix, 3)
    job = {"id": "job_y", "status": "running", "total": 5, "channel": "sms", "key_id": "k1"}
    await a.hset(keys.job("job_y"), mapping={**job, "callback_url": "https://cb.example/jobs"})
    lane = keys.job_lane("job_y")
    await a.zadd(keys.jobs_active(lane), {"job_y": 1})
    # Three lanes' parts: 2 + 2 + 1 rows with an outcome.
    for part, (done, delivered) in enumerate([(2, 2), (2, 1), (1, 1)]):
        await a.hset(keys.job("job_y", part), "done", done)
        await a.hset(keys.job_counts("job_y", part), mapping={"delivered": delivered})
    await a.hset(keys.job_counts("job_y", 1), "undeliverable", 1)
    scripts = [JobScripts(a, keys), JobScripts(b, keys)]
    (progress,) = await scripts[0].progress(["job_y"])
    assert progress == Progress(5, {"delivered": 4, "undeliverable": 1})
    # A sum short of the total ends nothing.
    short = Progress(4, progress.counts)
    assert await scripts[0].finish(job_id="job_y", progress=short, at=AT) == "running"
    after = await asyncio.gather(
        *(s.finish(job_id="job_y", progress=progress, at=AT) for _ in range(20) for s in scripts)
    )
    assert after == ["finished"] * 40
    assert not await a.zscore(keys.jobs_active(lane), "job_y")
    (hook,) = await webhooks(a, keys, lane)
    body = json.loads(hook["body"])
    assert (body["status"], body["detail"]) == ("finished", {"total": 5, "counts": progress.counts})
    # A cancelled job is not finished afterwards.
    await a.hset(keys.job("job_y"), "status", "cancelled")
    assert await scripts[1].finish(job_id="job_y", progress=progress, at=AT) == "cancelled"


async def test_a_jobs_cursor_only_moves_forward_and_makes_no_job(
    clients: tuple[aioredis.Redis, aioredis.Redis], prefix: str
) -> None:
    a, _ = clients
    keys = Keys(prefix)
    scripts = JobScripts(a, keys)
    await a.hset(keys.job("job_c"), mapping={"status": "running", "total": 10})
    assert await scripts.advance(job_id="job_c", cursor=6) == 6
    assert await scripts.advance(job_id="job_c", cursor=4) == 6  # a late, stale dispatcher
    assert await a.hget(keys.job("job_c"), "cursor") == "6"
    assert await scripts.advance(job_id="job_gone", cursor=3) == -1
    assert not await a.exists(keys.job("job_gone"))


async def test_cancelling_an_ended_or_unknown_job_changes_nothing(
    clients: tuple[aioredis.Redis, aioredis.Redis], prefix: str
) -> None:
    a, _ = clients
    keys = Keys(prefix)
    await a.hset(keys.job("job_f"), mapping={"status": "finished", "callback_url": "https://x"})
    scripts = JobScripts(a, keys)
    assert await scripts.cancel(job_id="job_f", at=AT) == "finished"
    assert await scripts.cancel(job_id="job_none", at=AT) == "unknown"
    assert await a.hget(keys.job("job_f"), "status") == "finished"
    assert not await a.exists(keys.webhook_queue(0), keys.jobs_cancelled(0))


async def test_two_retry_movers_racing_move_each_due_notice_exactly_once(
    clients: tuple[aioredis.Redis, aioredis.Redis], prefix: str
) -> None:
    a, b = clients
    keys = Keys(prefix)
    ids = [f"ntc_r{i}" for i in range(150)]
    for i, nid in enumerate(ids):
        kind = "reminder" if i % 3 == 0 else "parking_notice"
        await a.hset(keys.notice(nid), mapping={"id": nid, "kind": kind})
    await a.zadd(keys.voice_retry(0), {nid: 1000 + i for i, nid in enumerate(ids)})
    await a.zadd(keys.voice_retry(0), {"ntc_later": 10**15})  # not due
    movers = [VoiceScripts(a, keys), VoiceScripts(b, keys)]
    moved = await asyncio.gather(
        *(m.move_due_retries(now_ms=10**13, max_moved=7) for _ in range(15) for m in movers)
    )
    assert sum(moved) == 150
    priority = [f["id"] for _, f in await a.xrange(keys.voice_queue(0))]
    bulk = [f["id"] for _, f in await a.xrange(keys.voice_bulk_queue(0))]
    assert sorted(priority + bulk) == sorted(ids)
    assert sorted(bulk) == sorted(ids[::3])
    assert await a.zrange(keys.voice_retry(0), 0, -1) == ["ntc_later"]


async def test_an_outcome_with_a_fallback_makes_exactly_one_and_links_it(
    clients: tuple[aioredis.Redis, aioredis.Redis], prefix: str
) -> None:
    a, b = clients
    keys = Keys(prefix)
    stores = [NoticeStore(a, keys), NoticeStore(b, keys)]
    original = voice_notice("ntc_v1")
    await stores[0].create(original, keys.voice_queue(0))
    await stores[0].transition("ntc_v1", NoticeStatus.DIALING, {"attempt": 3})
    # The same ended call reported by two workers (a redelivered entry), each with its own id.
    results = await asyncio.gather(
        *(
            s.outcome(
                "ntc_v1",
                NoticeStatus.BUSY,
                {"reason": 5},
                fallback=Fallback.of(
                    original.fallback_to("sms", id=f"ntc_s{i}", at=AT), keys.sms_queue(0)
                ),
            )
            for i, s in enumerate(stores)
        )
    )
    assert sorted(r.changed for r in results) == [False, True]
    (made,) = [r for r in results if r.changed]
    assert made.fallback_id in ("ntc_s0", "ntc_s1")
    assert await a.hget(keys.notice("ntc_v1"), "fallback_id") == made.fallback_id
    sms = await stores[0].get(made.fallback_id)
    assert sms is not None
    assert (sms.channel, sms.status, sms.fallback_of, sms.plate) == (
        "sms",
        "queued",
        "ntc_v1",
        "云A12345",
    )
    assert [h["status"] for h in sms.history] == ["queued"]
    other = "ntc_s1" if made.fallback_id == "ntc_s0" else "ntc_s0"
    assert not await a.exists(keys.notice(other))
    (entry,) = [f for _, f in await a.xrange(keys.sms_queue(0))]
    assert QueueEntry.from_fields(entry) == QueueEntry(made.fallback_id, "8613800000001", "请挪车")


async def test_an_outcome_schedules_a_retry_only_when_the_status_changes(
    clients: tuple[aioredis.Redis, aioredis.Redis], prefix: str
) -> None:
    a, _ = clients
    keys = Keys(prefix)
    store = NoticeStore(a, keys)
    await store.create(voice_notice("ntc_v2"), keys.voice_queue(0))
    await store.transition("ntc_v2", NoticeStatus.DIALING, {"attempt": 1})
    first = await store.outcome("ntc_v2", NoticeStatus.NO_ANSWER, {}, retry_at_ms=5000)
    assert (first.changed, first.retry_scheduled, first.fallback_id) == (True, True, "")
    assert await a.zscore(keys.voice_retry(0), "ntc_v2") == 5000
    await a.zrem(keys.voice_retry(0), "ntc_v2")
    again = await store.outcome("ntc_v2", NoticeStatus.NO_ANSWER, {}, retry_at_ms=6000)
    assert (again.changed, again.retry_scheduled) == (False, False)
    assert not await a.exists(keys.voice_retry(0))
    # A cancelled notice gets neither a retry nor a fallback.
    await store.transition("ntc_v2", NoticeStatus.CANCELLED, {"attempt": 2})
    fb = Fallback.of(
        voice_notice("ntc_v2").fallback_to("sms", id="ntc_s9", at=now_iso()), keys.sms_queue(0)
    )
    late = await store.outcome("ntc_v2", NoticeStatus.FAILED, {"attempt": 3}, fallback=fb)
    assert not late.changed
    assert not await a.exists(keys.notice("ntc_s9"), keys.sms_queue(0))
