"""The two scripts that carry bulk traffic, run in the real Redis: admitting a slice of a
job's rows, and applying a batch of carrier ids and receipts in the order they happened."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from gateway.store import lua
from gateway.store.batch import pack_events
from gateway.store.keys import Keys

AT = "2026-11-28T08:00:00.000Z"


@pytest.fixture
async def r(redis_server: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_server, decode_responses=True)
    yield client
    await client.aclose()


class Job:
    def __init__(self, r: aioredis.Redis, prefix: str, total: int, cap: int = 0) -> None:
        self.r, self.prefix, self.total, self.cap = r, prefix, total, cap
        self.keys = Keys(prefix)
        self.admit = r.register_script(lua.JOB_ADMIT)
        self.events = r.register_script(lua.SMS_EVENTS)

    async def open(self) -> None:
        await self.r.hset(
            self.keys.job("job_t1"),
            mapping={"total": self.total, "status": "running", "channel": "sms", "key_id": "k"},
        )

    async def admit_rows(self, first: int, rows: list[tuple[str, str]]) -> list[str]:
        args: list[Any] = [
            self.prefix, "job_t1", first, AT, 3600, "20261128", self.cap, 0,
            self.keys.sms_bulk_queue, "1", "k", "traffic_conditions", "1", "", "sms",
        ]  # fmt: skip
        fields: list[Any] = []
        for i, (to, text) in enumerate(rows, first):
            fields += [f"ntc_t{i}", to, "86" + to, text, 3 if text == "long" else 1]
        return list(await self.admit(args=[*args, pack_events(fields)]))

    async def apply(self, *events: list[Any]) -> list[Any]:
        fields = [f for e in events for f in e]
        return list(await self.events(args=[self.prefix, 600, 600, pack_events(fields)]))

    async def notice(self, i: int) -> tuple[str, list[str]]:
        status = await self.r.hget(self.keys.notice(f"ntc_t{i}"), "status")
        history = await self.r.lrange(self.keys.history(f"ntc_t{i}"), 0, -1)
        return status, [json.loads(h)["status"] for h in history]

    async def counts(self) -> dict[str, int]:
        raw = await self.r.hgetall(self.keys.job("job_t1") + ":counts")
        return {k: int(v) for k, v in raw.items() if int(v)}

    async def job(self) -> dict[str, str]:
        return dict(await self.r.hgetall(self.keys.job("job_t1")))


def sub(i: int, mid: str, part: int = 0, parts: int = 1) -> list[Any]:
    return ["s", f"ntc_t{i}", part, mid, parts, AT]


def dlr(mid: str, status: str = "delivered") -> list[Any]:
    return ["r", mid, status, AT, "DELIVRD" if status == "delivered" else "UNDELIV", "000"]


async def test_a_slice_of_rows_is_admitted_checked_and_counted(
    r: aioredis.Redis, prefix: str
) -> None:
    job = Job(r, prefix, total=5, cap=1)
    await job.open()
    await r.sadd(f"{prefix}:optout", "13500000002")
    rows = [
        ("13500000001", "a"),
        ("13500000002", "b"),  # opted out
        ("13500000001", "c"),  # the same person again: over the daily cap of 1
        ("13500000004", "d"),
    ]
    assert await job.admit_rows(0, rows) == ["queued", "opted_out", "capped", "queued"]
    assert await job.counts() == {"queued": 2, "opted_out": 1, "capped": 1}
    assert (await job.job())["cursor"] == "4"
    assert await r.xlen(job.keys.sms_bulk_queue) == 2
    # A dispatcher that restarts sends the same slice again: nothing is admitted twice.
    again = await job.admit_rows(0, [*rows, ("13500000005", "e")])
    assert again == ["seen"] * 4 + ["queued"]
    assert await r.xlen(job.keys.sms_bulk_queue) == 3
    assert await job.notice(4) == ("queued", ["queued"])


async def test_a_slice_past_a_hole_admits_nothing(r: aioredis.Redis, prefix: str) -> None:
    """Slices travel in one pipeline; if one fails, the ones after it must not move the
    cursor past its rows."""
    job = Job(r, prefix, total=6)
    await job.open()
    rows = [("13500000001", "a"), ("13500000002", "b")]
    assert await job.admit_rows(2, rows) == ["gap", "gap"]  # rows 0-1 never landed
    assert "cursor" not in await job.job()
    assert await r.xlen(job.keys.sms_bulk_queue) == 0
    assert await job.admit_rows(0, rows) == ["queued", "queued"]
    assert await job.admit_rows(2, rows) == ["queued", "queued"]
    assert (await job.job())["cursor"] == "4"


async def test_single_part_notices_go_submitted_then_delivered_in_batches(
    r: aioredis.Redis, prefix: str
) -> None:
    job = Job(r, prefix, total=2)
    await job.open()
    await job.admit_rows(0, [("13500000001", "a"), ("13500000002", "b")])
    assert await job.apply(sub(0, "m0"), sub(1, "m1"), dlr("m0")) == [1, 1, "final"]
    assert await job.notice(0) == ("delivered", ["queued", "submitted", "delivered"])
    assert await job.notice(1) == ("submitted", ["queued", "submitted"])
    assert await job.counts() == {"submitted": 1, "delivered": 1}
    # No per-part bookkeeping for a notice of one part.
    assert not await r.exists(job.keys.submitted_parts("ntc_t0"))
    assert await job.apply(dlr("m1", "undeliverable")) == ["final"]
    assert await job.counts() == {"delivered": 1, "undeliverable": 1}
    assert (await job.job())["status"] == "finished"


async def test_a_receipt_that_overtakes_its_carrier_id_is_applied_when_the_id_arrives(
    r: aioredis.Redis, prefix: str
) -> None:
    job = Job(r, prefix, total=2)
    await job.open()
    await job.admit_rows(0, [("13500000001", "a"), ("13500000002", "b")])
    # In another batch (another worker's receipt) ...
    assert await job.apply(dlr("m0")) == ["early"]
    assert await job.apply(sub(0, "m0")) == [1]
    assert await job.notice(0) == ("delivered", ["queued", "submitted", "delivered"])
    # ... and within one batch.
    assert await job.apply(dlr("m1"), sub(1, "m1")) == ["early", 1]
    assert await job.notice(1) == ("delivered", ["queued", "submitted", "delivered"])
    assert not await r.exists(f"{prefix}:early:m0", f"{prefix}:early:m1")
    # What a webhook and GET /v1/notices show of a receipt, parked or not:
    for i, mid in ((0, "m0"), (1, "m1")):
        last = json.loads(await r.lindex(job.keys.history(f"ntc_t{i}"), -1))
        assert last["detail"] == {"stat": "DELIVRD", "err": "000", "message_id": mid, "parts": 1}
    assert await job.counts() == {"delivered": 2}


async def test_a_notice_of_three_parts_waits_for_every_id_and_every_receipt(
    r: aioredis.Redis, prefix: str
) -> None:
    job = Job(r, prefix, total=1)
    await job.open()
    await job.admit_rows(0, [("13500000001", "long")])
    assert await job.apply(sub(0, "p0", 0, 3), sub(0, "p1", 1, 3), dlr("p0")) == [0, 0, "partial"]
    assert await job.notice(0) == ("queued", ["queued"])
    assert await job.apply(sub(0, "p2", 2, 3), dlr("p1")) == [1, "partial"]
    assert await job.notice(0) == ("submitted", ["queued", "submitted"])
    assert await job.apply(dlr("p2", "undeliverable")) == ["final"]
    assert await job.notice(0) == ("undeliverable", ["queued", "submitted", "undeliverable"])
    assert await job.counts() == {"undeliverable": 1}


async def test_a_part_sent_twice_is_counted_once(r: aioredis.Redis, prefix: str) -> None:
    job = Job(r, prefix, total=1)
    await job.open()
    await job.admit_rows(0, [("13500000001", "a")])
    assert await job.apply(sub(0, "m0")) == [1]
    # A worker died before acking; another sent the part again and got another id.
    assert await job.apply(sub(0, "m0b"), dlr("m0"), dlr("m0b")) == [1, "final", "final"]
    assert await job.notice(0) == ("delivered", ["queued", "submitted", "delivered"])
    assert await job.counts() == {"delivered": 1}
    assert (await job.job())["done"] == "1"
