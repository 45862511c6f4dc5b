"""The seed's measures (GET /v1/stats): counter names and how hour buckets add up to periods.

The Lua scripts that change a status count into one hash per hour (hours since the epoch)
and into an all-time ``total`` hash, with fields named here: ``parking:moved``,
``accident:injury:self_settled``, ``reminder:licence_review_due:sms:sent``. A notice's own
figures go into the hour it was created in, so a period's shares (moved of followed up,
replies of alerts) are about that period's notices. Pure functions: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

PARKING: Final = (
    "notices",
    "calls_answered",
    "acknowledged",
    "disputed",
    "moved",
    "warnings",
    "penalties_due",
    "follow_ups_missing",
    "sms_fallbacks",
    "suspected_cloned_plates",
)
ACCIDENT: Final = ("alerts", "delivered", "self_settled", "officer_requested", "other_reply")
REMINDER: Final = ("sent", "delivered", "failed", "opted_out", "capped", "duplicate")
MAX_DAYS: Final = 366


def hour_of(epoch_ms: int) -> int:
    """The bucket of a moment: whole hours since the epoch (what the scripts compute)."""
    return epoch_ms // 3_600_000


@dataclass(frozen=True, slots=True)
class Period:
    start: date  # local date: the day, or the Monday of the week
    first_hour: int
    end_hour: int  # exclusive


def periods(first: date, last: date, by: str, tz: ZoneInfo) -> list[Period]:
    """Local days (or ISO weeks, Monday first) from ``first`` to ``last`` inclusive, each with
    its hour buckets. Days are cut at local midnight (whole-hour offsets, as China's)."""

    def hour(d: date) -> int:
        local = datetime.combine(d, time(0), tz)
        return int(local.astimezone(UTC).timestamp()) // 3600

    out: list[Period] = []
    step = timedelta(days=7 if by == "week" else 1)
    start = first - timedelta(days=first.weekday()) if by == "week" else first
    while start <= last:
        lo, hi = max(start, first), min(start + step, last + timedelta(days=1))
        out.append(Period(start, hour(lo), hour(hi)))
        start += step
    return out


def _add(into: dict[str, int], fields: Mapping[str, str]) -> None:
    for name, value in fields.items():
        into[name] = into.get(name, 0) + int(value)


def sum_hours(hours: Iterable[Mapping[str, str]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for h in hours:
        _add(total, h)
    return total


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def report(counts: Mapping[str, int]) -> dict[str, Any]:
    """The counters of one period in the API's shape."""
    parking: dict[str, Any] = {name: counts.get(f"parking:{name}", 0) for name in PARKING}
    followed = parking["moved"] + parking["warnings"]
    parking["followed_up"] = followed
    parking["moved_share"] = _share(parking["moved"], followed)
    accidents: dict[str, dict[str, Any]] = {}
    reminders: dict[str, dict[str, dict[str, int]]] = {}
    for name, value in counts.items():
        parts = name.split(":")
        if parts[0] == "accident" and len(parts) == 3 and parts[2] in ACCIDENT:
            row = accidents.setdefault(parts[1], dict.fromkeys(ACCIDENT, 0))
            row[parts[2]] = value
        elif parts[0] == "reminder" and len(parts) == 4 and parts[3] in REMINDER:
            per = reminders.setdefault(parts[1], {}).setdefault(
                parts[2], dict.fromkeys(REMINDER, 0)
            )
            per[parts[3]] = value
    for row in accidents.values():
        replied = row["self_settled"] + row["officer_requested"] + row["other_reply"]
        row["no_reply"] = max(row["alerts"] - replied, 0)
        # The seed's measure: alerts the parties settled without an officer being sent.
        row["self_settled_share"] = _share(row["self_settled"], row["alerts"])
    return {"parking": parking, "accidents": accidents, "reminders": reminders}


def labels_of(name: str) -> tuple[str, tuple[str, ...]] | None:
    """A counter's Prometheus family and label values: ``parking:moved`` ->
    (``parking``, (``moved``,)); None for a name this version does not know."""
    parts = tuple(name.split(":"))
    known = {"parking": (2, PARKING), "accident": (3, ACCIDENT), "reminder": (4, REMINDER)}
    width, measures = known.get(parts[0], (0, ()))
    if len(parts) != width or parts[-1] not in measures:
        return None
    return parts[0], parts[1:]
