"""One worker shape for every channel: queue entries in, one outcome per entry, then the ack.

A ``ChannelWorker`` owns what every channel needs from the queues and nothing a channel does
on the wire:
- the lanes' Redis Streams (priority and bulk) under one consumer group, kept once per store
  lane (a hash slot each: docs/redis-cluster.md): a read loop per store lane, each reading
  its streams in one ``XREADGROUP`` with the priority lane's entries handed over first, each
  lane within the room the channel reports. An entry is known by its stream and its id (ids
  are per stream: two streams hand out the same one);
- its own pending entries after a restart, entries of consumers whose heartbeat lapsed
  (reclaimed), and the heartbeat itself;
- the set of cancelled reminder jobs (from the job store): their entries end ``cancelled``
  without reaching the channel;
- confirmed-before-sent: with replicas to wait for, entries are handed over only once a
  replica has them, so a failover cannot take back a notice that already went out;
- skip-if-final: a reclaimed entry whose notice already has a final status is acked, and so
  is one handed out again after this worker settled it (a failover's rollback);
- ack-after-outcome: an entry is acked only when the channel settles its ``Delivery``, which it
  does after the outcome is stored in Redis. A crash before that leaves the entry pending, so
  it is sent again (at-least-once), never lost.

A channel (SMS over one SMPP link, voice over AMI and FastAGI, email over SMTP) implements
``Channel``: ``start`` (its own loops, until stopped), ``submit(delivery)``, ``room(lane)``,
``housekeeping`` and ``stop``. See ``gateway/channels/registry.py`` for which channels a
process runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from gateway.channels.settled import RecentlySettled
from gateway.core.statuses import JOB_FINAL_STATUSES, NoticeStatus
from gateway.settings import WorkerSettings
from gateway.store.jobs import JobStore
from gateway.store.keys import Keys
from gateway.store.notices import NoticeStore
from gateway.store.outage import STORE_DOWN, Outage, once_reachable
from gateway.store.streams import ClaimOwn, Entry, StreamGroup

log = logging.getLogger(__name__)

EntryKey = tuple[str, str]  # (stream, entry id)

# How stale the set of cancelled jobs may be: entries of a job cancelled this long ago are
# no longer handed to the channel (what it holds already still goes out).
CANCEL_LAG = 0.2


class Lane(StrEnum):
    PRIORITY = "priority"  # accident alerts, parking notices and fallbacks, binding codes
    BULK = "bulk"  # reminder jobs


@dataclass(slots=True, eq=False)
class Delivery:
    """One queue entry handed to a channel; the channel calls ``settle`` once its outcome is
    stored (or ``drop`` for an entry that can never be sent)."""

    entry_id: str
    lane: Lane
    notice_id: str
    fields: dict[str, str]
    reclaimed: bool
    status: str = ""  # the notice's status, read for reclaimed entries only
    _done: Callable[[Delivery], None] = field(default=lambda d: None, repr=False)
    stream: str = ""  # the queue it came from

    @property
    def bulk(self) -> bool:
        return self.lane is Lane.BULK

    @property
    def key(self) -> EntryKey:
        """What tells it apart from every other entry (an id is unique in its stream only)."""
        return (self.stream, self.entry_id)

    def settle(self) -> None:
        self._done(self)

    def drop(self, reason: str) -> None:
        """An entry that can never be sent: logged, then acked like a settled one."""
        log.error("queue entry %s of %s dropped: %s", self.entry_id, self.notice_id, reason)
        self._done(self)


class Channel(Protocol):
    """What a channel implements; the worker does the rest."""

    name: str
    group: str  # the consumer group of this channel's streams

    def attach(self, wake: Callable[[], None]) -> None:
        """``wake`` tells the worker that ``room`` may have grown."""
        ...

    def room(self, lane: Lane) -> int:
        """How many more deliveries of ``lane`` the channel takes now."""
        ...

    async def start(self) -> None:
        """Run the channel's own loops (links, sessions) until ``stop``."""
        ...

    async def submit(self, delivery: Delivery) -> None:
        """Take a delivery; may wait (a call slot, a rate token), never for its outcome."""
        ...

    async def housekeeping(self) -> None:
        """Called about once a second by the worker's housekeeping loop."""
        ...

    async def stop(self) -> None:
        """Stop handing work to the wire; what is unsettled stays pending in Redis."""
        ...


@dataclass(frozen=True, slots=True)
class InHand:
    """The entries of ``stream`` a worker is working on, in whichever of its collections
    they are (``StreamGroup.orphans`` asks it by entry id)."""

    stream: str
    parts: tuple[Container[EntryKey], ...]

    def __contains__(self, entry_id: object) -> bool:
        return any((self.stream, entry_id) in part for part in self.parts)


