"""``GET /v1/templates``: the catalogue as callers need it, so no one reads the TOML file."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.api.context import CATALOGUE
from gateway.api.errors import ApiError
from gateway.api.responses import json_response
from gateway.api.routes_messages import CHANNELS
from gateway.core.templates import Template, TemplateError
from gateway.sms.encoding import count_parts


def template_view(t: Template) -> dict[str, Any]:
    """Name, version, channels, parameters, the text; with sample values, the rendered text
    and how many SMS parts it takes."""
    sample_text = t.render(t.sample)
    view: dict[str, Any] = {
        "name": t.name,
        "version": t.version,
        "channels": list(t.channels),
        "params": list(t.params),
        "text": t.text,
        "sample": {"params": t.sample, "text": sample_text, "sms_parts": count_parts(sample_text)},
    }
    if t.subject:
        view["subject"] = t.subject
    return view


async def list_templates(request: web.Request) -> web.Response:
    """Every template, by name; ``?channel=`` for one channel's."""
    channel = request.query.get("channel")
    if channel not in (None, *CHANNELS):
        raise ApiError(
            422,
            "invalid_channel",
            "channel must be sms, email or voice",
            details={"allowed": CHANNELS},
        )
    templates = request.app[CATALOGUE].templates.values()
    items = [template_view(t) for t in templates if channel is None or channel in t.channels]
    return json_response({"templates": items, "count": len(items)})


async def get_template(request: web.Request) -> web.Response:
    try:
        template = request.app[CATALOGUE].get(request.match_info["name"])
    except TemplateError as exc:
        raise ApiError(404, exc.code, str(exc), details=exc.details) from None
    return json_response(template_view(template))
