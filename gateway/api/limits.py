"""Request bodies read within their budgets: size, time, and JSON nesting (pure helpers and
the readers the routes use).

A body that has not all arrived in time is answered 408 ``body_timeout`` and its connection
closed (``ApiError.response`` closes on 408): a client sending a byte every few seconds no
longer holds a handler for as long as it likes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from gateway.api.errors import ApiError

# Deeper JSON than this is refused (the API's bodies nest three levels at most).
MAX_JSON_DEPTH = 32


def body_timeout(seconds: float) -> ApiError:
    return ApiError(
        408,
        "body_timeout",
        f"the request body did not arrive within {seconds:g} s; send it at once",
    )


async def read_body(request: web.Request, seconds: float) -> bytes:
    """The whole body (within ``client_max_size``), or 408 after ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            return await request.read()
    except TimeoutError:
        raise body_timeout(seconds) from None


async def limited_chunks(
    request: web.Request, max_bytes: int, seconds: float, what: str = "the upload"
) -> AsyncIterator[bytes]:
    """The body in chunks as they come: 413 past ``max_bytes``, 408 past ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    seen = 0
    it = request.content.iter_chunked(1 << 16).__aiter__()
    while True:
        try:
            async with asyncio.timeout_at(deadline):
                chunk = await it.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise body_timeout(seconds) from None
        seen += len(chunk)
        if seen > max_bytes:
            raise ApiError(
                413,
                "body_too_large",
                f"{what} is larger than {max_bytes} bytes; split it into several jobs",
                details={"max_bytes": max_bytes},
            )
        yield chunk


def json_depth(data: Any) -> int:
    """How deep containers nest in a parsed JSON value (iterative: no recursion limit)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def too_deep() -> ApiError:
    return ApiError(
        400,
        "json_too_deep",
        f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels",
        details={"max_depth": MAX_JSON_DEPTH},
    )
