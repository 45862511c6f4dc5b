"""Reading JSON bodies: size, media type, syntax and schema each get their own error code."""

from __future__ import annotations

import hashlib
import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from gateway.api.context import SETTINGS
from gateway.api.errors import ApiError
from gateway.api.limits import MAX_JSON_DEPTH, json_depth, read_body, too_deep

M = TypeVar("M", bound=BaseModel)


def validation_error(exc: ValidationError) -> ApiError:
    """422 naming the first bad field, with every problem in ``details``."""
    details = [
        {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "message": e["msg"]}
        for e in exc.errors(include_url=False, include_input=False)
    ]
    first = details[0]
    return ApiError(
        422, "validation_error", f"{first['field']}: {first['message']}", details=details
    )


def parse_model(raw: bytes | bytearray, model: type[M]) -> tuple[dict[str, Any], M]:
    """Raw body -> the JSON object and the model, each failure with its own code."""
    if not raw:
        raise ApiError(400, "empty_body", "the request body is empty")
    try:
        data: Any = json.loads(raw)
    except RecursionError:
        raise too_deep() from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "malformed_json", f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    if json_depth(data) > MAX_JSON_DEPTH:
        raise too_deep()
    try:
        return data, model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


async def read_model(request: web.Request, model: type[M]) -> tuple[M, str]:
    """The validated body and a hash of its canonical JSON (for idempotency)."""
    ctype = request.content_type
    if ctype not in ("application/json", "") and not ctype.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    raw = await read_body(request, request.app[SETTINGS].http.http_body_timeout)
    data, obj = parse_model(raw, model)
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    return obj, digest
