"""API errors: ``{"error": {"code", "message"}}`` with a 4xx status."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.api.responses import json_response


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}

    def response(self) -> web.Response:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        resp = json_response({"error": body}, status=self.status, headers=self.headers)
        if self.status == 408:
            resp.force_close()  # the rest of a late body is not waited for
        return resp


# aiohttp's own HTTP errors (routing, body size) mapped to stable error codes.
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "body_too_large",
    415: "unsupported_media_type",
    431: "headers_too_large",
    500: "internal_error",
    503: "unavailable",
    504: "handler_timeout",
}
