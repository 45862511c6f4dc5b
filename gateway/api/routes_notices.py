"""Notice routes: accident alerts, messages, and reading a notice back."""

from __future__ import annotations

import math
import re
from typing import Any

from aiohttp import web

from gateway.api.auth import CALLER
from gateway.api.body import read_model
from gateway.api.context import CATALOGUE, KEYS, METRICS, NOTICES, SETTINGS
from gateway.api.errors import ApiError
from gateway.api.models import AccidentAlert, Message
from gateway.core.phones import InvalidPhone, Msisdn, mask, parse_cn_mobile
from gateway.core.records import Notice
from gateway.core.templates import ACCIDENT_TYPES, TemplateError
from gateway.receipts.callbacks import CallbackRejected, check_callback_url
from gateway.sms.encoding import TextTooLong, encode_sms
from gateway.store.apikeys import ApiKey
from gateway.store.notice_scripts import CreateOutcome
from gateway.store.notices import IdempotencyConflict, new_notice_id, now_iso

_IDEM_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")
NOTICE_ID = re.compile(r"^ntc_[0-9a-z]{1,16}[0-9a-f]{16}$")


def _phone(text: str, field: str) -> Msisdn:
    try:
        return parse_cn_mobile(text)
    except InvalidPhone as exc:
        raise ApiError(422, exc.code, f"{field}: {exc}") from None


def _callback(url: str | None, key: ApiKey) -> str:
    if url is None:
        return ""
    try:
        return check_callback_url(url, key.callback_hosts)
    except CallbackRejected as exc:
        raise ApiError(422, exc.code, str(exc)) from None


def idempotency_conflict(exc: IdempotencyConflict) -> ApiError:
    return ApiError(
        409,
        "idempotency_conflict",
        f"Idempotency-Key was used with a different body (notice {exc.notice_id})",
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


async def _create_sms(
    request: web.Request,
    *,
    kind: str,
    to: Msisdn,
    text: str,
    callback_url: str,
    body_hash: str,
    meta: dict[str, Any],
    reply_window_s: int | None = None,
) -> web.Response:
    key = request[CALLER]
    notice_id = new_notice_id()
    try:
        sms = encode_sms(text, notice_id)
    except TextTooLong as exc:
        raise ApiError(422, "text_too_long", str(exc)) from None
    notice = Notice(
        id=notice_id,
        kind=kind,
        channel="sms",
        to=to.national,
        text=text,
        parts=sms.count,
        encoding=sms.encoding,
        callback_url=callback_url,
        key_id=key.id,
        created_at=now_iso(),
        **meta,
    )
    keys = request.app[KEYS]
    try:
        result = await request.app[NOTICES].create(
            notice,
            keys.sms_queue,
            idempotency_key=_idempotency_key(request),
            body_hash=body_hash,
            key_name=key.name,
            reply_window_s=reply_window_s,
        )
    except IdempotencyConflict as exc:
        raise idempotency_conflict(exc) from None
    if result.outcome is CreateOutcome.EXISTING:
        earlier = await request.app[NOTICES].get(result.notice_id)
        if earlier is None:
            raise ApiError(409, "idempotency_conflict", "the earlier notice has expired")
        return web.json_response(
            _summary(earlier),
            status=200,
            headers={"Idempotent-Replayed": "true", "Location": f"/v1/notices/{earlier.id}"},
        )
    request.app[METRICS].notices_created.labels(kind, "sms").inc()
    return web.json_response(
        _summary(notice), status=202, headers={"Location": f"/v1/notices/{notice_id}"}
    )


def _summary(n: Notice) -> dict[str, Any]:
    return {
        "id": n.id,
        "kind": n.kind,
        "status": n.status,
        "channel": n.channel,
        "to": mask(n.to),
        "segments": n.parts,
    }


async def post_accident_alert(request: web.Request) -> web.Response:
    """Send the reporter the procedure for this accident type."""
    alert, body_hash = await read_model(request, AccidentAlert)
    if alert.accident_type not in ACCIDENT_TYPES:
        raise ApiError(
            422,
            "unknown_accident_type",
            f"accident_type must be one of {', '.join(ACCIDENT_TYPES)}",
        )
    to = _phone(alert.reporter_phone, "reporter_phone")
    callback = _callback(alert.callback_url, request[CALLER])
    template = request.app[CATALOGUE].get(f"accident_{alert.accident_type}")
    text = template.render({"location": alert.location, "case_id": alert.case_id})
    return await _create_sms(
        request,
        kind="accident_alert",
        to=to,
        text=text,
        callback_url=callback,
        body_hash=body_hash,
        meta={
            "accident_type": alert.accident_type,
            "case_id": alert.case_id,
            "template": template.name,
            "template_version": str(template.version),
        },
        reply_window_s=math.ceil(request.app[SETTINGS].follow_up.accident_reply_hours * 3600),
    )


async def post_message(request: web.Request) -> web.Response:
    """A one-off notice from a template or plain text."""
    msg, body_hash = await read_model(request, Message)
    if msg.channel != "sms":
        raise ApiError(
            422, "channel_unavailable", f"channel {msg.channel} is not enabled on this gateway yet"
        )
    to = _phone(msg.to, "to")
    callback = _callback(msg.callback_url, request[CALLER])
    meta: dict[str, Any] = {}
    if msg.template is not None:
        try:
            template = request.app[CATALOGUE].get(msg.template)
            if msg.channel not in template.channels:
                raise ApiError(
                    422,
                    "channel_not_supported",
                    f"template {template.name} is not for {msg.channel}",
                )
            text = template.render(msg.params or {})
        except TemplateError as exc:
            raise ApiError(422, exc.code, str(exc)) from None
        meta = {"template": template.name, "template_version": str(template.version)}
    else:
        assert msg.text is not None
        text = msg.text
    return await _create_sms(
        request,
        kind="message",
        to=to,
        text=text,
        callback_url=callback,
        body_hash=body_hash,
        meta=meta,
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
            "history": notice.history,
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
            body[extra] = value
    if notice.follow_up == "still_parked":
        body["warning_number"] = notice.warning_number
        body["penalty_due"] = notice.penalty_due
    return web.json_response(body)
