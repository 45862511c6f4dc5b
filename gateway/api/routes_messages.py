"""``POST /v1/messages``: a one-off notice by SMS, email or voice call.

``to`` is a Chinese mobile for SMS and voice, an email address for email. The body is a
catalogue template with its params, or plain ``text`` (the ``plain_notice`` template). A voice
message is read out and offered once more (the reminder flow); in quiet hours it goes out as
an SMS instead, as parking notices do.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web

from gateway.api.auth import CALLER
from gateway.api.body import read_model
from gateway.api.context import CATALOGUE, KEYS, QUEUES, SETTINGS
from gateway.api.errors import ApiError
from gateway.api.models import Message
from gateway.api.routes_notices import (
    _phone,
    callback_fields,
    create_notice,
    create_sms,
    sms_notice,
)
from gateway.core.emails import is_email
from gateway.core.quiet_hours import is_quiet
from gateway.core.records import Notice, QueueEntry
from gateway.core.templates import Template, TemplateError
from gateway.store.notices import new_notice_id, now_iso

CHANNELS: Final = ("sms", "email", "voice")
PLAIN: Final = "plain_notice"
DEFAULT_SUBJECT: Final = "交警提示"


def _body(request: web.Request, msg: Message) -> tuple[Template, str, dict[str, Any]]:
    """The template (``plain_notice`` for text), the rendered text and what the notice records."""
    catalogue = request.app[CATALOGUE]
    try:
        template = catalogue.get(msg.template or PLAIN)
        params = (msg.params or {}) if msg.template else {"text": msg.text}
        if msg.channel not in template.channels:
            raise ApiError(
                422,
                "channel_not_supported",
                f"template {template.name} is not for {msg.channel}",
                details={"allowed": list(template.channels)},
            )
        text = template.render(params)
    except TemplateError as exc:
        raise ApiError(422, exc.code, str(exc), details=exc.details) from None
    meta = (
        {"template": template.name, "template_version": str(template.version)}
        if msg.template
        else {}
    )
    return template, text, meta


async def post_message(request: web.Request) -> web.Response:
    """A one-off notice from a template or plain text, on any channel the gateway has."""
    msg, body_hash = await read_model(request, Message)
    settings = request.app[SETTINGS]
    if msg.channel == "voice" and not settings.voice.voice_enabled:
        raise ApiError(
            422,
            "channel_unavailable",
            "voice is not enabled on this gateway (GATEWAY_VOICE_ENABLED)",
            details={"allowed": [c for c in CHANNELS if c != "voice"]},
        )
    if msg.channel == "email" and not is_email(msg.to):
        raise ApiError(422, "invalid_email", "to: an email channel message goes to an address")
    template, text, meta = _body(request, msg)
    callback = callback_fields(msg.callback_url, msg.status_events, request[CALLER])
    keys = request.app[KEYS]
    if msg.channel == "email":
        notice_id = new_notice_id(keys, keys.recipient_lane(msg.to))
        subject = template.subject or DEFAULT_SUBJECT
        notice = Notice(
            id=notice_id,
            kind="message",
            channel="email",
            to=msg.to,
            text=text,
            key_id=request[CALLER].id,
            **callback,
            created_at=now_iso(),
            **meta,
        )
        entry = QueueEntry(notice_id, msg.to, text, subject=subject)
        return await create_notice(
            request, notice, request.app[QUEUES].queue("email", notice.id), body_hash, entry
        )
    to = _phone(msg.to, "to")
    general = settings.general
    if msg.channel == "sms" or is_quiet(datetime.now(UTC), general.timezone, general.quiet_hours):
        if msg.channel == "voice":
            meta = {**meta, "detail_reason": "quiet_hours"}
        return await create_sms(
            request,
            kind="message",
            to=to,
            text=text,
            callback=callback,
            body_hash=body_hash,
            meta=meta,
        )
    # The SMS fields stay with a voice notice: they are its fallback when no one answers.
    notice_id = new_notice_id(keys, keys.recipient_lane(to.national))
    notice = sms_notice(
        request, notice_id, to, text, kind="message", channel="voice", **callback, **meta
    )
    queue = request.app[QUEUES].queue("voice", notice.id)
    return await create_notice(request, notice, queue, body_hash)
