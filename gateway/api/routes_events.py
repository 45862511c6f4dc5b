"""``GET /v1/events/stream``: server-sent events of the status changes a key may see.

Each event's ``id`` is where a client resumes from (its entry id on the events stream; with
several lanes, every lane's position, ``gateway.api.event_hub``); a client that reconnects with
``Last-Event-ID`` (or ``?last_event_id=``) first gets every entry it missed, from Redis, merged
over the lanes by time, then the live ones. ``?backlog=N`` (at most 200) starts a fresh stream
with the caller's last N events. If the entries after ``Last-Event-ID`` were already trimmed
from the capped stream, the stream says so with an ``event: gap`` before going on. A comment
line every ``GATEWAY_EVENTS_HEARTBEAT_SECONDS`` keeps idle connections open; a console stream
ends when its session does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web
from redis.exceptions import ResponseError

from gateway.api.auth import CALLER, SESSION
from gateway.api.context import API_KEYS, CONSOLE_SESSIONS, EVENT_HUB, REDIS, SETTINGS
from gateway.api.errors import ApiError
from gateway.api.event_hub import (
    EventHub,
    Position,
    Subscriber,
    frame,
    parse_resume_id,
    resume_id,
    visible,
)
from gateway.store.apikeys import ApiKey
from gateway.store.lane_merge import Entry, before, entry_id, entry_key, merged
from gateway.store.outage import STORE_DOWN

log = logging.getLogger(__name__)

MAX_BACKLOG = 200
PAGE = 1000
BACKLOG_SCAN = 20_000  # entries read back at most to find a key's last N events


def _last_event_id(request: web.Request, lanes: int) -> Position | None:
    value = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
    if value is None or value == "":
        return None
    try:
        return parse_resume_id(value, lanes)
    except ValueError:
        raise ApiError(
            400, "invalid_last_event_id", "Last-Event-ID: an event's id, e.g. 1700000-0"
        ) from None


def _backlog(request: web.Request) -> int:
    try:
        n = int(request.query.get("backlog", "0"))
    except ValueError:
        raise ApiError(400, "invalid_query", "backlog must be an integer") from None
    if not 0 <= n <= MAX_BACKLOG:
        raise ApiError(400, "invalid_query", f"backlog must be between 0 and {MAX_BACKLOG}")
    return n


async def _gaps(
    request: web.Request, resp: web.StreamResponse, hub: EventHub, after: Position
) -> None:
    """An ``event: gap`` for each lane whose entries after ``after`` were trimmed by the cap
    (the stream only ever loses its oldest): the oldest left is newer than the resume point."""
    redis = request.app[REDIS]
    for lane, stream in enumerate(hub.streams):
        try:
            info = await redis.xinfo_stream(stream)
        except ResponseError:  # no stream yet
            continue
        first = info.get("first-entry")
        trimmed = int(info.get("entries-added") or 0) > int(info.get("length") or 0)
        if trimmed and first and entry_key(first[0]) > after[lane]:
            in_lane = f',"lane":{lane}' if hub.lanes > 1 else ""
            gap = f'{{"after":"{entry_id(after[lane])}","oldest":"{first[0]}"{in_lane}}}'
            await resp.write(f"event: gap\ndata: {gap}\n\n".encode())


async def _replay(
    request: web.Request, resp: web.StreamResponse, key: ApiKey, after: Position, upto: Position
) -> None:
    """Entries after ``after`` up to ``upto`` (inclusive, per lane) that ``key`` may see,
    merged over the lanes by time; each frame's id is the position after it."""
    redis, hub = request.app[REDIS], request.app[EVENT_HUB]
    if all(a >= u for a, u in zip(after, upto, strict=True)):
        return
    await _gaps(request, resp, hub, after)

    async def page(lane: int, last: str | None) -> list[Entry]:
        low = entry_key(last) if last else after[lane]
        if low >= upto[lane]:
            return []
        got: list[Entry] = await redis.xrange(
            hub.streams[lane], "(" + entry_id(low), entry_id(upto[lane]), count=PAGE
        )
        return got

    at = list(after)
    chunk: list[bytes] = []
    async for lane, eid, fields in merged(range(hub.lanes), page):
        at[lane] = entry_key(eid)
        if visible(fields, key):
            chunk.append(frame(resume_id(tuple(at)), hub.event_id(lane, eid), fields))
        if len(chunk) >= PAGE:
            await resp.write(b"".join(chunk))
            chunk = []
    if chunk:
        await resp.write(b"".join(chunk))


