"""Redis Streams consumer groups: at-least-once work queues shared by many processes.

Each consumer keeps a heartbeat key alive. Entries pending on a consumer whose heartbeat has
expired (the process died) are claimed by a live one; a live consumer's slow entries are never
taken from it, however long they wait (throttling, back-off). A live consumer takes back, by
itself, entries pending on it that it does not hold (``orphans``): nobody else would.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from gateway.store.keys import Keys
from gateway.store.outage import STORE_DOWN, Outage
from gateway.store.replicas import ReplicaWait
from gateway.store.scripts import Script

log = logging.getLogger(__name__)

Entry = tuple[str, dict[str, str]]


def consumer_name() -> str:
    """Unique per process start: a restarted process is a new consumer."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(eq=False)
class StreamGroup:
    redis: aioredis.Redis
    keys: Keys
    stream: str
    group: str
    consumer: str
    dead_after: float
    _to_ack: list[str] = field(default_factory=list, init=False)
    _acking: list[str] = field(default_factory=list, init=False)  # the batch being sent
    _ack_wanted: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _ack_pending: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _closing: bool = field(default=False, init=False)
    _upkept: float = field(default=0.0, init=False)
    _swept: float = field(default=0.0, init=False)

    def close(self) -> None:
        """Let ``run_acker`` flush and end."""
        self._closing = True
        self._ack_wanted.set()
        self._ack_pending.set()

    async def ensure(self) -> None:
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        await self.heartbeat()

    async def heartbeat(self) -> None:
        await self.redis.set(
            self.keys.heartbeat(self.group, self.consumer), "1", px=int(self.dead_after * 1000)
        )

    async def upkeep(self) -> list[Entry]:
        """For a consumer's read loop that handles what it reads before reading again: the
        heartbeat, the entries of dead consumers and its own orphans, at most every third of
        ``dead_after`` (not on every read of a busy queue)."""
        now = time.monotonic()
        if now - self._upkept < self.dead_after / 3:
            return []
        self._upkept = now
        await self.heartbeat()
        return await self.reclaim_dead() + await self.orphans(())

    async def read(self, count: int, block_ms: int) -> list[Entry]:
        res: Any = await self.redis.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=count, block=block_ms
        )
        if not res:
            return []
        return [(eid, fields) for eid, fields in res[0][1]]

    async def ack(self, *entry_ids: str) -> None:
        if entry_ids:
            await self.redis.xack(self.stream, self.group, *entry_ids)

    async def ack_and_delete(self, *entry_ids: str) -> None:
        """Ack and drop the entries so the stream does not grow without bound."""
        if entry_ids:
            pipe = self.redis.pipeline(transaction=True)
            pipe.xack(self.stream, self.group, *entry_ids)
            pipe.xdel(self.stream, *entry_ids)
            await pipe.execute()

    def ack_later(self, entry_id: str) -> None:
        """Ack (and delete) soon, batched with others by ``run_acker``.

        Losing a batch in a crash only means those entries are handled again (at-least-once).
        """
        self._to_ack.append(entry_id)
        if len(self._to_ack) == 1:
            self._ack_pending.set()
        if len(self._to_ack) >= 256:
            self._ack_wanted.set()

    async def run_acker(self, interval: float = 0.005) -> None:
        """Flush batched acks ``interval`` seconds after the first one of a batch (at once
        from 256), and once more when cancelled. With nothing to ack it sleeps: waking every
        ``interval`` regardless cost an idle gateway a tenth of a core (all its groups)."""
        try:
            while not self._closing:
                await self._ack_pending.wait()
                self._ack_pending.clear()
                try:
                    async with asyncio.timeout(interval):
                        await self._ack_wanted.wait()
                except TimeoutError:
                    pass
                self._ack_wanted.clear()
                await self._flush_acks()
        finally:
            await asyncio.shield(self._flush_acks())

    async def _flush_acks(self) -> None:
        outage = Outage(f"acks of {self.stream}")
        while self._to_ack:
            batch, self._to_ack = self._to_ack[:1000], self._to_ack[1000:]
            self._acking = batch
            try:
                await self.ack_and_delete(*batch)
                outage.ok()
            except STORE_DOWN as exc:
                self._to_ack[:0] = batch  # acked once Redis is back; nothing is lost meanwhile
                if self._closing:
                    return  # unacked entries are handled again by whoever reads them next
                await outage.pause(exc)
            finally:
                self._acking = []

    def settling(self) -> set[str]:
        """The entries settled whose acks are queued or being sent."""
        return {*self._to_ack, *self._acking}

    async def release(self) -> None:
        """A clean stop: drop the heartbeat, so live consumers take what is left at once
        instead of after ``dead_after``."""
        await self.redis.delete(self.keys.heartbeat(self.group, self.consumer))

    async def reclaim_dead(self, limit: int = 1000) -> list[Entry]:
        """Claim entries pending on consumers whose heartbeat has lapsed."""
        claimed: list[Entry] = []
        consumers = await self.redis.xinfo_consumers(self.stream, self.group)
        for c in consumers:
            name = c["name"]
            if name == self.consumer:
                continue
            if await self.redis.exists(self.keys.heartbeat(self.group, name)):
                continue
            if int(c.get("pending", 0)) == 0:
                await self.redis.xgroup_delconsumer(self.stream, self.group, name)
                continue
            pending = await self.redis.xpending_range(
                self.stream, self.group, min="-", max="+", count=limit, consumername=name
            )
            ids = [p["message_id"] for p in pending]
            if not ids:
                continue
            # Only while still that idle: another live worker sweeping the same dead one
            # claims them first (their idle time starts again), and they stay its.
            idle = min(int(p["time_since_delivered"]) for p in pending)
            claimed += await self._claim(ids, min_idle_ms=idle)
            log.warning(
                "reclaimed %d entries of %s from dead consumer %s", len(ids), self.stream, name
            )
        return claimed

    async def orphans(self, in_hand: Container[str], limit: int = 4096) -> list[Entry]:
        """Entries pending on this consumer for a while that it does not hold, taken again.

        How one comes about: Redis ran a read (the entries are pending on this consumer, and
        its append-only file says so) and stopped before sending the answer, which is what a
        restart does to the commands of its last event-loop turn; redis-py's retry or the
        loop's own then reads on, and nothing else would ever take a live consumer's entries.
        Or a step after the read met an outage and let go of its entry. At most every third of
        ``dead_after`` (a call is due then); ``in_hand`` are the entries being worked on.
        """
        now = time.monotonic()
        if now - self._swept < self.dead_after / 3:
            return []
        self._swept = now
        idle_ms = int(self.dead_after * 500)  # well past any read-to-hand-over gap
        pending = await self.redis.xpending_range(
            self.stream,
            self.group,
            min="-",
            max="+",
            count=limit,
            consumername=self.consumer,
            idle=idle_ms,
        )
        # Settled, their acks not sent yet: an entry that waited long in the channel (a rate
        # token under throttling) is past ``idle_ms`` when its ack is queued.
        acks = self.settling()
        ids = [
            p["message_id"]
            for p in pending
            if p["message_id"] not in in_hand and p["message_id"] not in acks
        ]
        if not ids:
            return []
        # Claimed only if still idle: an entry read again meanwhile is left where it is.
        taken = await self._claim(ids, min_idle_ms=idle_ms)
        log.warning(
            "took back %d entries of %s pending on this consumer but not in its hands "
            "(a read whose answer was lost, or an outage after it)",
            len(taken),
            self.stream,
        )
        return taken

    async def _claim(self, ids: list[str], min_idle_ms: int) -> list[Entry]:
        """``ids`` moved to this consumer (those idle ``min_idle_ms`` at least); an entry
        deleted from the stream meanwhile is acked, not returned."""
        got = await self.redis.xclaim(
            self.stream, self.group, self.consumer, min_idle_time=min_idle_ms, message_ids=ids
        )
        claimed: list[Entry] = []
        for eid, fields in got:
            if fields is None:
                await self.ack(eid)
                continue
            claimed.append((eid, fields))
        return claimed

    async def own_pending(self, limit: int = 1000) -> list[Entry]:
        """Entries already delivered to this consumer and not acked (re-read after a reset)."""
        res: Any = await self.redis.xreadgroup(
            self.group, self.consumer, {self.stream: "0"}, count=limit
        )
        if not res:
            return []
        return [(eid, fields) for eid, fields in res[0][1] if fields]


class ClaimOwn:
    """``claim_own.lua``: of the entries a consumer read from ``streams`` (one slot), those
    still pending on it, claimed again for it; once ``wait``'s replicas have that write
    (``WAIT`` on the same connection), so a replica has the entries too."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.script = Script(redis, "claim_own", keys)

    async def __call__(
        self, wait: ReplicaWait, streams: list[str], group: str, consumer: str, ids: list[list[str]]
    ) -> list[list[str]]:
        got = await wait.call(
            self.redis,
            self.script,
            keys={"stream": streams[0]},
            args={"group": group, "consumer": consumer, "ids_json": json.dumps(ids)},
            more_keys=streams[1:],
        )
        return [list(claimed) for claimed in got]
