"""Carrier ids and receipts with several lanes (gateway/store/sms_writes.py): a receipt knows
only its carrier id, and reaches its notice's lane whichever of the two comes first."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from gateway.core.records import Notice
from gateway.core.statuses import NoticeStatus
from gateway.store.keys import Keys
from gateway.store.notices import NoticeStore, new_notice_id
from gateway.store.sms_writes import RECENT_S, SmsWrites
from gateway.store.unmatched_receipts import UnmatchedReceipts

AT = "2026-12-03T08:00:00.000Z"
LANES = 3
SCOPE = "main"


class Lanes:
    """A three-lane store, an SMS notice in a lane other than its carrier id's, and the
    link's writes running."""

    def __init__(self, r: aioredis.Redis, prefix: str, mid: str) -> None:
        self.r = r
        self.keys = Keys(prefix, LANES)
        self.store = NoticeStore(r, self.keys)
        self.mid = mid
        self.parked_in = self.keys.carrier_lane(mid)
        self.lane = (self.parked_in + 1) % LANES
        self.notice_id = new_notice_id(self.keys, self.lane)
        self.writes: SmsWrites = self.store.sms_writes(60, 60, 0.001)
        self._runs: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Lanes:
        assert self.keys.notice_lane(self.notice_id) == self.lane != self.parked_in
        await self.message(self.lane, "13800000001", self.notice_id)
        self._runs = [asyncio.create_task(b.run()) for b in self.writes.batchers]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.writes.close()
        await asyncio.gather(*self._runs)

    async def message(self, lane: int, to: str, notice_id: str = "") -> str:
        """A queued SMS notice to ``to`` kept in ``lane``; its id."""
        n = Notice(
            id=notice_id or new_notice_id(self.keys, lane),
            kind="message",
            channel="sms",
            to=to,
            created_at=AT,
            key_id="k",
        )
        await self.store.create(n, self.keys.sms_queue(lane))
        return n.id

    def receipt(self, here: bool = False) -> asyncio.Future[Any]:
        """The receipt, as another process gets it (one that stored no carrier id), or with
        ``here`` as this one does."""
        if not here:
            self.writes._recent.clear()
        return self.writes.receipt(
            self.mid, [self.mid], "main", SCOPE, NoticeStatus.DELIVERED, AT, "DELIVRD", "000", ""
        )

    def submitted(self) -> asyncio.Future[Any]:
        return self.writes.submitted(
            self.notice_id, 0, 1, self.mid, AT, scope=SCOPE, form=self.mid, to_tail=""
        )

    async def status(self) -> str | None:
        status = await self.r.hget(self.keys.notice(self.notice_id), "status")
        return None if status is None else str(status)

    async def settled(self) -> None:
        """The notice is delivered and nothing is parked any more (within 5 s)."""
        async with asyncio.timeout(5):
            while await self.status() != "delivered" or await self.parked() != [0] * LANES:
                await asyncio.sleep(0.01)

    async def parked(self) -> list[int]:
        """How many receipts each lane holds parked (keys and listed entries)."""
        out = []
        for lane in self.keys.each_lane():
            held = await self.r.exists(self.keys.early_receipt(SCOPE, self.mid, lane))
            listed = await self.r.zcard(self.keys.receipts_parked(lane))
            listed += await self.r.zcard(self.keys.receipts_unmatched(lane))
            out.append(held + listed)
        return out


async def test_a_receipt_after_its_carrier_id_goes_to_the_notices_lane(
    r: aioredis.Redis, prefix: str
) -> None:
    async with Lanes(r, prefix, "c-after") as t:
        assert await t.submitted() == 1
        assert await r.exists(t.keys.carrier_id(SCOPE, t.mid, t.lane))
        assert await t.receipt() == "final"
        assert await t.status() == "delivered"
        assert await t.parked() == [0, 0, 0]


