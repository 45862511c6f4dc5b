"""Who notified whom: the audit trail, for admins. A search by a person's full number or a
plate is itself written to the trail."""

from __future__ import annotations

import re
from datetime import datetime, time
from zoneinfo import ZoneInfo

from aiohttp import web

from gateway.api.auth import CALLER
from gateway.api.context import AUDIT, SETTINGS
from gateway.api.errors import ApiError
from gateway.api.routes_binding import plate_or_422
from gateway.core.audit import audit_entry, recipient_digest
from gateway.core.phones import InvalidPhone, mask, parse_cn_mobile
from gateway.store.notices import now_iso

_CURSOR = re.compile(r"^\d{1,20}-\d{1,20}(@\d{1,2})?(/\d{1,6})?$")
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _moment_ms(text: str | None, name: str, tz: ZoneInfo, end: bool) -> int | None:
    """An ISO date (its whole local day) or date-time; local time when it names no zone."""
    if text is None:
        return None
    try:
        if len(text) == 10:
            day = datetime.fromisoformat(text).date()
            moment = datetime.combine(day, time.max if end else time.min, tz)
        else:
            moment = datetime.fromisoformat(text)
            moment = moment if moment.tzinfo else moment.replace(tzinfo=tz)
    except ValueError:
        raise ApiError(422, "invalid_query", f"{name}: an ISO 8601 date or date-time") from None
    return int(moment.timestamp() * 1000)


def _limit(text: str | None) -> int:
    if text is None:
        return 100
    if not text.isdigit() or not 1 <= int(text) <= 500:
        raise ApiError(422, "invalid_query", "limit: 1 to 500")
    return int(text)


async def get_audit(request: web.Request) -> web.Response:
    """Entries newest first, filtered by key id, officer id, full phone number or plate."""
    q = request.query
    tz = ZoneInfo(request.app[SETTINGS].general.timezone)
    filters: dict[str, str] = {}
    for param, field in (("key", "key_id"), ("officer", "officer_id")):
        if (value := q.get(param)) is not None:
            if not _ID.match(value):
                raise ApiError(422, "invalid_query", f"{param}: letters, digits, _ and -")
            filters[field] = value
    searched: dict[str, str] = {}
    if (phone := q.get("phone")) is not None:
        try:
            national = parse_cn_mobile(phone).national
        except InvalidPhone as exc:
            raise ApiError(422, exc.code, f"phone: {exc}") from None
        filters["to_digest"] = recipient_digest(national)
        searched["to"] = national
    if (plate := q.get("plate")) is not None:
        filters["plate"] = searched["plate"] = plate_or_422(plate)
    cursor = q.get("cursor", "")
    if cursor and not _CURSOR.match(cursor):
        raise ApiError(422, "invalid_query", "cursor: the next_cursor of a page")
    from_ms = _moment_ms(q.get("from"), "from", tz, end=False) or 0
    to_ms = _moment_ms(q.get("to"), "to", tz, end=True) or 2**63 - 1
    log = request.app[AUDIT]
    if searched:
        caller = request[CALLER]
        await log.append(
            audit_entry(
                "audit_search",
                at=now_iso(),
                key_id=caller.id,
                key_name=caller.name,
                # Not the filtered fields' names: the search does not find itself.
                searched_to=mask(searched["to"]) if "to" in searched else "",
                searched_plate=searched.get("plate", ""),
            )
        )
    page = await log.page(
        filters=filters, from_ms=from_ms, to_ms=to_ms, cursor=cursor, limit=_limit(q.get("limit"))
    )
    return web.json_response(
        {"items": page.items, "count": len(page.items), "next_cursor": page.next_cursor or None}
    )
