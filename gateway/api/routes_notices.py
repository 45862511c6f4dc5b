"""Notice routes: accident alerts, creating a notice of any channel, reading one back."""

from __future__ import annotations

import math
import re
from typing import Any, TypedDict

from aiohttp import web

from gateway.api.auth import CALLER
from gateway.api.body import read_model
from gateway.api.context import CATALOGUE, KEYS, METRICS, NOTICES, QUEUES, SETTINGS
from gateway.api.errors import ApiError
from gateway.api.models import AccidentAlert
from gateway.api.responses import json_response
from gateway.core.emails import mask_email
from gateway.core.phones import API_MOBILES, InvalidPhone, Msisdn, mask
from gateway.core.records import Notice, QueueEntry
from gateway.core.status_events import SELECTABLE, StatusEventsError, selection
from gateway.core.templates import ACCIDENT_TYPES
from gateway.logs import mask_numbers
from gateway.receipts.callbacks import CallbackRejected, check_callback_url
from gateway.sms.encoding import TextTooLong, encode_sms
from gateway.store.apikeys import ApiKey
from gateway.store.notice_scripts import CreateOutcome
from gateway.store.notices import IdempotencyConflict, new_notice_id, now_iso

_IDEM_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")
NOTICE_ID = re.compile(r"^ntc_[0-9a-z]{1,16}[0-9a-f]{16}$")


def _phone(text: str, field: str) -> Msisdn:
    try:
        return API_MOBILES.parse(text)
    except InvalidPhone as exc:
        raise ApiError(422, exc.code, f"{field}: {exc}") from None


def _callback(url: str | None, key: ApiKey) -> str:
    if url is None:
        return ""
    try:
        return check_callback_url(url, key.callback_hosts)
    except CallbackRejected as exc:
        if exc.code != "callback_host_not_allowed":
            raise ApiError(422, exc.code, str(exc)) from None
        raise ApiError(
            422,
            exc.code,
            f"{exc}; an operator allows it with: "
            f"gateway keys update {key.id} --add-callback-host {exc.host}",
            details={"host": exc.host, "allowed": list(key.callback_hosts)},
        ) from None


class Callback(TypedDict):
    """A notice's fields about its webhooks."""

    callback_url: str
    status_events: str


def callback_fields(url: str | None, events: list[str] | None, key: ApiKey) -> Callback:
    """A notice's ``callback_url`` and the statuses whose webhooks go there: the request's
    ``status_events``, else the key's default (empty: every status)."""
    try:
        chosen = key.status_events if events is None else selection(events)
    except StatusEventsError as exc:
        raise ApiError(
            422,
            "invalid_status_events",
            f"status_events: {exc}",
            details={"allowed": list(SELECTABLE), "unknown": exc.unknown},
        ) from None
    callback = _callback(url, key)
    return Callback(callback_url=callback, status_events=chosen if callback else "")


def _masked_entry(entry: Any) -> Any:
    """A history entry as callers see it: a number a citizen's reply carried, masked (only
    the reply's text: carrier ids elsewhere may look like numbers)."""
    detail = entry.get("detail") if isinstance(entry, dict) else None
    if isinstance(detail, dict) and detail.get("event") == "reply" and "text" in detail:
        return {**entry, "detail": {**detail, "text": mask_numbers(str(detail["text"]))}}
    return entry


def idempotency_conflict(exc: IdempotencyConflict) -> ApiError:
    return ApiError(
        409,
        "idempotency_conflict",
        "Idempotency-Key was used with a different body"
        + (f" (notice {exc.notice_id})" if exc.notice_id else ""),
    )


def _idempotency_key(request: web.Request) -> str | None:
    value = request.headers.get("Idempotency-Key")
    if value is None:
        return None
    if not _IDEM_KEY.match(value):
        raise ApiError(
            400,
            "invalid_idempotency_key",
            "Idempotency-Key must be 1-128 printable ASCII characters",
        )
    return value


async def create_notice(
    request: web.Request,
    notice: Notice,
    queue: str,
    body_hash: str,
    entry: QueueEntry | None = None,
    reply_window_s: int | None = None,
) -> web.Response:
    """Store a notice (any channel) and queue it; 202, or 200 for an idempotent replay."""
    try:
        result = await request.app[NOTICES].create(
            notice,
            queue,
            entry,
            idempotency_key=_idempotency_key(request),
            body_hash=body_hash,
            key_name=request[CALLER].name,
            reply_window_s=reply_window_s,
        )
    except IdempotencyConflict as exc:
        raise idempotency_conflict(exc) from None
    if result.outcome is CreateOutcome.EXISTING:
        earlier = await request.app[NOTICES].get(result.notice_id)
        if earlier is None:
            raise ApiError(409, "idempotency_conflict", "the earlier notice has expired")
        return json_response(
            _summary(earlier),
            status=200,
            headers={"Idempotent-Replayed": "true", "Location": f"/v1/notices/{earlier.id}"},
        )
    request.app[METRICS].notices_created.labels(notice.kind, notice.channel).inc()
    return json_response(
        _summary(notice), status=202, headers={"Location": f"/v1/notices/{notice.id}"}
    )


