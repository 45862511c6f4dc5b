"""The two scripts that carry bulk traffic, run in the real Redis: admitting a slice of a
job's rows, and applying a batch of carrier ids and receipts in the order they happened."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from gateway.core.records import QueueEntry
from gateway.core.statuses import NoticeStatus
from gateway.settings.smpp_links import ReceiptId
from gateway.sms.carrier_ids import receipt_forms, stored_form
from gateway.store.job_scripts import Admission, AdmitRow, JobScripts
from gateway.store.keys import Keys
from gateway.store.notice_scripts import NoticeScripts
from gateway.store.unmatched_receipts import UnmatchedReceipts

AT = "2026-11-28T08:00:00.000Z"


class Job:
    def __init__(self, r: aioredis.Redis, prefix: str, total: int, cap: int = 0) -> None:
        self.r, self.prefix, self.total, self.cap = r, prefix, total, cap
        self.keys = Keys(prefix)
        self.jobs = JobScripts(r, self.keys)
        self.notices = NoticeScripts(r, self.keys)

    async def open(self) -> None:
        await self.r.hset(
            self.keys.job("job_t1"),
            mapping={"total": self.total, "status": "running", "channel": "sms", "key_id": "k"},
        )

    async def admit_rows(
        self, first: int, rows: list[tuple[str, str]], prev: int = -1
    ) -> list[str]:
        admission = Admission(
            job_id="job_t1", at=AT, day="20261128", retention_s=3600, job_retention_s=7200,
            daily_cap=self.cap, dedup_ttl_s=0, check_opt_out=True, key_id="k", key_name="bo",
            template="traffic_conditions", template_version="1", subject="", channel="sms",
        )  # fmt: skip
        admit_rows = [
            AdmitRow(
                i,
                f"ntc_t{i}",
                to,
                QueueEntry.address("sms", to),
                text,
                3 if text == "long" else 1,
            )
            for i, (to, text) in enumerate(rows, first)
        ]
        return list(
            await self.jobs.admit_rows(
                admission=admission,
                lane=0,
                prev=prev,
                rows=admit_rows,
                queue=self.keys.sms_bulk_queue(0),
            )
        )

    async def finish(self) -> str:
        """What the dispatcher does once every row is admitted."""
        (progress,) = await self.jobs.progress(["job_t1"])
        return await self.jobs.finish(job_id="job_t1", progress=progress, at=AT)

    async def apply(self, *events: Event) -> list[Any]:
        built = [e(self.notices) for e in events]
        fields = [f for e, _ in built for f in e]
        keys = [k for _, ks in built for k in ks]
        return await self.notices.sms_events(
            events=fields,
            event_keys=keys,
            lane=0,
            mapping_ttl_s=600,
            early_ttl_s=600,
            receipt_ttl_ms=600_000,
        )

    async def notice(self, i: int) -> tuple[str, list[str]]:
        status = await self.r.hget(self.keys.notice(f"ntc_t{i}"), "status")
        history = await self.r.lrange(self.keys.history(f"ntc_t{i}"), 0, -1)
        return status, [json.loads(h)["status"] for h in history]

    async def counts(self) -> dict[str, int]:
        raw = await self.r.hgetall(self.keys.job_counts("job_t1"))
        return {k: int(v) for k, v in raw.items() if int(v)}

    async def job(self) -> dict[str, str]:
        return dict(await self.r.hgetall(self.keys.job("job_t1")))


Event = Callable[[NoticeScripts], tuple[list[Any], list[str]]]


SCOPE = "main"  # the id space of the SMSC whose ids these are


def sub(
    i: int,
    mid: str,
    part: int = 0,
    parts: int = 1,
    mode: ReceiptId = "exact",
    scope: str = SCOPE,
    tail: str = "",
) -> Event:
    form = stored_form(mid, mode)
    return lambda ns: ns.submitted_event(f"ntc_t{i}", part, parts, mid, AT, form, scope, 0, tail)


def dlr(
    mid: str,
    status: str = "delivered",
    mode: ReceiptId = "exact",
    scope: str = SCOPE,
    tail: str = "",
) -> Event:
    stat = "DELIVRD" if status == "delivered" else "UNDELIV"
    forms = receipt_forms(mid, mode)
    return lambda ns: ns.receipt_event(
        mid, forms, "main", scope, NoticeStatus(status), AT, stat, "000", tail, lane=0
    )


async def test_a_slice_of_rows_is_admitted_checked_and_counted(
    r: aioredis.Redis, prefix: str
) -> None:
    job = Job(r, prefix, total=5, cap=1)
    await job.open()
    await r.sadd(job.keys.opt_outs(0), "13500000002")
    rows = [
        ("13500000001", "a"),
        ("13500000002", "b"),  # opted out
        ("13500000001", "c"),  # the same person again: over the daily cap of 1
        ("13500000004", "d"),
    ]
    assert await job.admit_rows(0, rows) == ["queued", "opted_out", "capped", "queued"]
    assert await job.counts() == {"queued": 2, "opted_out": 1, "capped": 1}
    assert (await job.job())["lane_cursor"] == "4"
    assert await r.xlen(job.keys.sms_bulk_queue(0)) == 2
    # A dispatcher that restarts sends the same slice again: nothing is admitted twice.
    again = await job.admit_rows(0, [*rows, ("13500000005", "e")])
    assert again == ["seen"] * 4 + ["queued"]
    assert await r.xlen(job.keys.sms_bulk_queue(0)) == 3
    assert await job.notice(4) == ("queued", ["queued"])


async def test_a_slice_past_a_hole_admits_nothing(r: aioredis.Redis, prefix: str) -> None:
    """Slices travel in one pipeline; if one fails, the ones of its lane after it must not
    move the lane's cursor past its rows."""
    job = Job(r, prefix, total=6)
    await job.open()
    rows = [("13500000001", "a"), ("13500000002", "b")]
    # The slice before (rows 0-1) never landed.
    assert await job.admit_rows(2, rows, prev=2) == ["gap", "gap"]
    assert "lane_cursor" not in await job.job()
    assert await r.xlen(job.keys.sms_bulk_queue(0)) == 0
    assert await job.admit_rows(0, rows) == ["queued", "queued"]
    assert await job.admit_rows(2, rows, prev=2) == ["queued", "queued"]
    assert (await job.job())["lane_cursor"] == "4"
    # Rows of a lane need not follow one another (the rows between are in other lanes).
    assert await job.admit_rows(5, rows[:1], prev=4) == ["queued"]
    assert (await job.job())["lane_cursor"] == "6"
    assert await job.admit_rows(4, rows) == ["seen", "seen"]  # a dispatcher read them again
    assert await r.xlen(job.keys.sms_bulk_queue(0)) == 5


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
    assert (await job.job())["status"] == "running"  # the dispatcher ends it
    assert await job.finish() == "finished"


