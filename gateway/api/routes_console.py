"""Views the console's panels need besides the notice routes: an accident alert's preview as
the operator types, the replies to accident alerts, the recent reminder jobs."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.auth import CALLER
from gateway.api.body import read_model
from gateway.api.context import CATALOGUE, JOBS, KEYS, REDIS
from gateway.api.errors import ApiError
from gateway.api.responses import json_response
from gateway.api.routes_jobs import job_view
from gateway.core.phones import InvalidPhone, parse_cn_mobile
from gateway.core.templates import ACCIDENT_TYPES
from gateway.logs import mask_numbers
from gateway.sms.encoding import TextTooLong, encode_sms
from gateway.store.lane_merge import newest_of_lanes

LIST_LIMIT = 200


class AccidentPreviewIn(BaseModel):
    """What the operator has typed so far; every field may still be empty."""

    model_config = ConfigDict(extra="forbid", strict=True)
    accident_type: str = Field("", max_length=40, json_schema_extra={"enum": list(ACCIDENT_TYPES)})
    location: str = Field("", max_length=120)
    case_id: str = Field("", max_length=64)
    reporter_phone: str = Field("", max_length=32)


def _phone_check(text: str) -> dict[str, Any]:
    """The API's own verdict on a reporter phone (``parse_cn_mobile``), number masked."""
    if not text.strip():
        return {"valid": False, "code": "empty", "message": "phone number is empty"}
    try:
        number = parse_cn_mobile(text)
    except InvalidPhone as exc:
        return {"valid": False, "code": exc.code, "message": str(exc)}
    return {"valid": True, "masked": number.masked}


async def accident_preview(request: web.Request) -> web.Response:
    """The SMS an accident alert would send with these values (the same template and SMS
    encoder as ``POST /v1/accident-alerts``): text, parts, encoding; and whether the reporter
    phone is one the API accepts. Nothing is stored or sent."""
    body, _ = await read_model(request, AccidentPreviewIn)
    out: dict[str, Any] = {"phone": _phone_check(body.reporter_phone)}
    if body.accident_type:
        if body.accident_type not in ACCIDENT_TYPES:
            raise ApiError(
                422,
                "unknown_accident_type",
                f"accident_type must be one of {', '.join(ACCIDENT_TYPES)}",
                details={"allowed": list(ACCIDENT_TYPES)},
            )
        template = request.app[CATALOGUE].get(f"accident_{body.accident_type}")
        text = template.render({"location": body.location, "case_id": body.case_id})
        try:
            sms = encode_sms(text)
        except TextTooLong as exc:
            out.update({"text": text, "chars": len(text), "error": str(exc)})
        else:
            out.update(
                {
                    "template": template.name,
                    "text": text,
                    "chars": len(text),
                    "segments": sms.count,
                    "encoding": sms.encoding,
                }
            )
    return json_response(out)


def _limit(request: web.Request) -> int:
    try:
        limit = int(request.query.get("limit", "50"))
    except ValueError:
        raise ApiError(400, "invalid_query", "limit must be an integer") from None
    if not 1 <= limit <= LIST_LIMIT:
        raise ApiError(400, "invalid_query", f"limit must be between 1 and {LIST_LIMIT}")
    return limit


async def accident_replies(request: web.Request) -> web.Response:
    """The latest replies to accident alerts (1: settled themselves, 2: officer requested),
    newest first; a command-centre key sees the replies to its own alerts, admin all."""
    limit = _limit(request)
    caller = request[CALLER]
    keys, redis = request.app[KEYS], request.app[REDIS]

    async def replies(lane: int) -> list[dict[str, Any]]:
        return [json.loads(e) for e in await redis.lrange(keys.accident_replies(lane), 0, -1)]

    every = await newest_of_lanes(keys.each_lane(), replies, lambda i: str(i.get("at", "")))
    items = []
    for item in every:
        if caller.role == "admin" or item.pop("key", "") == caller.id:
            item.pop("key", None)
            if isinstance(item.get("text"), str):  # a number the citizen wrote, masked
                item["text"] = mask_numbers(item["text"])
            items.append(item)
            if len(items) >= limit:
                break
    return json_response({"items": items, "count": len(items)})


async def list_reminder_jobs(request: web.Request) -> web.Response:
    """The caller's newest reminder jobs (admin: everyone's) with their progress."""
    limit = _limit(request)
    caller = request[CALLER]
    jobs = await request.app[JOBS].recent(limit if caller.role == "admin" else LIST_LIMIT)
    items = [
        job_view({**j, "bad_rows_sample": []})
        for j in jobs
        if "template" in j and (caller.role == "admin" or j.get("key_id") == caller.id)
    ][:limit]
    return json_response({"items": items, "count": len(items)})