async def _backlog_frames(request: web.Request, key: ApiKey, n: int, upto: Position) -> bytes:
    """The last ``n`` events ``key`` may see, up to ``upto``, merged over the lanes by time,
    oldest first. A frame's id resumes every lane from its time (an entry of another lane up
    to that time is older, so in the backlog already or before it), never past ``upto``."""
    redis, hub = request.app[REDIS], request.app[EVENT_HUB]

    async def page(lane: int, last: str | None) -> list[Entry]:
        top = "(" + last if last else entry_id(upto[lane])
        got: list[Entry] = await redis.xrevrange(hub.streams[lane], top, "-", count=PAGE)
        return got

    found: list[tuple[int, str, dict[str, str]]] = []
    scanned = 0
    entries = merged(range(hub.lanes), page, newest_first=True)
    try:
        async for lane, eid, fields in entries:
            scanned += 1
            if visible(fields, key):
                found.append((lane, eid, fields))
            if len(found) >= n or scanned >= BACKLOG_SCAN:
                break
    finally:
        await entries.aclose()
    frames = []
    for lane, eid, fields in reversed(found):
        k = entry_key(eid)
        # Entries of one time go by lane: a later lane's entry of this time comes after it.
        at = tuple(
            min(k if other <= lane else before(k), upto[other]) for other in range(hub.lanes)
        )
        frames.append(frame(resume_id(at), hub.event_id(lane, eid), fields))
    return b"".join(frames)


async def _still_allowed(request: web.Request, sub: Subscriber) -> bool:
    """The console session still lives and the key is not revoked (looked at once a
    heartbeat: a stream does not outlive its credentials by more than that)."""
    session = request.get(SESSION)
    if session is not None and not await request.app[CONSOLE_SESSIONS].alive(session):
        return False
    key = await request.app[API_KEYS].by_id(sub.key.id)
    return key is not None and not key.revoked


async def _live(request: web.Request, resp: web.StreamResponse, sub: Subscriber) -> None:
    """Live frames as they come; every heartbeat a comment (when idle) and, for a console
    stream, a look whether its session still lives."""
    beat = request.app[SETTINGS].console.events_heartbeat_seconds
    loop = asyncio.get_running_loop()
    due = loop.time() + beat
    while not sub.closed:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sub.wake.wait(), max(0.0, due - loop.time()))
        frames = sub.take()
        if frames:
            await resp.write(b"".join(frames))
        if sub.closed or loop.time() < due:
            continue
        due = loop.time() + beat
        if not await _still_allowed(request, sub):
            await resp.write(b'event: session_ended\ndata: {"reason":"session_ended"}\n\n')
            return
        if not frames:
            await resp.write(b": ping\n\n")
    if sub.closed in ("too_slow", "fault"):
        await resp.write(f'event: reconnect\ndata: {{"reason":"{sub.closed}"}}\n\n'.encode())


async def stream_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: status changes of the caller's notices (admin: every notice),
    and for command-centre keys every suspected cloned plate."""
    key = request[CALLER]
    hub = request.app[EVENT_HUB]
    last = _last_event_id(request, hub.lanes)
    backlog = 0 if last else _backlog(request)
    # From here every later entry is buffered for this client (but what it says it has seen,
    # which may be more than this process has read yet).
    sub = await hub.subscribe(key, resumed=last)
    try:
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache, no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await resp.prepare(request)
        await resp.write(b"retry: 2000\n\n")
        if last:
            await _replay(request, resp, key, last, sub.start)
        elif backlog:
            chunk = await _backlog_frames(request, key, backlog, sub.start)
            if chunk:
                await resp.write(chunk)
        await _live(request, resp, sub)
    except ConnectionResetError:
        pass  # the client went away: it resumes with Last-Event-ID when it comes back
    except STORE_DOWN as exc:
        # Redis is away: end the stream; the client resumes by Last-Event-ID once it is back.
        log.warning("event stream ended, store unavailable: %r", exc)
    finally:
        hub.unsubscribe(sub)
    return resp