async def test_a_receipt_for_a_carrier_id_sent_here_goes_to_its_lane_without_a_read(
    r: aioredis.Redis, prefix: str
) -> None:
    """Even before the carrier id's write has landed: the two meet in the notice's lane."""
    async with Lanes(r, prefix, "c-here") as t:
        reads = 0
        real = t.writes._read

        def counted(keys: list[str]) -> asyncio.Future[list[Any]]:
            nonlocal reads
            reads += len(keys)
            return real(keys)

        t.writes._read = counted  # type: ignore[method-assign]
        stored = t.submitted()
        assert await t.receipt(here=True) in ("final", "early")
        assert await stored == 1
        assert await t.status() == "delivered"
        assert await t.parked() == [0, 0, 0]
        # Neither read: the carrier id need not look for its receipt parked aside either.
        assert reads == 0


async def test_a_receipt_goes_straight_only_for_a_young_id_whose_write_held(
    r: aioredis.Redis, prefix: str
) -> None:
    """An id whose write failed (its part is sent again under another id) or that is older
    than ``RECENT_S`` (the SMSC may have handed it out again since) sends its receipt the
    way that reads the lanes: it parks in its carrier id's lane, not the notice's."""
    async with Lanes(r, prefix, "c-failed") as t:
        batcher = t.writes.batchers[t.lane]
        real = batcher.send

        async def refused(events: list[Any], keys: list[str]) -> Any:
            batcher.send = real  # type: ignore[method-assign]
            raise aioredis.ResponseError("refused once")

        batcher.send = refused  # type: ignore[method-assign]
        with pytest.raises(aioredis.ResponseError):
            await t.submitted()
        assert await t.receipt(here=True) == "early"
        assert (await t.parked())[t.parked_in] == 2
        assert await t.submitted() == 1  # sent again: this time it is stored and moves it
        await t.settled()
    async with Lanes(r, prefix, "c-old") as t:
        assert await t.submitted() == 1
        t.writes._recent[f"{SCOPE}\0{t.mid}"].at -= RECENT_S + 1
        read: list[str] = []
        real_read = t.writes._read

        def counted(keys: list[str]) -> asyncio.Future[list[Any]]:
            read.extend(keys)
            return real_read(keys)

        t.writes._read = counted  # type: ignore[method-assign]
        assert await t.receipt(here=True) == "final"
        assert t.keys.carrier_id(SCOPE, t.mid, t.lane) in read  # found by reading the lanes
        assert await t.status() == "delivered"


async def test_a_receipt_before_its_carrier_id_is_parked_and_then_moved(
    r: aioredis.Redis, prefix: str
) -> None:
    async with Lanes(r, prefix, "c-before") as t:
        assert await t.receipt() == "early"
        held = await t.parked()
        assert held[t.parked_in] == 2  # its copy and its listing
        assert sum(held) == 2
        assert await t.status() == "queued"
        assert await t.submitted() == 1
        await t.settled()  # the carrier id's look for parked receipts runs aside


async def test_another_form_mapped_in_another_lane_for_another_recipient_is_not_ours(
    r: aioredis.Redis, prefix: str
) -> None:
    """A receipt's id read in another base may be another message's carrier id: that one is
    matched only for the same recipient, in another lane as in one."""
    async with Lanes(r, prefix, "c-forms") as t:
        other_lane = (t.lane + 1) % LANES
        other = await t.message(other_lane, "13900000009")
        assert await t.writes.submitted(
            other, 0, 1, "c-alias", AT, scope=SCOPE, form="c-alias", to_tail="0009"
        ) == 1  # fmt: skip
        delivered = NoticeStatus.DELIVERED
        forms = [t.mid, "c-alias"]
        receipt = t.writes.receipt(t.mid, forms, "main", SCOPE, delivered, AT, "D", "0", "0001")
        assert await receipt == "early"
        assert await r.hget(t.keys.notice(other), "status") == "submitted"
        assert await t.writes.submitted(
            t.notice_id, 0, 1, t.mid, AT, scope=SCOPE, form=t.mid, to_tail="0001"
        ) == 1  # fmt: skip
        await t.settled()
        assert await r.hget(t.keys.notice(other), "status") == "submitted"


