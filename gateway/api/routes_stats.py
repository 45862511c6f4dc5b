"""The seed's measures for a period, by local day or week: GET /v1/stats."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from aiohttp import web

from gateway.api.context import FIGURES, SETTINGS
from gateway.api.errors import ApiError
from gateway.core.figures import MAX_DAYS, periods, report, sum_hours

DEFAULT_DAYS = 7


def _date(text: str | None, name: str, default: date) -> date:
    if text is None:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ApiError(422, "invalid_query", f"{name}: a date, YYYY-MM-DD") from None


async def get_stats(request: web.Request) -> web.Response:
    """Counters per period from ``from`` to ``to`` (local dates, inclusive; the last seven
    days by default), and their sum."""
    tz = ZoneInfo(request.app[SETTINGS].general.timezone)
    q = request.query
    last = _date(q.get("to"), "to", datetime.now(tz).date())
    first = _date(q.get("from"), "from", last - timedelta(days=DEFAULT_DAYS - 1))
    by = q.get("by", "day")
    if by not in ("day", "week"):
        raise ApiError(422, "invalid_query", "by: day or week")
    if first > last:
        raise ApiError(422, "invalid_query", "from is after to")
    if (last - first).days >= MAX_DAYS:
        raise ApiError(422, "range_too_long", f"at most {MAX_DAYS} days at once")
    spans = periods(first, last, by, tz)
    counts = await request.app[FIGURES].periods(spans)
    return web.json_response(
        {
            "from": first.isoformat(),
            "to": last.isoformat(),
            "by": by,
            "timezone": str(tz),
            "periods": [
                {"start": p.start.isoformat(), **report(c)}
                for p, c in zip(spans, counts, strict=True)
            ],
            "total": report(sum_hours({k: str(v) for k, v in c.items()} for c in counts)),
        }
    )