async def test_two_smscs_handing_out_the_same_id_each_reach_their_own_notice(
    r: aioredis.Redis, prefix: str
) -> None:
    # Carrier ids are unique within one SMSC only: the priority carrier's "7" and the bulk
    # carrier's "7" are two messages, whichever order their ids and receipts come in.
    job = Job(r, prefix, total=2)
    await job.open()
    await job.admit_rows(0, [("13500000001", "a"), ("13500000002", "b")])
    other = "bulk"
    assert await job.apply(sub(0, "7"), sub(1, "7", scope=other)) == [1, 1]
    assert await job.apply(dlr("7", scope=other)) == ["final"]
    assert await job.notice(0) == ("submitted", ["queued", "submitted"])
    assert await job.notice(1) == ("delivered", ["queued", "submitted", "delivered"])
    assert await job.apply(dlr("7", "undeliverable")) == ["final"]
    assert await job.counts() == {"delivered": 1, "undeliverable": 1}


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
    assert not await r.exists(
        job.keys.early_receipt(SCOPE, "m0", 0), job.keys.early_receipt(SCOPE, "m1", 0)
    )
    # What a webhook and GET /v1/notices show of a receipt, parked or not:
    for i, mid in ((0, "m0"), (1, "m1")):
        last = json.loads(await r.lindex(job.keys.history(f"ntc_t{i}"), -1))
        assert last["detail"] == {"stat": "DELIVRD", "err": "000", "message_id": mid, "parts": 1}
    assert await job.counts() == {"delivered": 2}


