"""Which status changes of a notice its caller is told about by webhook (pure).

A request's ``status_events`` (or, without one, its API key's default) selects among the
statuses a notice's webhooks carry; none given means every one, as before. The selection is
stored on the notice as a comma-separated list in status order (``Notice.status_events``; empty
for all) and applied where webhooks are queued (``gateway/store/lua/transition.lua``): an
unselected status is written to the history and the events stream, but no webhook is queued.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from gateway.core.statuses import NoticeStatus

# Every status a notice's webhook may carry: not ``queued`` (a new notice has no webhook) nor
# ``moved`` (the officer's follow-up has its own webhook kind, parking_follow_up).
SELECTABLE: Final = tuple(
    s.value for s in NoticeStatus if s not in (NoticeStatus.QUEUED, NoticeStatus.MOVED)
)


class StatusEventsError(ValueError):
    """A selection that names no status, or one a webhook never carries."""

    def __init__(self, message: str, unknown: list[str] | None = None) -> None:
        super().__init__(message)
        self.unknown = unknown or []


def selection(values: Iterable[object]) -> str:
    """``["delivered", "submitted"]`` -> ``"submitted,delivered"`` (status order, no repeats);
    raises ``StatusEventsError`` for an empty list or a value outside ``SELECTABLE``."""
    given = list(values)
    unknown = [str(v) for v in given if not isinstance(v, str) or v not in SELECTABLE]
    if unknown:
        raise StatusEventsError(
            f"unknown status {', '.join(repr(u) for u in unknown)}; "
            f"choose from {', '.join(SELECTABLE)}",
            unknown,
        )
    if not given:
        raise StatusEventsError(
            "give at least one status, or leave status_events out for every one"
        )
    return ",".join(s for s in SELECTABLE if s in given)


def parse_option(text: str) -> str:
    """A command line's ``submitted,delivered`` (``all`` or empty: every status)."""
    if text.strip() in ("", "all"):
        return ""
    return selection(v.strip() for v in text.split(",") if v.strip())


def selected(stored: str, status: str) -> bool:
    """Whether a notice with the stored selection posts a webhook for ``status`` (the same
    test as the Lua scripts')."""
    return not stored or status in stored.split(",")
