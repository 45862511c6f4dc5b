"""Bearer API keys, roles and the per-key rate limit, applied to each route from its table entry."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from functools import wraps

from aiohttp import web

from gateway.api.context import API_KEYS, GCRA, KEYS
from gateway.api.errors import ApiError
from gateway.store.apikeys import ApiKey

CALLER = web.RequestKey("caller", ApiKey)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def guarded(handler: Handler, roles: tuple[str, ...] | None) -> Handler:
    """``handler`` behind the key check: ``None`` is open to all, ``()`` to any valid key, else
    to keys of one of ``roles`` (admin keys pass every role). Then the key's rate limit."""
    if roles is None:
        return handler

    @wraps(handler)
    async def inner(request: web.Request) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401,
                "unauthorized",
                "missing or malformed Authorization: Bearer <key>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        key = await request.app[API_KEYS].authenticate(token.strip())
        if key is None:
            raise ApiError(
                401,
                "unauthorized",
                "unknown or revoked API key",
                headers={"WWW-Authenticate": "Bearer"},
            )
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
