"""Bindings, parking notices (voice, SMS in quiet hours) and suspected cloned plates."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway.api.auth import CALLER, requires
from gateway.api.body import read_model
from gateway.api.context import BINDINGS, KEYS, METRICS, NOTICES, REDIS, SETTINGS
from gateway.api.errors import ApiError
from gateway.api.models import BindingIn, ParkingNotice
from gateway.api.routes_notices import (
    _callback,
    _idempotency_key,
    _phone,
    idempotency_conflict,
)
from gateway.core.phones import mask
from gateway.core.plates import InvalidPlate, display, normalise_plate
from gateway.core.quiet_hours import is_quiet
from gateway.sms.encoding import encode_sms
from gateway.store.notices import IdempotencyConflict, new_notice_id, now_iso


def _plate(text: str) -> str:
    try:
        return normalise_plate(text)
    except InvalidPlate as exc:
        raise ApiError(422, "invalid_plate", str(exc)) from None


def parking_text(plate: str, location: str, minutes: int) -> str:
    return (
        f"您好，这里是交警提示。您的车辆{display(plate)}违法停放在{location}，"
        f"请在{minutes}分钟内驶离。"
    )


def _binding_view(b: dict[str, str]) -> dict[str, Any]:
    return {
        "plate": b["plate"],
        "phone": mask(b["phone"]),
        "email": b.get("email") or None,
        "created_at": b["created_at"],
        "channel": b["channel"],
        "created_by": b["created_by"],
        "agent_id": b.get("agent_id") or None,
    }


@requires("binding_agent")
async def post_binding(request: web.Request) -> web.Response:
    """Bind a plate to a phone (replacing an earlier binding)."""
    body, _ = await read_model(request, BindingIn)
    plate = _plate(body.plate)
    phone = _phone(body.phone, "phone")
    record, replaced = await request.app[BINDINGS].put(
        plate,
        phone.national,
        body.email or "",
        by_key=request[CALLER].id,
        channel="api",
        agent_id=body.agent_id or "",
    )
    return web.json_response(
        {**_binding_view(record), "replaced": replaced}, status=200 if replaced else 201
    )


@requires("binding_agent")
async def get_binding(request: web.Request) -> web.Response:
    plate = _plate(request.match_info["plate"])
    b = await request.app[BINDINGS].get(plate)
    if b is None:
        raise ApiError(404, "no_binding", f"plate {plate} is not bound")
    return web.json_response(_binding_view(b))


@requires("binding_agent")
async def delete_binding(request: web.Request) -> web.Response:
    plate = _plate(request.match_info["plate"])
    if not await request.app[BINDINGS].delete(plate, by_key=request[CALLER].id, channel="api"):
        raise ApiError(404, "no_binding", f"plate {plate} is not bound")
    return web.Response(status=204)


@requires("officer")
async def post_parking_notice(request: web.Request) -> web.Response:
    """Call the plate's bound phone (SMS in quiet hours); say which reminder this is."""
    body, body_hash = await read_model(request, ParkingNotice)
    plate = _plate(body.plate)
    key = request[CALLER]
    callback = _callback(body.callback_url, key)
    binding = await request.app[BINDINGS].get(plate)
    if binding is None:
        raise ApiError(404, "no_binding", f"plate {plate} has no bound phone")
    settings = request.app[SETTINGS].voice
    quiet = is_quiet(datetime.now(UTC), settings.timezone, settings.quiet_hours)
    channel = "sms" if quiet else "voice"
    text = parking_text(plate, body.location, body.move_within_minutes)
    notice_id = new_notice_id()
    keys = request.app[KEYS]
    record: dict[str, Any] = {
        "id": notice_id,
        "kind": "parking_notice",
        "channel": channel,
        "status": "queued",
        "to": binding["phone"],
        "text": text,
        "plate": plate,
        "location": body.location,
        "officer_id": body.officer_id,
        "callback_url": callback,
        "key_id": key.id,
        "created_at": now_iso(),
        "attempt": 0,
        "parts": encode_sms(text, notice_id).count,
    }
    if quiet:
        record["detail_reason"] = "quiet_hours"
        queue, fields = (
            keys.sms_queue,
            {"id": notice_id, "to": "86" + binding["phone"], "text": text},
        )
    else:
        queue, fields = keys.voice_queue, {"id": notice_id}
    window_ms = settings.reminder_window_days * 86400 * 1000
    try:
        result = await request.app[NOTICES].create(
            record,
            queue,
            fields,
            key_id=key.id,
            idempotency_key=_idempotency_key(request),
            body_hash=body_hash,
            reminder=(keys.reminders(plate), int(time.time() * 1000), window_ms),
        )
    except IdempotencyConflict as exc:
        raise idempotency_conflict(exc) from None
    notice = await request.app[NOTICES].get(result.notice_id)
    assert notice is not None
    if result.outcome == "created":
        request.app[METRICS].notices_created.labels("parking_notice", channel).inc()
    reminder = int(notice.get("reminder_number", 0))
    return web.json_response(
        {
            "id": notice["id"],
            "kind": "parking_notice",
            "status": notice["status"],
            "channel": notice["channel"],
            "to": mask(notice["to"]),
            "plate": plate,
            "reminder_number": reminder,
            "penalty_due": reminder >= 3,
        },
        status=202 if result.outcome == "created" else 200,
        headers={
            "Location": f"/v1/notices/{notice['id']}",
            **({"Idempotent-Replayed": "true"} if result.outcome != "created" else {}),
        },
    )


@requires("command_center")
async def suspected_clones(request: web.Request) -> web.Response:
    """Plates whose owners said "not my vehicle" (2) to a parking call, most recent first."""
    raw = await request.app[REDIS].hgetall(request.app[KEYS].suspected_clones)
    items = sorted((json.loads(v) for v in raw.values()), key=lambda i: i["last_at"], reverse=True)
    return web.json_response({"items": items, "count": len(items)})