def sms_notice(
    request: web.Request, notice_id: str, to: Msisdn, text: str, **fields: Any
) -> Notice:
    """A notice carrying an SMS text: its parts and encoding (422 if it is too long). Voice
    notices carry one too: it is their fallback when nobody answers."""
    try:
        sms = encode_sms(text, notice_id)
    except TextTooLong as exc:
        raise ApiError(422, "text_too_long", str(exc)) from None
    fields.setdefault("channel", "sms")
    return Notice(
        id=notice_id,
        to=to.national,
        text=text,
        parts=sms.count,
        encoding=sms.encoding,
        key_id=request[CALLER].id,
        created_at=now_iso(),
        **fields,
    )


async def create_sms(
    request: web.Request,
    *,
    kind: str,
    to: Msisdn,
    text: str,
    callback: Callback,
    body_hash: str,
    meta: dict[str, Any],
    reply_window_s: int | None = None,
) -> web.Response:
    """An SMS notice; ``callback`` is what ``callback_fields`` made."""
    keys = request.app[KEYS]
    notice_id = new_notice_id(keys, keys.recipient_lane(to.national))  # the reporter's lane
    notice = sms_notice(request, notice_id, to, text, kind=kind, **callback, **meta)
    queue = request.app[QUEUES].queue("sms", notice.id)
    return await create_notice(request, notice, queue, body_hash, reply_window_s=reply_window_s)


def _summary(n: Notice) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": n.id,
        "kind": n.kind,
        "status": n.status,
        "channel": n.channel,
        "to": mask_email(n.to) if n.channel == "email" else mask(n.to),
    }
    if n.channel == "sms":
        out["segments"] = n.parts
    return out


async def post_accident_alert(request: web.Request) -> web.Response:
    """Send the reporter the procedure for this accident type."""
    alert, body_hash = await read_model(request, AccidentAlert)
    if alert.accident_type not in ACCIDENT_TYPES:
        raise ApiError(
            422,
            "unknown_accident_type",
            f"accident_type must be one of {', '.join(ACCIDENT_TYPES)}",
            details={"allowed": list(ACCIDENT_TYPES)},
        )
    to = _phone(alert.reporter_phone, "reporter_phone")
    callback = callback_fields(alert.callback_url, alert.status_events, request[CALLER])
    template = request.app[CATALOGUE].get(f"accident_{alert.accident_type}")
    text = template.render({"location": alert.location, "case_id": alert.case_id})
    return await create_sms(
        request,
        kind="accident_alert",
        to=to,
        text=text,
        callback=callback,
        body_hash=body_hash,
        meta={
            "accident_type": alert.accident_type,
            "case_id": alert.case_id,
            "template": template.name,
            "template_version": str(template.version),
        },
        reply_window_s=math.ceil(request.app[SETTINGS].follow_up.accident_reply_hours * 3600),
    )


async def get_notice(request: web.Request) -> web.Response:
    """A notice with its status history; callers see only their own notices."""
    notice_id = request.match_info["id"]
    if not NOTICE_ID.match(notice_id):
        raise ApiError(404, "not_found", "no such notice")
    notice = await request.app[NOTICES].get(notice_id)
    caller = request[CALLER]
    if notice is None or (notice.key_id != caller.id and caller.role != "admin"):
        raise ApiError(404, "not_found", "no such notice")
    body = _summary(notice)
    body.update(
        {
            "created_at": notice.created_at,
            "updated_at": notice.updated_at or notice.created_at,
            "history": [_masked_entry(h) for h in notice.history],
            "links": {"self": f"/v1/notices/{notice_id}"},
        }
    )
    for extra in (
        "accident_type",
        "case_id",
        "template",
        "template_version",
        "plate",
        "follow_up",
        "reply",
        "reply_text",
    ):
        if value := getattr(notice, extra):
            body[extra] = mask_numbers(value) if extra == "reply_text" else value
    if notice.status_events:
        body["status_events"] = notice.status_events.split(",")
    if notice.follow_up == "still_parked":
        body["warning_number"] = notice.warning_number
        body["penalty_due"] = notice.penalty_due
    return json_response(body)
