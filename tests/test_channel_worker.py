"""The channel worker against real Redis, with a channel that only records what it gets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import redis.asyncio as aioredis

from gateway.channels.worker import ChannelWorker, Delivery, Lane
from gateway.settings import WorkerSettings
from gateway.store.keys import Keys
from gateway.store.notices import NoticeStore


class Recorder:
    """A channel that takes everything and settles nothing until told."""

    name = "recorder"
    group = "recorders"

    def __init__(self) -> None:
        self.got: list[Delivery] = []
        self.arrived = asyncio.Event()
        self._stopped = asyncio.Event()

    def attach(self, wake: Callable[[], None]) -> None:
        pass

    def room(self, lane: Lane) -> int:
        return 10

    async def start(self) -> None:
        await self._stopped.wait()

    async def submit(self, delivery: Delivery) -> None:
        self.got.append(delivery)
        self.arrived.set()

    async def housekeeping(self) -> None:
        pass

    async def stop(self) -> None:
        self._stopped.set()

    async def wait_for(self, n: int, within: float = 5.0) -> None:
        async with asyncio.timeout(within):
            while len(self.got) < n:
                self.arrived.clear()
                await self.arrived.wait()


@contextlib.asynccontextmanager
async def running(
    r: aioredis.Redis, keys: Keys, streams: list[dict[Lane, str]]
) -> AsyncIterator[tuple[Recorder, ChannelWorker]]:
    channel = Recorder()
    worker = ChannelWorker(
        channel,
        streams,
        r,
        keys,
        NoticeStore(r, keys),
        WorkerSettings(consumer_dead_after=30.0),  # type: ignore[call-arg]
        "me",
    )
    task = asyncio.create_task(worker.run())
    try:
        yield channel, worker
    finally:
        await worker.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_entries_of_two_streams_with_one_id_are_both_handed_over(
    r: aioredis.Redis, prefix: str
) -> None:
    # Entry ids are per stream: an alert queued in the millisecond a reminder job queued its
    # slice gets the id of one of the job's entries. The worker told them apart by id alone,
    # so while that reminder waited in the channel (a rate token) the alert was skipped.
    keys = Keys(prefix)
    priority, bulk = f"{prefix}:{{t}}:q-priority", f"{prefix}:{{t}}:q-bulk"
    await r.xadd(bulk, {"id": "ntc_bulk"}, id="5-1")
    try:
        async with running(r, keys, [{Lane.PRIORITY: priority, Lane.BULK: bulk}]) as (ch, w):
            await ch.wait_for(1)
            await r.xadd(priority, {"id": "ntc_alert"}, id="5-1")
            await ch.wait_for(2)
            assert [(d.lane, d.notice_id, d.entry_id) for d in ch.got] == [
                (Lane.BULK, "ntc_bulk", "5-1"),
                (Lane.PRIORITY, "ntc_alert", "5-1"),
            ]
            assert w.held == 2
            # Settled, each one is acked on its own stream, the other left pending.
            bulk_delivery, alert = ch.got
            alert.settle()
            async with asyncio.timeout(5):
                while await r.xlen(priority):
                    await asyncio.sleep(0.02)
            assert await r.xlen(bulk) == 1
            assert w.held == 1
            bulk_delivery.settle()
            async with asyncio.timeout(5):
                while await r.xlen(bulk):
                    await asyncio.sleep(0.02)
    finally:
        await r.delete(priority, bulk)


async def test_a_worker_reads_the_queues_of_every_lane(r: aioredis.Redis, prefix: str) -> None:
    # Queues kept once per lane (docs/redis-cluster.md): one read loop per lane's streams,
    # the priority ones first within each.
    keys = Keys(prefix, lanes=3)
    streams = [
        {Lane.PRIORITY: keys.sms_queue(lane), Lane.BULK: keys.sms_bulk_queue(lane)}
        for lane in keys.each_lane()
    ]
    try:
        async with running(r, keys, streams) as (ch, _):
            for lane in keys.each_lane():
                await r.xadd(keys.sms_bulk_queue(lane), {"id": f"ntc_b{lane}"})
                await r.xadd(keys.sms_queue(lane), {"id": f"ntc_p{lane}"})
            await ch.wait_for(6)
            # Each from its own lane's stream, on its channel lane.
            for d in ch.got:
                lane = int(d.notice_id[-1])
                bulk = d.notice_id.startswith("ntc_b")
                queue = keys.sms_bulk_queue(lane) if bulk else keys.sms_queue(lane)
                assert (d.stream, d.lane) == (queue, Lane.BULK if bulk else Lane.PRIORITY)
            assert sorted(d.notice_id for d in ch.got) == [
                "ntc_b0", "ntc_b1", "ntc_b2", "ntc_p0", "ntc_p1", "ntc_p2"
            ]  # fmt: skip
            for d in ch.got:
                d.settle()
            async with asyncio.timeout(5):
                for lane in keys.each_lane():
                    while await r.xlen(keys.sms_queue(lane)) or await r.xlen(
                        keys.sms_bulk_queue(lane)
                    ):
                        await asyncio.sleep(0.02)
    finally:
        await r.delete(*[q for s in streams for q in s.values()])
