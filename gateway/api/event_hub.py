"""One reader of the events stream per API process, fanned out to its SSE clients.

Each client gets its own buffer of the pre-encoded frames it may see; a client that falls too
far behind is closed (it reconnects with ``Last-Event-ID`` and is replayed from Redis, so a
slow client costs itself a reconnect, never the others an event). ``position`` is the last
entry handed to the clients: a client subscribed at that position gets every later entry
live, and everything up to it from ``XRANGE``, so the two meet without a gap.

The stream is kept once per lane (docs/redis-cluster.md): one reader per lane, and a position
per lane. An event's ``id`` (what a client resumes from) is then every lane's position when
the event was handed over, ``<lane 0's>,<lane 1's>,...``, so a resume neither repeats nor
skips an entry of any lane; its ``event_id`` names its lane, ``<entry id>@<lane>``. With one
lane both are the entry id, as they always were.

With no client the readers stop reading (every status change cost each API process a read
and a wake-up for nobody); the first client to come then moves ``position`` to the streams'
newest entries before it subscribes, as a start does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from gateway.store.apikeys import ApiKey
from gateway.store.lane_merge import MAX_SEQ, entry_id, entry_key
from gateway.store.outage import STORE_DOWN

log = logging.getLogger(__name__)

_INTS = frozenset({"count", "warning_number"})
_ENTRY_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
MAX_BUFFERED = 20_000  # frames a client may have waiting before it is closed


Key = tuple[int, int]  # an entry id as numbers, (ms, seq)
Position = tuple[Key, ...]  # per lane, the last entry handed over
_Built = tuple[str, dict[str, str], Position, bytes]  # entry id, fields, position, frame


def resume_id(position: Position) -> str:
    """The ``id`` of an event: where a client that saw it resumes from."""
    return ",".join(entry_id(k) for k in position)


def event_id(lane: int, eid: str, lanes: int) -> str:
    """An event's own id: its entry id, and its lane when there are several."""
    return eid if lanes == 1 else f"{eid}@{lane}"


def parse_resume_id(value: str, lanes: int) -> Position:
    """A ``Last-Event-ID``: a position of every lane, or one entry id. One id with several
    lanes (a client of the gateway from before it had them) resumes every lane from that
    time: an entry of a lane whose shard's clock is off by a little may come twice or not."""
    parts = value.split(",")
    if len(parts) not in (1, lanes) or not all(_ENTRY_ID.match(p) for p in parts):
        raise ValueError(value)
    keys = tuple(entry_key(p) for p in parts)
    if any(ms > MAX_SEQ or seq > MAX_SEQ for ms, seq in keys):
        raise ValueError(value)
    return keys * lanes if len(keys) == 1 else keys


def visible(fields: Mapping[str, str], key: ApiKey) -> bool:
    """Admin keys see every event; a command-centre key its own notices' and every suspected
    cloned plate; any other key its own notices'."""
    if key.role == "admin":
        return True
    if fields.get("type") == "suspected_cloned_plate" and key.role == "command_center":
        return True
    return fields.get("key") == key.id


def frame(resume: str, eid: str, fields: Mapping[str, str]) -> bytes:
    """The SSE frame of one stream entry: ``id`` (``resume``), ``event`` (the type) and JSON
    ``data`` with the entry's ``event_id``."""
    data: dict[str, object] = {"event_id": eid}
    for name, value in fields.items():
        if name in ("type", "key"):
            continue
        data[name] = int(value) if name in _INTS and value.lstrip("-").isdigit() else value
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"id: {resume}\nevent: {fields.get('type', 'status')}\ndata: {body}\n\n".encode()


@dataclass(eq=False)
class Subscriber:
    key: ApiKey
    start: Position  # the hub's position when it subscribed: later entries come live
    last: list[Key]  # per lane, the last entry put in ``frames`` (or seen before)
    frames: list[bytes] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closed: str = ""  # why the hub closed it ('' while open)
    # It resumed from further than this process had read in some lane: its frames' ids take
    # that lane's position from ``last`` (else a resume from them would repeat entries).
    ahead: bool = False

    def take(self) -> list[bytes]:
        out, self.frames = self.frames, []
        self.wake.clear()
        return out


