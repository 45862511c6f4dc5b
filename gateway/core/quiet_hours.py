"""Quiet hours (pure): a local time range, possibly across midnight, when no calls are made."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo


def parse_range(text: str) -> tuple[time, time] | None:
    """``"22:00-07:00"`` -> (22:00, 07:00); empty -> None (no quiet hours)."""
    if not text:
        return None
    start, _, end = text.partition("-")
    return time.fromisoformat(start), time.fromisoformat(end)


def is_quiet(now: datetime, timezone: str, text: str) -> bool:
    """Whether ``now`` (aware) falls in the quiet range of local time in ``timezone``."""
    rng = parse_range(text)
    if rng is None:
        return False
    local = now.astimezone(ZoneInfo(timezone)).time()
    start, end = rng
    if start <= end:
        return start <= local < end
    return local >= start or local < end
