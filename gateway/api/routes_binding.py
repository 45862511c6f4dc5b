"""Bindings: requests proved by an SMS code (website or IVR), the bindings, and their audit.

A binding decides whose phone rings for a plate, so it is only made by someone who shows they
hold that phone: the code sent to it, keyed on the website (``verify``) or in the IVR the
agent seat transfers the caller to. Admins may still bind directly (migrations, corrections).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway.api.auth import CALLER
from gateway.api.body import read_model
from gateway.api.context import (
    BINDING_REQUESTS,
    BINDINGS,
    KEYS,
    METRICS,
    NOTICES,
    QUEUES,
    SETTINGS,
)
from gateway.api.errors import ApiError
from gateway.api.models import BindingIn, BindingRequestIn, BindingVerifyIn
from gateway.api.responses import json_response
from gateway.api.routes_notices import _phone
from gateway.api.unmasked import wants_unmasked
from gateway.core.binding_codes import is_code, is_ref, new_code, new_ref, sms_text
from gateway.core.emails import mask_email
from gateway.core.phones import Msisdn, mask
from gateway.core.plates import InvalidPlate, display, normalise_plate
from gateway.core.records import Notice, QueueEntry
from gateway.sms.encoding import encode_sms
from gateway.store.binding_requests import Actor, Verified
from gateway.store.notices import new_notice_id, now_iso

AUDIT_MAX = 1000


def plate_or_422(text: str) -> str:
    try:
        return normalise_plate(text)
    except InvalidPlate as exc:
        raise ApiError(422, "invalid_plate", str(exc)) from None


def _binding_view(b: dict[str, str]) -> dict[str, Any]:
    return {
        "plate": b["plate"],
        "phone": mask(b["phone"]),
        "email": mask_email(b["email"]) if b.get("email") else None,
        "created_at": b["created_at"],
        "channel": b["channel"],
        "created_by": b["created_by"],
        "agent_id": b.get("agent_id") or None,
        "ref": b.get("ref") or None,
    }


def _request_view(r: dict[str, Any]) -> dict[str, Any]:
    ref = str(r["ref"])
    return {
        "ref": ref,
        "status": r["status"],
        "plate": r["plate"],
        "phone": mask(str(r["phone"])),
        "email": mask_email(str(r["email"])) if r.get("email") else None,
        "agent_id": r.get("agent_id") or None,
        "created_at": r["created_at"],
        "expires_at": _iso(int(r["expires_ms"])),
        "attempts": int(r.get("attempts", 0)),
        "code_notice_id": r.get("code_notice_id") or None,
        "links": {
            "self": f"/v1/binding-requests/{ref}",
            "verify": f"/v1/binding-requests/{ref}/verify",
        },
    }


def _iso(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def _ref(request: web.Request) -> str:
    ref = request.match_info["ref"]
    if not is_ref(ref):
        raise ApiError(404, "unknown_reference", "no binding request has this reference")
    return ref


async def _send_code(request: web.Request, ref: str, plate: str, to: Msisdn, code: str) -> str:
    """The code goes out as an SMS notice on the priority queue; only the agent's key can read
    its status, and the stored copy of the text has the code blanked out."""
    settings = request.app[SETTINGS].binding
    notice_id = new_notice_id(request.app[KEYS], request.app[KEYS].plate_lane(plate))
    text = sms_text(display(plate), code, ref, max(1, settings.binding_code_ttl // 60))
    notice = Notice(
        id=notice_id,
        kind="binding_code",
        channel="sms",
        to=to.national,
        text=text.replace(code, "*" * len(code)),
        parts=encode_sms(text, notice_id).count,
        key_id=request[CALLER].id,
        created_at=now_iso(),
        binding_ref=ref,
    )
    # The queue carries the code itself; the stored copy has it blanked out.
    entry = QueueEntry.for_notice(notice, text=text)
    await request.app[NOTICES].create(notice, request.app[QUEUES].queue("sms", notice.id), entry)
    request.app[METRICS].notices_created.labels("binding_code", "sms").inc()
    return notice_id


async def post_binding_request(request: web.Request) -> web.Response:
    """Open a binding request and text its one-time code to the phone being bound."""
    body, _ = await read_model(request, BindingRequestIn)
    plate = plate_or_422(body.plate)
    phone = _phone(body.phone, "phone")
    settings = request.app[SETTINGS].binding
    actor = Actor("api", request[CALLER].id, body.agent_id or "")
    store = request.app[BINDING_REQUESTS]
    for _ in range(5):
        keys = request.app[KEYS]
        ref, code = new_ref(keys.plate_lane(plate), keys.lanes), new_code()
        outcome, record = await store.create(
            ref=ref,
            code=code,
            plate=plate,
            phone=phone.national,
            email=body.email or "",
            actor=actor,
            ttl_seconds=settings.binding_code_ttl,
            daily_limit=settings.binding_daily_limit,
        )
        if outcome != "collision":
            break
    else:
        raise ApiError(503, "no_reference", "could not allocate a reference; try again")
    if outcome == "limit":
        raise ApiError(
            429,
            "too_many_binding_requests",
            f"phone {phone.masked} already had {settings.binding_daily_limit} binding "
            "requests today",
        )
    notice_id = await _send_code(request, ref, plate, phone, code)
    await store.set_code_notice(ref, notice_id)
    record["code_notice_id"] = notice_id
    return json_response(
        {**_request_view(record), "attempts_left": settings.binding_max_attempts},
        status=201,
        headers={"Location": f"/v1/binding-requests/{ref}"},
    )


async def _own_request(request: web.Request, ref: str) -> dict[str, str]:
    """The request, if the caller's key opened it (or the caller is an admin): another agent
    key is told what it would be told of a reference that does not exist."""
    record = await request.app[BINDING_REQUESTS].get(ref) if is_ref(ref) else None
    caller = request[CALLER]
    if record is None or (record.get("key_id") != caller.id and caller.role != "admin"):
        raise ApiError(404, "unknown_reference", "no binding request has this reference")
    return record


async def get_binding_request(request: web.Request) -> web.Response:
    record = await _own_request(request, _ref(request))
    left = max(0, request.app[SETTINGS].binding.binding_max_attempts - int(record["attempts"]))
    return json_response({**_request_view(record), "attempts_left": left})


def _verify_error(v: Verified) -> ApiError:
    if v.outcome == "wrong":
        return ApiError(
            422,
            "wrong_code",
            f"the code is wrong; {v.attempts_left} attempt(s) left",
            details={"attempts_left": v.attempts_left},
        )
    if v.outcome == "failed":
        return ApiError(
            422,
            "wrong_code",
            "the code is wrong and no attempts are left; the request has failed",
            details={"attempts_left": 0, "status": "failed"},
        )
    if v.outcome == "expired":
        return ApiError(410, "request_expired", "the binding request has expired")
    if v.outcome == "not_pending":
        return ApiError(
            409,
            "request_closed",
            f"the binding request is already {v.status}",
            details={"status": v.status},
        )
    return ApiError(404, "unknown_reference", "no binding request has this reference")


async def verify_binding_request(request: web.Request) -> web.Response:
    """The website's path: the code the citizen received makes the binding."""
    ref = request.match_info["ref"]
    store = request.app[BINDING_REQUESTS]
    actor = Actor("website", request[CALLER].id)
    try:
        await _own_request(request, ref)
        body, _ = await read_model(request, BindingVerifyIn)
        if not is_code(body.code):
            raise ApiError(422, "invalid_code", "the code is 6 digits")
    except ApiError as exc:
        # Nothing about the request changes; the attempt is still on record.
        plate = ""
        record = await store.get(ref) if is_ref(ref) else None
        if record is not None:
            plate = record["plate"]
        await request.app[BINDINGS].audit(
            "verify_refused",
            plate,
            channel="website",
            key_id=request[CALLER].id,
            ref=ref[:16],
            reason=exc.code,
        )
        raise
    v = await store.verify(
        ref,
        body.code,
        actor,
        confirm=True,
        max_attempts=request.app[SETTINGS].binding.binding_max_attempts,
    )
    if v.outcome != "confirmed":
        raise _verify_error(v)
    record = await store.get(ref)
    assert record is not None
    binding = await request.app[BINDINGS].get(record["plate"])
    return json_response(
        {
            **_request_view(record),
            "binding": _binding_view(binding) if binding else None,
            "replaced": v.replaced,
        }
    )