class ChannelWorker:
    """The queues of one channel in one process."""

    def __init__(
        self,
        channel: Channel,
        streams: Sequence[Mapping[Lane, str]],
        redis: aioredis.Redis,
        keys: Keys,
        store: NoticeStore,
        worker: WorkerSettings,
        consumer: str,
        ack_interval: float = 0.005,
    ) -> None:
        self.channel = channel
        self.redis = redis
        self.keys = keys
        self.store = store
        self.jobs = JobStore(redis, keys)
        self.worker = worker
        self.consumer = consumer
        self.ack_interval = ack_interval
        # Per store lane, the stream of each of the channel's lanes: one slot each, read
        # together by one loop.
        self._slots = [
            {
                lane: StreamGroup(
                    redis, keys, stream, channel.group, consumer, worker.consumer_dead_after
                )
                for lane, stream in slot.items()
            }
            for slot in streams
        ]
        self.groups = {g.stream: g for slot in self._slots for g in slot.values()}
        self._lane_of = {g.stream: lane for slot in self._slots for lane, g in slot.items()}
        self._held: dict[EntryKey, Delivery] = {}
        self._reading: set[EntryKey] = set()  # entries of a batch being handed over
        self._claim_own = ClaimOwn(redis, keys)
        self._settled_lately = RecentlySettled()
        self._room = asyncio.Event()
        self._cancelled_jobs: set[str] = set()
        self._cancelled_read = 0.0
        self._closing = False
        channel.attach(self._room.set)

    @property
    def held(self) -> int:
        """Entries handed to the channel and not yet settled."""
        return len(self._held)

    # -- run ----------------------------------------------------------------------------------
    async def run(self) -> None:
        """Run until cancelled or closed; unsettled entries stay pending in Redis."""
        await once_reachable(f"{self.channel.name} worker", self._start_up)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.channel.start(), name=f"{self.channel.name}-channel")
                for i, slot in enumerate(self._slots):
                    tg.create_task(self._read_loop(slot), name=f"{self.channel.name}-read-{i}")
                tg.create_task(self._housekeeping(), name=f"{self.channel.name}-housekeeping")
                for group in self.groups.values():
                    tg.create_task(group.run_acker(self.ack_interval), name=f"acker {group.stream}")
        finally:
            if self._closing:
                await asyncio.shield(self._release())

    async def _start_up(self) -> None:
        for group in self.groups.values():
            await group.ensure()
        self._cancelled_jobs = await self.jobs.cancelled_recently()

    async def _release(self) -> None:
        try:
            async with asyncio.timeout(1.0):
                for group in self.groups.values():
                    await group.release()
        except Exception as exc:  # a stop must not fail on its courtesy to others
            log.warning("%s worker: heartbeat not released (%r)", self.channel.name, exc)

    def close(self) -> None:
        """Stop reading; ackers flush and end."""
        self._closing = True
        self._room.set()
        for group in self.groups.values():
            group.close()

    async def stop(self) -> None:
        """Stop reading, then let the channel stop handing work to the wire."""
        self.close()
        await self.channel.stop()

    # -- reading ------------------------------------------------------------------------------
    async def _read_loop(self, slot: Mapping[Lane, StreamGroup]) -> None:
        outage = Outage(f"{self.channel.name} worker")
        resume = True  # at start, and after an outage: what was read and not handed over
        while not self._closing:
            try:
                if resume or outage.down:
                    await self._resume(slot)
                    resume = False
                await self._read_once(slot)
                outage.ok()
            except STORE_DOWN as exc:
                await outage.pause(exc)
            except ResponseError as exc:
                await self._regroup(exc)

    async def _resume(self, slot: Mapping[Lane, StreamGroup]) -> None:
        """At start and after an outage: entries this consumer read but did not hand over
        are still pending on it; nobody else would take them from a live consumer."""
        for group in slot.values():
            await self._accept_all({group.stream: await group.own_pending()}, reclaimed=True)

    async def _accept_all(self, read: dict[str, list[Entry]], *, reclaimed: bool) -> None:
        """Entries read (or claimed) from one slot's streams (by stream), handed over (the
        priority lane
        first) once a replica has them when there are replicas to wait for (Sentinel,
        Cluster): a notice the API answered 503 for (stored, not confirmed) must not reach
        the citizen while a failover can still take it back, or its caller's retry makes it
        again and it goes out twice.

        The confirmation (``claim_own.lua``, then ``WAIT`` on the same connection) claims
        again those of the entries still pending on this consumer, a write whose offset is
        past everything that node had, and only those are handed over: one that a failover
        between the read and the confirmation took back, or that another worker holds now,
        is not. Unconfirmed, they stay pending on this consumer and are taken up again by
        ``_resume`` after the read loop's outage, or by the orphan sweep."""
        # In hand already (the other loop has them, or they are settled and their acks on
        # the way): not this batch's. The rest are reserved before the first await, so the
        # read loop and the sweep never both hand one over, and stay in hand while the batch
        # is worked through: a channel's submit may wait (a rate token, a call slot) long
        # enough for the sweep to think them lost.
        read = {s: kept for s, entries in read.items() if (kept := self._free(s, entries))}
        ids = [(s, eid) for s, entries in read.items() for eid, _ in entries]
        if not ids:
            return
        self._reading.update(ids)
        try:
            await self._confirm_and_accept(read, reclaimed=reclaimed)
        finally:
            self._reading.difference_update(ids)

    def _free(self, stream: str, entries: list[Entry]) -> list[Entry]:
        in_hand, acking = self._in_hand(stream), self.groups[stream].settling()
        return [e for e in entries if e[0] not in in_hand and e[0] not in acking]

    def _in_hand(self, stream: str) -> InHand:
        return InHand(stream, (self._held, self._reading))

    async def _confirm_and_accept(self, read: dict[str, list[Entry]], *, reclaimed: bool) -> None:
        wait = self.store.wait
        if wait.replicas:
            # One slot's streams: one call.
            held = await self._claim_own(
                wait,
                list(read),
                self.channel.group,
                self.consumer,
                [[eid for eid, _ in entries] for entries in read.values()],
            )
            still = [set(ids) for ids in held]
            read = {
                stream: [e for e in entries if e[0] in ids]
                for (stream, entries), ids in zip(read.items(), still, strict=True)
            }
        for stream in sorted(read, key=lambda s: self._lane_of[s] is not Lane.PRIORITY):
            for eid, fields in read[stream]:
                # Handed out again after this worker settled it: a failover rolled the
                # group back (gateway/channels/settled.py). Checked like a taken-over one.
                again = reclaimed or (stream, eid) in self._settled_lately
                await self._accept(stream, eid, fields, reclaimed=again)

    async def _read_once(self, slot: Mapping[Lane, StreamGroup]) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() - self._cancelled_read > CANCEL_LAG:
            self._cancelled_jobs = await self.jobs.cancelled_recently()
            self._cancelled_read = loop.time()
        rooms = {lane: self.channel.room(lane) for lane in slot}
        open_lanes = {lane: room for lane, room in rooms.items() if room > 0}
        if not open_lanes:
            self._room.clear()
            try:
                async with asyncio.timeout(1.0):
                    await self._room.wait()
            except TimeoutError:
                pass
            return
        count = min(max(open_lanes.values()), self.worker.stream_batch)
        # A lane without room is not read; a blocked read would not see it open up, so
        # the read is short then.
        block = 1000 if len(open_lanes) == len(slot) else 50
        res: Any = await self.redis.xreadgroup(
            self.channel.group,
            self.consumer,
            {slot[lane].stream: ">" for lane in open_lanes},
            count=count,
            block=block,
        )
        await self._accept_all(dict(res or []), reclaimed=False)

    async def _housekeeping(self) -> None:
        outage = Outage(f"{self.channel.name} housekeeping")
        while not self._closing:
            await asyncio.sleep(min(1.0, self.worker.heartbeat_seconds))
            try:
                for group in self.groups.values():
                    await group.heartbeat()
                for stream, group in self.groups.items():
                    await self._accept_all({stream: await group.reclaim_dead()}, reclaimed=True)
                    taken = await group.orphans(self._in_hand(stream))
                    await self._accept_all({stream: taken}, reclaimed=True)
                await self.channel.housekeeping()
                outage.ok()
            except STORE_DOWN as exc:
                await outage.pause(exc)
            except ResponseError as exc:
                await self._regroup(exc)

    async def _regroup(self, exc: ResponseError) -> None:
        """A failover that lost a new stream or its group (the replica had not got them
        yet) answers NOGROUP, or UNBLOCKED to a read blocked on the stream: the group is
        made again, its entries read from the start. Any other error answered by Redis is
        a bug and ends the loop."""
        if not str(exc).startswith(("NOGROUP", "UNBLOCKED")):
            raise exc
        log.warning("%s worker: %s; the group is made again", self.channel.name, exc)
        for group in self.groups.values():
            await group.ensure()

    async def _accept(
        self, stream: str, eid: str, fields: dict[str, str], *, reclaimed: bool
    ) -> None:
        if (stream, eid) in self._held:
            return
        group, lane = self.groups[stream], self._lane_of[stream]
        notice_id = fields.get("id", "")
        if not notice_id:
            log.error("malformed %s queue entry %s dropped: %s", lane, eid, sorted(fields))
            await group.ack_and_delete(eid)
            return
        if fields.get("job") in self._cancelled_jobs:
            await self.store.transition(
                notice_id, NoticeStatus.CANCELLED, {"reason": "job_cancelled"}
            )
            await group.ack_and_delete(eid)
            return
        status = ""
        if reclaimed:
            status = await self.redis.hget(self.keys.notice(notice_id), "status") or ""
            # Final, or one voice attempt ended (its retry or fallback was scheduled in the
            # same script call): nothing is left for this entry.
            if not status or status in JOB_FINAL_STATUSES:
                await group.ack_and_delete(eid)
                return
        delivery = Delivery(
            eid, lane, notice_id, fields, reclaimed, status, self._settled, stream=stream
        )
        self._held[delivery.key] = delivery
        try:
            await self.channel.submit(delivery)
        except STORE_DOWN:
            # Not handed over: still pending on this consumer, taken again by ``_resume``.
            self._held.pop(delivery.key, None)
            raise

    def _settled(self, delivery: Delivery) -> None:
        if self._held.pop(delivery.key, None) is None:
            return
        self._settled_lately.add(delivery.key)
        self.groups[delivery.stream].ack_later(delivery.entry_id)
        self._room.set()