async def test_a_receipt_parked_while_its_carrier_id_was_stored_is_moved_by_the_receipt(
    r: aioredis.Redis, prefix: str
) -> None:
    """The receipt finds no mapping, and its carrier id is stored while the receipt is being
    parked, by a write that does not look for parked receipts (as when the carrier id's
    look came too early): the receipt, which reads the mappings again once parked, moves
    itself."""
    async with Lanes(r, prefix, "c-race") as t:
        parking = t.writes.batchers[t.parked_in]
        real = parking.send

        async def park_then_id_stored(events: list[Any], keys: list[str]) -> Any:
            out = await real(events, keys)
            fields, id_keys = t.store.scripts.submitted_event(
                t.notice_id, 0, 1, t.mid, AT, t.mid, SCOPE, t.lane
            )
            assert await t.writes.batchers[t.lane].send(fields, id_keys) == [1]
            return out

        parking.send = park_then_id_stored
        assert await t.receipt() == "early"  # answered once parked; moved aside
        await t.settled()


async def test_a_carrier_id_handed_out_again_reaches_the_newest_message(
    r: aioredis.Redis, prefix: str
) -> None:
    """An SMSC that restarts may hand out an id again: with one lane the newer mapping
    replaces the older; over lanes both are there, and the newer one (more TTL) wins."""
    async with Lanes(r, prefix, "c-again") as t:
        old_lane = (t.lane + 1) % LANES
        old = await t.message(old_lane, "13900000009")
        assert await t.writes.submitted(
            old, 0, 1, t.mid, AT, scope=SCOPE, form=t.mid, to_tail=""
        ) == 1  # fmt: skip
        await r.pexpire(t.keys.carrier_id(SCOPE, t.mid, old_lane), 30_000)  # handed out before
        assert await t.submitted() == 1
        assert await t.receipt() == "final"
        assert await t.status() == "delivered"
        assert await r.hget(t.keys.notice(old), "status") == "submitted"


async def test_a_receipt_stranded_by_a_stopped_process_is_moved_by_the_unmatched_sweep(
    r: aioredis.Redis, prefix: str
) -> None:
    """The receipt parks and finds no mapping; its carrier id is then stored by a process
    that stops before its look aside. Nothing would move the receipt: the sweep that would
    report it unmatched moves it to its notice instead. A receipt with no carrier id at all
    is still reported."""
    async with Lanes(r, prefix, "c-stranded") as t:
        assert await t.receipt() == "early"
        async with asyncio.timeout(5):  # its second look, aside, found nothing
            while len(t.writes._routed):
                await asyncio.sleep(0.01)
        fields, id_keys = t.store.scripts.submitted_event(
            t.notice_id, 0, 1, t.mid, AT, t.mid, SCOPE, t.lane
        )
        assert await t.writes.batchers[t.lane].submit(fields, id_keys) == 1  # no look aside
        assert await t.status() == "submitted"
        lone = t.writes.receipt(
            "c-lone", ["c-lone"], "main", SCOPE, NoticeStatus.DELIVERED, AT, "DELIVRD", "000", ""
        )
        assert await lone == "early"
        unmatched = UnmatchedReceipts(r, t.keys)
        due = {m["id"]: m for m in await unmatched.report(0, 600)}
        assert set(due) == {t.mid, "c-lone"}
        assert due[t.mid]["scope"] == SCOPE
        assert await t.writes.rescue(due[t.mid])
        assert await t.status() == "delivered"
        assert not await r.exists(t.keys.early_receipt(SCOPE, t.mid, t.parked_in))
        assert not await t.writes.rescue(due["c-lone"])
        assert [u["id"] for u in await unmatched.newest()] == ["c-lone"]
        assert set((await unmatched.newest())[0]) == {"id", "link", "stat", "err", "at"}
