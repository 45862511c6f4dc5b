"""One reader of the events stream per API process, fanned out to its SSE clients.

Each client gets its own buffer of the pre-encoded frames it may see; a client that falls too
far behind is closed (it reconnects with ``Last-Event-ID`` and is replayed from Redis, so a
slow client costs itself a reconnect, never the others an event). ``position`` is the last
entry handed to the clients: a client subscribed at that position gets every later entry
live, and everything up to it from ``XRANGE``, so the two meet without a gap.

With no client the reader stops reading (every status change cost each API process a read
and a wake-up for nobody); the first client to come then moves ``position`` to the stream's
newest entry before it subscribes, as a start does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from gateway.store.apikeys import ApiKey
from gateway.store.outage import STORE_DOWN

log = logging.getLogger(__name__)

_INTS = frozenset({"count", "warning_number"})
MAX_BUFFERED = 20_000  # frames a client may have waiting before it is closed


def entry_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def visible(fields: Mapping[str, str], key: ApiKey) -> bool:
    """Admin keys see every event; a command-centre key its own notices' and every suspected
    cloned plate; any other key its own notices'."""
    if key.role == "admin":
        return True
    if fields.get("type") == "suspected_cloned_plate" and key.role == "command_center":
        return True
    return fields.get("key") == key.id


def frame(entry_id: str, fields: Mapping[str, str]) -> bytes:
    """The SSE frame of one stream entry: ``id``, ``event`` (the type) and JSON ``data``."""
    data: dict[str, object] = {"event_id": entry_id}
    for name, value in fields.items():
        if name in ("type", "key"):
            continue
        data[name] = int(value) if name in _INTS and value.lstrip("-").isdigit() else value
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"id: {entry_id}\nevent: {fields.get('type', 'status')}\ndata: {body}\n\n".encode()


@dataclass(eq=False)
class Subscriber:
    key: ApiKey
    start: str  # the hub's position when it subscribed: later entries come live
    frames: list[bytes] = field(default_factory=list)
    last: tuple[int, int] = (0, 0)  # the last entry put in ``frames``
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closed: str = ""  # why the hub closed it ('' while open)

    def take(self) -> list[bytes]:
        out, self.frames = self.frames, []
        self.wake.clear()
        return out


class EventHub:
    def __init__(self, redis: aioredis.Redis, stream: str, batch: int = 1000) -> None:
        self.redis = redis
        self.stream = stream
        self.batch = batch
        self.position = "0-0"
        self.subscribers: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self._listened = asyncio.Event()  # set while a client is subscribed
        self._stale = False  # the reader stopped: ``position`` may be behind the stream
        self._catching_up = asyncio.Lock()

    async def start(self) -> None:
        """Begin at the stream's newest entry (older ones are read by ``XRANGE``)."""
        with contextlib.suppress(*STORE_DOWN):
            await self._to_newest()
        self._task = asyncio.create_task(self._run(), name="event-hub")

    async def _to_newest(self) -> None:
        newest = await self.redis.xrevrange(self.stream, count=1)
        if newest:
            self.position = newest[0][0]

    async def subscribe(self, key: ApiKey) -> Subscriber:
        if self._stale:  # the reader waits for a client: catch up first
            async with self._catching_up:
                if self._stale:
                    await self._to_newest()
                    self._stale = False
        sub = Subscriber(key, self.position, last=entry_key(self.position))
        self.subscribers.add(sub)
        self._listened.set()
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
        if not self.subscribers:
            self._listened.clear()

    def dispatch(self, entries: list[tuple[str, dict[str, str]]]) -> None:
        """Hand entries (read after ``position``) to each subscriber that may see them."""
        if not entries:
            return
        if not self.subscribers:  # nobody listens: no frames to build (most of the time)
            self.position = entries[-1][0]
            return
        frames = [(entry_key(i), f, frame(i, f)) for i, f in entries]
        self.position = entries[-1][0]
        for sub in list(self.subscribers):
            admin = sub.key.role == "admin"
            got = [fr for k, f, fr in frames if k > sub.last and (admin or visible(f, sub.key))]
            sub.last = max(sub.last, frames[-1][0])
            if not got:
                continue
            sub.frames += got
            if len(sub.frames) > MAX_BUFFERED:
                self._close(sub, "too_slow")
            sub.wake.set()

    def _close(self, sub: Subscriber, why: str) -> None:
        sub.closed = why
        sub.frames = []
        sub.wake.set()
        self.unsubscribe(sub)

    async def _run(self) -> None:
        pause = 0.05
        while True:
            if not self.subscribers:
                self._stale = True
                await self._listened.wait()
            try:
                got = await self.redis.xread(
                    {self.stream: self.position}, count=self.batch, block=1000
                )
                pause = 0.05
            except STORE_DOWN as exc:
                log.warning("event stream unreadable, retrying: %r", exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
                continue
            try:
                for _, entries in got or ():
                    self.dispatch(entries)
            except Exception:
                # A bug must not leave the clients waiting for ever: each is closed and
                # resumes from its Last-Event-ID (the entries are still in Redis).
                log.exception("event fan-out failed; closing %d streams", len(self.subscribers))
                for sub in list(self.subscribers):
                    self._close(sub, "fault")
                self.position = got[-1][1][-1][0]

    async def stop(self) -> None:
        """Close every client's stream (their handlers return), then stop reading."""
        for sub in list(self.subscribers):
            self._close(sub, "shutdown")
        if self._task is not None:
            self._task.cancel()
            # Bounded: a task cancelled inside a blocking XREAD has been seen to wait on its
            # connection for ever, and shutdown must not.
            done, _ = await asyncio.wait({self._task}, timeout=5.0)
            if not done:
                log.warning("the event stream reader did not stop within 5 s")
            self._task = None
