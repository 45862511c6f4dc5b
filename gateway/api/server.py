"""The API's HTTP server: every answer in the JSON error shape, and slow clients timed out.

aiohttp answers a request line it cannot parse (an unencoded Chinese query, a bad header)
before any middleware runs, in plain text, and logs a traceback at ERROR. Those are the
client's mistakes: they get a 4xx JSON error that names the fix and one INFO line. Its own
5xx (a handler that failed outside the middleware, a handler timeout) are JSON too.

Slow clients: a request's head (request line and headers) must arrive within
``GATEWAY_HTTP_HEADER_TIMEOUT`` of its first byte, and an idle keep-alive connection is
closed after ``GATEWAY_HTTP_KEEPALIVE_TIMEOUT`` (the first request's head also counts from
the connection's start). Bodies have their own budget where they are read (``limits.py``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import InvalidURLError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from gateway.api.context import SETTINGS
from gateway.api.errors import HTTP_CODES, ApiError

log = logging.getLogger(__name__)

LINGER_SECONDS = 2.0


def parse_error(status: int, exc: BaseException | None, message: str | None) -> ApiError:
    """The JSON error for a request the HTTP parser refused (pure)."""
    reason = ((message or "").strip().splitlines() or [""])[0].rstrip(":")
    if isinstance(exc, InvalidURLError):
        return ApiError(
            status,
            "invalid_url",
            "the URL has characters that must be percent-encoded (Chinese text in the "
            "query, spaces): encode them, e.g. curl -G --data-urlencode 'plate=云A12345' URL",
            details={"reason": reason},
        )
    code = HTTP_CODES.get(status, "bad_request")
    return ApiError(status, code, f"malformed HTTP request: {reason or code}")


class _Handler(RequestHandler):
    def __init__(self, *args: Any, header_timeout: float = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout = header_timeout
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._start_head_clock()

    def _start_head_clock(self) -> None:
        if self._header_timeout > 0 and self._head_deadline is None:
            self._head_deadline = self._loop.call_later(
                self._header_timeout, self._head_overdue, self._request_count
            )

    def _head_overdue(self, count: int) -> None:
        self._head_deadline = None
        # No request's head completed since the clock started, and none is being handled.
        idle = not self._request_in_progress and not self._messages
        if self._request_count == count and idle and self.transport is not None:
            log.info("closed a connection whose request head was not complete in time")
            self.force_close()

    def data_received(self, data: bytes) -> None:
        count = self._request_count
        super().data_received(data)
        if self._request_count > count and self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None
        elif data and self._request_count == count and not self._request_in_progress:
            self._start_head_clock()  # bytes of a request whose head is not complete yet

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None
        super().connection_lost(exc)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)
        if 400 <= status < 500:
            error = parse_error(status, exc, message)
            log.info("refused a malformed request from %s: %s", request.remote, error.code)
        else:
            if exc is not None:
                self.log_exception("error handling a request from %s", request.remote, exc_info=exc)
            code = "handler_timeout" if status == 504 else "internal_error"
            error = ApiError(status, code, "internal error; the request was not processed")
        resp = error.response()
        resp.force_close()
        return resp


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _Handler(self, loop=self._loop, **self._kwargs)


class ApiRunner(web.AppRunner):
    """``web.AppRunner`` whose connections answer parser errors as the API's JSON errors and
    time out slow clients (the timeouts from the app's settings)."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        kwargs: dict[str, Any] = dict(server._kwargs)
        app = self._app
        if SETTINGS in app:
            http = app[SETTINGS].http
            kwargs["keepalive_timeout"] = http.http_keepalive_timeout
            kwargs["header_timeout"] = http.http_header_timeout
            # After an answer that left the body unread (413, 408), the rest is read and
            # dropped this long so the client sees the answer, not a reset (aiohttp: 10 s).
            kwargs["lingering_time"] = LINGER_SECONDS
        return _Server(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **kwargs,
        )
