"""Opt-outs from reminders: listed, added and reversed by admins (citizens send 退订/TD/STOP)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from gateway.api.auth import CALLER
from gateway.api.body import read_model
from gateway.api.context import AUDIT, OPT_OUTS
from gateway.api.errors import ApiError
from gateway.api.models import _PHONE_DOC, _STRICT
from gateway.api.responses import json_response
from gateway.api.routes_notices import _phone
from gateway.api.unmasked import wants_unmasked
from gateway.core.audit import audit_entry
from gateway.core.phones import mask
from gateway.logs import mask_numbers
from gateway.store.notices import now_iso

_DIGITS = re.compile(r"^[0-9]{1,20}$")


class OptOutIn(BaseModel):
    model_config = _STRICT
    phone: str = Field(min_length=1, max_length=32, json_schema_extra=_PHONE_DOC)
    reason: str | None = Field(default=None, max_length=200)


async def list_opt_outs(request: web.Request) -> web.Response:
    """``?cursor=`` pages through them (``next_cursor`` 0 at the end). Numbers are masked;
    ``?unmasked=true`` shows them whole, and the reading is written to the audit trail."""
    cursor_text = request.query.get("cursor", "0")
    count_text = request.query.get("count", "100")
    # Redis cursors are unsigned 64-bit: a larger one is refused here, not by Redis (a 500).
    if not (_DIGITS.match(cursor_text) and _DIGITS.match(count_text)):
        raise ApiError(400, "invalid_cursor", "cursor and count are non-negative integers")
    cursor, count = int(cursor_text), int(count_text)
    if cursor >= 2**64 or not 1 <= count <= 1000:
        raise ApiError(400, "invalid_cursor", "cursor: a next_cursor of a page; count 1..1000")
    unmasked = wants_unmasked(request)
    next_cursor, items = await request.app[OPT_OUTS].list(cursor, count)
    if unmasked:
        caller = request[CALLER]
        await request.app[AUDIT].append(
            audit_entry(
                "opt_outs_read_unmasked",
                at=now_iso(),
                key_id=caller.id,
                key_name=caller.name,
                count=len(items),
            )
        )
    else:
        items = [_masked(i) for i in items]
    return json_response({"opt_outs": items, "next_cursor": next_cursor})


def _masked(item: dict[str, Any]) -> dict[str, Any]:
    return {
        k: mask(v) if k == "phone" else mask_numbers(v) if isinstance(v, str) else v
        for k, v in item.items()
    }


async def add_opt_out(request: web.Request) -> web.Response:
    body, _ = await read_model(request, OptOutIn)
    number = _phone(body.phone, "phone").national
    added = await request.app[OPT_OUTS].add(number, "admin", body.reason or request[CALLER].id)
    return json_response({"phone": mask(number), "opted_out": True}, status=201 if added else 200)


async def remove_opt_out(request: web.Request) -> web.Response:
    number = _phone(request.match_info["phone"], "phone").national
    if not await request.app[OPT_OUTS].remove(number, request[CALLER].id):
        raise ApiError(404, "not_opted_out", "this number has not opted out")
    return web.Response(status=204)