async def test_receipt_ids_in_another_base_case_or_with_zeros_match_their_part(
    r: aioredis.Redis, prefix: str
) -> None:
    job = Job(r, prefix, total=4)
    await job.open()
    rows = [(f"1350000000{i}", "a") for i in range(4)]
    await job.admit_rows(0, rows)
    # hex resp, decimal receipt (trusted: the receipt names the same recipient); zeros and
    # case; receipt first (parked under every form), then its id in hex: only the right
    # notice moves, and no park is left behind.
    t0, t2 = "50000000", "50000002"
    assert await job.apply(
        sub(0, "0000FF", mode="auto", tail=t0), dlr("255", mode="auto", tail=t0)
    ) == [1, "final"]
    assert await job.apply(sub(1, "AbC01", mode="auto"), dlr("000abc01", mode="auto")) == [
        1,
        "final",
    ]
    assert await job.apply(dlr("4660", mode="auto", tail=t2)) == ["early"]
    assert await r.zcard(job.keys.receipts_parked(0)) == 1
    assert await job.apply(sub(2, "1234", mode="auto", tail=t2)) == [1]  # 4660 = 0x1234
    assert await job.notice(2) == ("delivered", ["queued", "submitted", "delivered"])
    assert await r.zcard(job.keys.receipts_parked(0)) == 0
    assert not await r.keys(job.keys.early_receipt("*", "*", 0))
    # exact: a receipt in another form stays parked, and is reported once as unmatched.
    assert await job.apply(sub(3, "00AB"), dlr("ab")) == [1, "early"]
    assert await job.notice(3) == ("submitted", ["queued", "submitted"])
    unmatched = UnmatchedReceipts(r, job.keys)
    reported = await unmatched.report(0, 600)
    assert [(u["id"], u["link"], u["stat"]) for u in reported] == [("ab", "main", "DELIVRD")]
    assert await unmatched.report(0, 600) == []
    assert [u["id"] for u in await unmatched.newest()] == ["ab"]


async def test_a_sequential_id_read_in_another_base_never_takes_another_messages_receipt(
    r: aioredis.Redis, prefix: str
) -> None:
    # An SMSC numbering in hex: message 164 is "a4", message 356 is "164". The receipt for
    # "0000000164" that overtakes its carrier id must not land on message "a4" (whose id it
    # also reads as in decimal), and must not push a4's own parked receipt aside.
    job = Job(r, prefix, total=3)
    await job.open()
    await job.admit_rows(0, [(f"1350000000{i}", "a") for i in range(3)])
    a4, x164 = "50000000", "50000001"
    assert await job.apply(sub(0, "00000000a4", mode="auto", tail=a4)) == [1]
    assert await job.apply(dlr("0000000164", mode="auto", tail=x164)) == ["early"]
    assert await job.notice(0) == ("submitted", ["queued", "submitted"])
    assert await job.apply(sub(1, "0000000164", mode="auto", tail=x164)) == [1]
    assert await job.notice(1) == ("delivered", ["queued", "submitted", "delivered"])
    assert await job.apply(dlr("00000000a4", "undeliverable", mode="auto", tail=a4)) == ["final"]
    assert await job.notice(0) == ("undeliverable", ["queued", "submitted", "undeliverable"])
    # Parked first under its own id, a receipt keeps that place when another parks there.
    t2 = "50000002"
    assert await job.apply(dlr("00000000b4", mode="auto", tail=t2)) == ["early"]  # 0xb4
    assert await job.apply(dlr("00000000180", mode="auto", tail=x164)) == ["early"]  # 0x180
    assert await job.apply(sub(2, "00000000b4", mode="auto", tail=t2)) == [1]
    assert await job.notice(2) == ("delivered", ["queued", "submitted", "delivered"])
    assert await r.zcard(job.keys.receipts_parked(0)) == 1  # 0x180's, still waiting for its id


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
