"""``?unmasked=true``: numbers and emails whole, for admins only (the caller audits it)."""

from __future__ import annotations

from aiohttp import web

from gateway.api.auth import CALLER
from gateway.api.errors import ApiError


def wants_unmasked(request: web.Request) -> bool:
    """True for an admin's ``?unmasked=true``; 422 for another value, 403 for another role."""
    value = request.query.get("unmasked", "false")
    if value not in ("true", "false"):
        raise ApiError(
            422,
            "invalid_unmasked",
            "unmasked must be true or false",
            details={"allowed": ["true", "false"]},
        )
    if value == "true" and request[CALLER].role != "admin":
        raise ApiError(403, "forbidden", "only admin keys may read numbers unmasked")
    return value == "true"
