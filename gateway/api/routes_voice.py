"""Bindings, parking notices (voice, SMS in quiet hours) and suspected cloned plates."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway.api.auth import CALLER
from gateway.api.body import read_model
from gateway.api.context import (
    BINDINGS,
    KEYS,
    METRICS,
    NOTICES,
    PLATE_CALLS,
    QUEUES,
    REDIS,
    SETTINGS,
)
from gateway.api.errors import ApiError
from gateway.api.models import ParkingNotice
from gateway.api.responses import json_response
from gateway.api.routes_binding import plate_or_422
from gateway.api.routes_notices import (
    _idempotency_key,
    callback_fields,
    idempotency_conflict,
)
from gateway.core.phones import mask
from gateway.core.plates import display
from gateway.core.quiet_hours import is_quiet
from gateway.core.records import Notice
from gateway.sms.encoding import encode_sms
from gateway.store.lane_merge import newest_of_lanes
from gateway.store.notice_scripts import CreateOutcome
from gateway.store.notices import IdempotencyConflict, new_notice_id, now_iso


def parking_text(plate: str, location: str, minutes: int) -> str:
    return (
        f"您好，这里是交警提示。您的车辆{display(plate)}违法停放在{location}，"
        f"请在{minutes}分钟内驶离。"
    )


def warnings_window_ms(request: web.Request) -> int:
    """The three-strike policy window, in ms."""
    return request.app[SETTINGS].voice.reminder_window_days * 86400 * 1000


async def post_parking_notice(request: web.Request) -> web.Response:
    """Call the plate's bound phone (SMS in quiet hours); say where the plate stands: its
    warning slips so far, and whether one more (the car still there) is due a penalty."""
    body, body_hash = await read_model(request, ParkingNotice)
    plate = plate_or_422(body.plate)
    key = request[CALLER]
    callback = callback_fields(body.callback_url, body.status_events, key)
    binding = await request.app[BINDINGS].get(plate)
    if binding is None:
        raise ApiError(404, "no_binding", f"plate {plate} has no bound phone")
    general = request.app[SETTINGS].general
    quiet = is_quiet(datetime.now(UTC), general.timezone, general.quiet_hours)
    channel = "sms" if quiet else "voice"
    text = parking_text(plate, body.location, body.move_within_minutes)
    notice_id = new_notice_id(request.app[KEYS], request.app[KEYS].plate_lane(plate))
    created_at = now_iso()
    deadline_ms = int(time.time() * 1000) + body.move_within_minutes * 60_000
    idem = _idempotency_key(request)
    await _count_against_plate(request, plate, notice_id, idem)
    notice = Notice(
        id=notice_id,
        kind="parking_notice",
        channel=channel,
        to=binding["phone"],
        text=text,
        plate=plate,
        location=body.location,
        officer_id=body.officer_id,
        key_id=key.id,
        **callback,
        created_at=created_at,
        deadline_ms=deadline_ms,
        parts=encode_sms(text, notice_id).count,
        detail_reason="quiet_hours" if quiet else "",
    )
    try:
        result = await request.app[NOTICES].create(
            notice,
            request.app[QUEUES].queue(channel, notice.id),
            idempotency_key=idem,
            body_hash=body_hash,
            key_name=key.name,
            warnings_window_ms=warnings_window_ms(request),
        )
    except IdempotencyConflict as exc:
        await request.app[PLATE_CALLS].uncount(plate=plate, notice_id=notice_id)
        raise idempotency_conflict(exc) from None
    created = result.outcome is CreateOutcome.CREATED
    if created:  # what was stored, and the plate's count the script made: no read back
        stored: Notice | None = replace(notice, warnings_so_far=result.warnings_so_far)
        request.app[METRICS].notices_created.labels("parking_notice", channel).inc()
    else:  # a replay of an earlier request: counted then, not again
        await request.app[PLATE_CALLS].uncount(plate=plate, notice_id=notice_id)
        stored = await request.app[NOTICES].get(result.notice_id)
    if stored is None:
        raise ApiError(409, "idempotency_conflict", "the earlier notice has expired")
    so_far = stored.warnings_so_far
    return json_response(
        {
            "id": stored.id,
            "kind": "parking_notice",
            "status": stored.status,
            "channel": stored.channel,
            "to": mask(stored.to),
            "plate": plate,
            "warnings_so_far": so_far,
            "penalty_if_not_moved": so_far + 1 >= 3,
            "deadline": deadline_iso(stored.deadline_ms),
        },
        status=202 if created else 200,
        headers={
            "Location": f"/v1/notices/{stored.id}",
            **({"Idempotent-Replayed": "true"} if not created else {}),
        },
    )


async def _count_against_plate(
    request: web.Request, plate: str, notice_id: str, idem: str | None
) -> None:
    """429 ``plate_rate_limited`` when the plate's owner was notified too often this hour
    (a retried request with its Idempotency-Key still gets its first answer)."""
    limit = request.app[SETTINGS].voice.plate_calls_per_hour
    if not limit:
        return
    wait = await request.app[PLATE_CALLS].count(plate=plate, notice_id=notice_id, max_calls=limit)
    if not wait:
        return
    if idem and await request.app[REDIS].exists(
        request.app[KEYS].idempotency(
            request[CALLER].id, idem, request.app[KEYS].notice_lane(notice_id)
        )
    ):
        return  # the store answers with the earlier notice
    raise ApiError(
        429,
        "plate_rate_limited",
        f"plate {display(plate)} has had {limit} parking notices in the last hour; "
        f"the next may go out in {int(wait) + 1} s",
        details={"limit_per_hour": limit, "retry_after_seconds": int(wait) + 1},
        headers={"Retry-After": str(int(wait) + 1)},
    )


def deadline_iso(ms: int) -> str:
    stamp = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")
    return stamp.replace("+00:00", "Z")


async def suspected_clones(request: web.Request) -> web.Response:
    """Plates whose owners said "not my vehicle" (2) to a parking call, most recent first."""
    keys, redis = request.app[KEYS], request.app[REDIS]

    async def plates(lane: int) -> list[dict[str, Any]]:
        return [json.loads(v) for v in (await redis.hgetall(keys.suspected_clones(lane))).values()]

    items = await newest_of_lanes(keys.each_lane(), plates, lambda i: str(i["last_at"]))
    return json_response({"items": items, "count": len(items)})
