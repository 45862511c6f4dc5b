"""The API's HTTP server: requests the HTTP parser refuses get the JSON error shape too.

aiohttp answers a request line it cannot parse (an unencoded Chinese query, a bad header)
before any middleware runs, in plain text, and logs a traceback at ERROR. Those are the
client's mistakes: they get a 4xx JSON error that names the fix and one INFO line.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import InvalidURLError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from gateway.api.errors import HTTP_CODES, ApiError

log = logging.getLogger(__name__)


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
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not 400 <= status < 500 or request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)
        error = parse_error(status, exc, message)
        log.info("refused a malformed request from %s: %s", request.remote, error.code)
        resp = error.response()
        resp.force_close()
        return resp


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _Handler(self, loop=self._loop, **self._kwargs)


class ApiRunner(web.AppRunner):
    """``web.AppRunner`` whose connections answer parser errors as the API's JSON errors."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        kwargs: dict[str, Any] = server._kwargs
        return _Server(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **kwargs,
        )
