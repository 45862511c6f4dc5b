"""Who is calling: a Bearer API key, or a console session cookie (the browser's), then the
route's roles and the per-key rate limit, applied to each route from its table entry.

A console session is the key's stand-in for the browser: every request with the cookie also
renews its idle time (unless it says ``X-Console-Background: 1``, the page's own refreshes),
and every request that changes something must carry the session's ``X-CSRF-Token``.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Awaitable, Callable
from functools import wraps

from aiohttp import web

from gateway.api.context import API_KEYS, CONSOLE_SESSIONS, GCRA, KEYS
from gateway.api.errors import ApiError
from gateway.store.apikeys import ApiKey
from gateway.store.console_sessions import ConsoleSession

CALLER = web.RequestKey("caller", ApiKey)
SESSION = web.RequestKey("console_session", ConsoleSession)
SESSION_COOKIE = "gw_console"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def csrf_ok(request: web.Request, expected: str) -> bool:
    sent = request.headers.get(CSRF_HEADER, "")
    return bool(sent) and hmac.compare_digest(sent.encode(), expected.encode())


async def session_caller(request: web.Request, token: str) -> ApiKey:
    """The key behind a console session cookie (401 once it ended; 403 without CSRF)."""
    renew = request.headers.get("X-Console-Background") != "1"
    session = await request.app[CONSOLE_SESSIONS].get(token, renew=renew)
    if session is None:
        raise _unauthorized("the console session ended (logged out or idle); log in again")
    if request.method not in SAFE_METHODS and not csrf_ok(request, session.csrf):
        raise ApiError(
            403, "csrf_required", f"a console request that changes something needs {CSRF_HEADER}"
        )
    key = await request.app[API_KEYS].by_hash(session.key_hash)
    if key is None:
        await request.app[CONSOLE_SESSIONS].end(session.session_hash)
        raise _unauthorized("the API key of this console session was revoked")
    request[SESSION] = session
    return key


async def caller_of(request: web.Request) -> ApiKey:
    header = request.headers.get("Authorization")
    cookie = request.cookies.get(SESSION_COOKIE)
    if header is None and cookie:
        return await session_caller(request, cookie)
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("missing or malformed Authorization: Bearer <key>")
    key = await request.app[API_KEYS].authenticate(token.strip())
    if key is None:
        raise _unauthorized("unknown or revoked API key")
    return key


def guarded(handler: Handler, roles: tuple[str, ...] | None) -> Handler:
    """``handler`` behind the key check: ``None`` is open to all, ``()`` to any valid key, else
    to keys of one of ``roles`` (admin keys pass every role). Then the key's rate limit."""
    if roles is None:
        return handler

    @wraps(handler)
    async def inner(request: web.Request) -> web.StreamResponse:
        key = await caller_of(request)
        if roles and key.role not in roles and key.role != "admin":
            raise ApiError(
                403,
                "forbidden",
                f"role {key.role} may not call this; needs {' or '.join(roles)}",
            )
        granted, wait = await request.app[GCRA].take(
            request.app[KEYS].rate(f"key:{key.id}"), key.rate, key.burst
        )
        if not granted:
            raise ApiError(
                429,
                "rate_limited",
                "too many requests for this API key",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        request[CALLER] = key
        return await handler(request)

    return inner
