"""``GET /v1/events/stream``: server-sent events of the status changes a key may see.

Each event's ``id`` is its entry id on the events stream; a client that reconnects with
``Last-Event-ID`` (or ``?last_event_id=``) first gets every entry it missed, from Redis, then
the live ones. ``?backlog=N`` (at most 200) starts a fresh stream with the caller's last N
events. If the entries after ``Last-Event-ID`` were already trimmed from the capped stream,
the stream says so with an ``event: gap`` before going on. A comment line every
``GATEWAY_EVENTS_HEARTBEAT_SECONDS`` keeps idle connections open; a console stream ends when
its session does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

from aiohttp import web
from redis.exceptions import ResponseError

from gateway.api.auth import CALLER, SESSION
from gateway.api.context import API_KEYS, CONSOLE_SESSIONS, EVENT_HUB, REDIS, SETTINGS
from gateway.api.errors import ApiError
from gateway.api.event_hub import Subscriber, entry_key, frame, visible
from gateway.store.apikeys import ApiKey
from gateway.store.outage import STORE_DOWN

log = logging.getLogger(__name__)

_ENTRY_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
MAX_BACKLOG = 200
PAGE = 1000
BACKLOG_SCAN = 20_000  # entries read back at most to find a key's last N events


def _last_event_id(request: web.Request) -> str | None:
    value = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
    if value is None or value == "":
        return None
    if not _ENTRY_ID.match(value):
        raise ApiError(400, "invalid_last_event_id", "Last-Event-ID: an event id, e.g. 1700000-0")
    return value


def _backlog(request: web.Request) -> int:
    try:
        n = int(request.query.get("backlog", "0"))
    except ValueError:
        raise ApiError(400, "invalid_query", "backlog must be an integer") from None
    if not 0 <= n <= MAX_BACKLOG:
        raise ApiError(400, "invalid_query", f"backlog must be between 0 and {MAX_BACKLOG}")
    return n


async def _replay(
    request: web.Request, resp: web.StreamResponse, key: ApiKey, after: str, upto: str
) -> None:
    """Entries after ``after`` up to ``upto`` (inclusive) that ``key`` may see."""
    redis, stream = request.app[REDIS], request.app[EVENT_HUB].stream
    if entry_key(after) >= entry_key(upto):
        return
    # The cap trimmed entries (the stream only ever loses its oldest) and the oldest left is
    # newer than the resume point: the client missed what was trimmed.
    try:
        info = await redis.xinfo_stream(stream)
    except ResponseError:  # no stream yet
        info = {}
    first = info.get("first-entry")
    trimmed = int(info.get("entries-added") or 0) > int(info.get("length") or 0)
    if trimmed and first and entry_key(first[0]) > entry_key(after):
        gap = f'{{"after":"{after}","oldest":"{first[0]}"}}'
        await resp.write(f"event: gap\ndata: {gap}\n\n".encode())
    cursor = "(" + after
    while True:
        entries = await redis.xrange(stream, cursor, upto, count=PAGE)
        if not entries:
            return
        chunk = b"".join(frame(i, f) for i, f in entries if visible(f, key))
        if chunk:
            await resp.write(chunk)
        cursor = "(" + entries[-1][0]


async def _backlog_frames(request: web.Request, key: ApiKey, n: int, upto: str) -> bytes:
    """The last ``n`` events ``key`` may see, up to ``upto``, oldest first."""
    redis, stream = request.app[REDIS], request.app[EVENT_HUB].stream
    found: list[bytes] = []
    cursor, scanned = upto, 0
    while len(found) < n and scanned < BACKLOG_SCAN:
        entries = await redis.xrevrange(stream, cursor, "-", count=PAGE)
        if not entries:
            break
        scanned += len(entries)
        found += [frame(i, f) for i, f in entries if visible(f, key)][: n - len(found)]
        cursor = "(" + entries[-1][0]
    return b"".join(reversed(found))


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
    last = _last_event_id(request)
    backlog = 0 if last else _backlog(request)
    hub = request.app[EVENT_HUB]
    sub = await hub.subscribe(key)  # from here every later entry is buffered for this client
    if last and entry_key(last) > sub.last:
        sub.last = entry_key(last)  # it has seen more than this process has read yet
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
