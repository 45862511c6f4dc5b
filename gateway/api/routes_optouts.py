"""Opt-outs from reminders: listed, added and reversed by admins (citizens send 退订/TD/STOP)."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from gateway.api.auth import CALLER
from gateway.api.body import read_model
from gateway.api.context import OPT_OUTS
from gateway.api.errors import ApiError
from gateway.api.models import _STRICT
from gateway.api.responses import json_response
from gateway.api.routes_notices import _phone


class OptOutIn(BaseModel):
    model_config = _STRICT
    phone: str = Field(min_length=1, max_length=32)
    reason: str | None = Field(default=None, max_length=200)


async def list_opt_outs(request: web.Request) -> web.Response:
    """``?cursor=`` pages through them (``next_cursor`` 0 at the end)."""
    try:
        cursor = int(request.query.get("cursor", "0"))
        count = int(request.query.get("count", "100"))
    except ValueError:
        raise ApiError(422, "invalid_cursor", "cursor and count are integers") from None
    if cursor < 0 or not 1 <= count <= 1000:
        raise ApiError(422, "invalid_cursor", "cursor >= 0, count 1..1000")
    next_cursor, items = await request.app[OPT_OUTS].list(cursor, count)
    return json_response({"opt_outs": items, "next_cursor": next_cursor})


async def add_opt_out(request: web.Request) -> web.Response:
    body, _ = await read_model(request, OptOutIn)
    number = _phone(body.phone, "phone").national
    added = await request.app[OPT_OUTS].add(number, "admin", body.reason or request[CALLER].id)
    return json_response({"phone": number, "opted_out": True}, status=201 if added else 200)


async def remove_opt_out(request: web.Request) -> web.Response:
    number = _phone(request.match_info["phone"], "phone").national
    if not await request.app[OPT_OUTS].remove(number, request[CALLER].id):
        raise ApiError(404, "not_opted_out", "this number has not opted out")
    return web.Response(status=204)