async def cancel_binding_request(request: web.Request) -> web.Response:
    ref = _ref(request)
    await _own_request(request, ref)
    store = request.app[BINDING_REQUESTS]
    outcome = await store.close(ref, "cancelled", Actor("api", request[CALLER].id), "cancelled")
    if outcome == "unknown":
        raise ApiError(404, "unknown_reference", "no binding request has this reference")
    if outcome != "ok":
        raise ApiError(
            409,
            "request_closed",
            f"the binding request is already {outcome}",
            details={"status": outcome},
        )
    record = await store.get(ref)
    assert record is not None
    return json_response(_request_view(record))


async def get_binding_audit(request: web.Request) -> web.Response:
    """The audit trail, newest first: ``?plate=`` for one plate, ``limit`` up to 1000. Phone
    numbers are masked; ``?unmasked=true`` shows them whole and is itself audited."""
    plate = request.query.get("plate")
    if plate is not None:
        plate = plate_or_422(plate)
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        raise ApiError(422, "invalid_limit", "limit must be an integer") from None
    if not 1 <= limit <= AUDIT_MAX:
        raise ApiError(422, "invalid_limit", f"limit must be between 1 and {AUDIT_MAX}")
    entries = await request.app[BINDINGS].read_audit(
        plate, limit, unmasked_for=request[CALLER].id if wants_unmasked(request) else ""
    )
    return json_response({"plate": plate, "entries": entries})


async def post_binding(request: web.Request) -> web.Response:
    """Bind a plate to a phone without a code (admins only: imports and corrections)."""
    body, _ = await read_model(request, BindingIn)
    plate = plate_or_422(body.plate)
    phone = _phone(body.phone, "phone")
    record, replaced = await request.app[BINDINGS].put(
        plate,
        phone.national,
        body.email or "",
        by_key=request[CALLER].id,
        channel="admin",
        agent_id=body.agent_id or "",
    )
    return json_response(
        {**_binding_view(record), "replaced": replaced}, status=200 if replaced else 201
    )


async def get_binding(request: web.Request) -> web.Response:
    plate = plate_or_422(request.match_info["plate"])
    b = await request.app[BINDINGS].get(plate)
    if b is None:
        raise ApiError(404, "no_binding", f"plate {plate} is not bound")
    view = _binding_view(b)
    if wants_unmasked(request):  # an admin's: whole, and on the plate's audit trail
        view.update(phone=b["phone"], email=b.get("email") or None)
        await request.app[BINDINGS].audit(
            "binding_read_unmasked", plate, key_id=request[CALLER].id, channel="admin"
        )
    return json_response(view)


async def delete_binding(request: web.Request) -> web.Response:
    """Remove a binding (admins; a citizen removes one from the bound phone, in the IVR)."""
    plate = plate_or_422(request.match_info["plate"])
    if not await request.app[BINDINGS].delete(plate, by_key=request[CALLER].id, channel="admin"):
        raise ApiError(404, "no_binding", f"plate {plate} is not bound")
    return web.Response(status=204)
