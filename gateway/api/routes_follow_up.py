"""The officer's follow-up of a parking notice: the car moved, or a warning slip (a strike)."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from gateway.api.auth import CALLER
from gateway.api.body import read_model
from gateway.api.context import FOLLOW_UPS, NOTICES
from gateway.api.errors import ApiError
from gateway.api.models import FollowUpIn
from gateway.api.routes_notices import NOTICE_ID, _idempotency_key
from gateway.api.routes_voice import warnings_window_ms
from gateway.core.audit import audit_entry
from gateway.store.follow_ups import FollowUp, FollowUpResult
from gateway.store.notices import now_iso


def _answer(notice_id: str, plate: str, f: FollowUp) -> dict[str, Any]:
    still = f.outcome == "still_parked"
    return {
        "id": notice_id,
        "plate": plate,
        "outcome": f.outcome,
        "status": f.status,
        "warning_number": f.warning_number if still else None,
        "penalty_due": f.penalty_due,
    }


async def post_follow_up(request: web.Request) -> web.Response:
    """Record what the officer found, once; a warning slip answers its number in the window
    and whether it is the third (a penalty is due: the enforcement system issues it)."""
    notice_id = request.match_info["id"]
    if not NOTICE_ID.match(notice_id):
        raise ApiError(404, "not_found", "no such parking notice")
    body, body_hash = await read_model(request, FollowUpIn)
    idem = _idempotency_key(request)
    key = request[CALLER]
    notice = await request.app[NOTICES].get(notice_id)
    if notice is None or notice.kind != "parking_notice":
        raise ApiError(404, "not_found", "no such parking notice")
    at = now_iso()
    detail: dict[str, Any] = {
        "event": "follow_up",
        "outcome": body.outcome,
        "officer_id": body.officer_id,
    }
    if body.note:
        detail["note"] = body.note
    f = await request.app[FOLLOW_UPS].record(
        notice_id=notice_id,
        plate=notice.plate,
        key_id=key.id,
        admin=key.role == "admin",
        outcome=body.outcome,
        at=at,
        now_ms=int(time.time() * 1000),
        window_ms=warnings_window_ms(request),
        replay_mark=f"{key.id}:{idem}:{body_hash}" if idem else "",
        detail=detail,
        audit=audit_entry(
            "follow_up",
            at=at,
            key_id=key.id,
            key_name=key.name,
            notice_id=notice_id,
            kind=notice.kind,
            to=notice.to,
            outcome=body.outcome,
            officer_id=body.officer_id,
            plate=notice.plate,
        ),
    )
    answer = _answer(notice_id, notice.plate, f)
    if f.result is FollowUpResult.RECORDED:
        return web.json_response(answer)
    if f.result is FollowUpResult.REPLAYED:
        return web.json_response(answer, headers={"Idempotent-Replayed": "true"})
    if f.result is FollowUpResult.DONE:
        raise ApiError(
            409,
            "follow_up_exists",
            f"this notice was followed up already: {f.outcome}",
            details=answer,
        )
    if f.result is FollowUpResult.FORBIDDEN:
        raise ApiError(403, "forbidden", "another key's parking notice")
    if f.result is FollowUpResult.TOO_LATE:
        raise ApiError(
            422,
            "follow_up_too_late",
            "a follow-up is taken until 24 h after the notice's deadline",
        )
    raise ApiError(404, "not_found", "no such parking notice")