class EventHub:
    def __init__(self, redis: aioredis.Redis, streams: Sequence[str], batch: int = 1000) -> None:
        self.redis = redis
        self.streams = tuple(streams)  # one per lane
        self.lanes = len(self.streams)
        self.batch = batch
        self.position: list[Key] = [(0, 0)] * self.lanes
        self.subscribers: set[Subscriber] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._listened = asyncio.Event()  # set while a client is subscribed
        self._stale = False  # a reader stopped: ``position`` may be behind the stream
        self._catching_up = asyncio.Lock()

    def event_id(self, lane: int, eid: str) -> str:
        return event_id(lane, eid, self.lanes)

    async def start(self) -> None:
        """Begin at the streams' newest entries (older ones are read by ``XRANGE``)."""
        with contextlib.suppress(*STORE_DOWN):
            await self._to_newest()
        self._tasks = [
            asyncio.create_task(self._run(lane), name=f"event-hub-{lane}")
            for lane in range(self.lanes)
        ]

    async def _to_newest(self) -> None:
        newest = await asyncio.gather(*(self.redis.xrevrange(s, count=1) for s in self.streams))
        for lane, got in enumerate(newest):
            if got:
                self.position[lane] = entry_key(got[0][0])

    async def subscribe(self, key: ApiKey, resumed: Position | None = None) -> Subscriber:
        """A client's buffer from the hub's position on; ``resumed``: where the client says it
        was, which may be further in some lane than this process has read."""
        if self._stale:  # the readers wait for a client: catch up first
            async with self._catching_up:
                if self._stale:
                    await self._to_newest()
                    self._stale = False
        start = tuple(self.position)
        last = list(start)
        ahead = False
        for lane, k in enumerate(resumed or ()):
            if k > last[lane]:
                # With one lane a frame's id is its entry's own: nothing to keep.
                last[lane], ahead = k, self.lanes > 1
        sub = Subscriber(key, start, last, ahead=ahead)
        self.subscribers.add(sub)
        self._listened.set()
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
        if not self.subscribers:
            self._listened.clear()

    def _advance(self, lane: int, k: Key) -> None:
        if k > self.position[lane]:
            self.position[lane] = k

    def dispatch(self, lane: int, entries: list[tuple[str, dict[str, str]]]) -> None:
        """Hand one lane's entries (read after its position) to each subscriber that may
        see them."""
        if not entries:
            return
        if not self.subscribers:  # nobody listens: no frames to build (most of the time)
            self._advance(lane, entry_key(entries[-1][0]))
            return
        built = []
        for eid, fields in entries:
            k = entry_key(eid)
            self._advance(lane, k)
            at = tuple(self.position)
            fr = frame(resume_id(at), self.event_id(lane, eid), fields)
            built.append((k, eid, fields, at, fr))
        for sub in list(self.subscribers):
            admin = sub.key.role == "admin"
            seen = sub.last[lane]
            got = [
                (eid, fields, at, fr)
                for k, eid, fields, at, fr in built
                if k > seen and (admin or visible(fields, sub.key))
            ]
            if sub.ahead:
                got = self._ahead_frames(sub, lane, got)
            sub.last[lane] = max(seen, built[-1][0])
            if not got:
                continue
            sub.frames += [fr for *_, fr in got]
            if len(sub.frames) > MAX_BUFFERED:
                self._close(sub, "too_slow")
            sub.wake.set()

    def _ahead_frames(
        self,
        sub: Subscriber,
        lane: int,
        got: list[_Built],
    ) -> list[_Built]:
        """Frames whose ids take every other lane's position from ``sub.last`` where it is
        further than the hub's (the lane handed over: each entry's own); the subscriber stops
        being ahead once the hub has caught up."""
        out = []
        for eid, fields, at, _ in got:
            mine = tuple(
                a if other == lane else max(a, b)
                for other, (a, b) in enumerate(zip(at, sub.last, strict=True))
            )
            out.append(
                (eid, fields, mine, frame(resume_id(mine), self.event_id(lane, eid), fields))
            )
        sub.ahead = any(s > p for p, s in zip(self.position, sub.last, strict=True))
        return out

    def _close(self, sub: Subscriber, why: str) -> None:
        sub.closed = why
        sub.frames = []
        sub.wake.set()
        self.unsubscribe(sub)

    async def _run(self, lane: int) -> None:
        stream = self.streams[lane]
        pause = 0.05
        while True:
            if not self.subscribers:
                self._stale = True
                await self._listened.wait()
            try:
                got = await self.redis.xread(
                    {stream: entry_id(self.position[lane])}, count=self.batch, block=1000
                )
                pause = 0.05
            except Exception as exc:
                # Redis away, or an answer this reader did not expect: either way this lane's
                # reader must go on (the other lanes' do), read again after a pause.
                if isinstance(exc, STORE_DOWN):
                    log.warning("event stream %s unreadable, retrying: %r", stream, exc)
                else:
                    log.exception("event stream %s: read failed, retrying", stream)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
                continue
            try:
                for _, entries in got or ():
                    self.dispatch(lane, entries)
            except Exception:
                # A bug must not leave the clients waiting for ever: each is closed and
                # resumes from its Last-Event-ID (the entries are still in Redis).
                log.exception("event fan-out failed; closing %d streams", len(self.subscribers))
                for sub in list(self.subscribers):
                    self._close(sub, "fault")
                self._advance(lane, entry_key(got[-1][1][-1][0]))

    async def stop(self) -> None:
        """Close every client's stream (their handlers return), then stop reading."""
        for sub in list(self.subscribers):
            self._close(sub, "shutdown")
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # Bounded: a task cancelled inside a blocking XREAD has been seen to wait on its
            # connection for ever, and shutdown must not.
            _, pending = await asyncio.wait(self._tasks, timeout=5.0)
            if pending:
                log.warning("%d event stream readers did not stop within 5 s", len(pending))
            self._tasks = []
