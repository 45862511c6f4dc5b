"""Call progress in the terminal: one INFO line per step of a voice notice, numbers masked.

The local stack's simulator prints each SMS it gets; this does the same for calls (dialing,
answered, the digit pressed, the outcome), fed by the voice notices' status changes: the voice
worker writes them through ``CallProgressStore``, so no step of a call is missed or invented.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from gateway.core.phones import mask
from gateway.core.statuses import NoticeStatus
from gateway.store.notice_scripts import Fallback, OutcomeResult
from gateway.store.notices import NoticeStore

log = logging.getLogger(__name__)


def progress_line(to: str, notice_id: str, status: str, detail: dict[str, Any]) -> str:
    """``CALL -> 138****8000 ntc_…: acknowledged (digit 1)`` (pure)."""
    notes = []
    if "attempt" in detail:
        notes.append(f"attempt {detail['attempt']}")
    if detail.get("digit"):
        notes.append(f"digit {detail['digit']}")
    if "plays" in detail:
        notes.append(f"heard {detail['plays']} time(s)")
    if detail.get("dial_status"):
        notes.append(str(detail["dial_status"]))
    if "retry_in_seconds" in detail:
        notes.append(f"retry in {detail['retry_in_seconds']:g} s")
    if detail.get("reason") and status not in ("busy", "no_answer"):
        notes.append(f"reason {detail['reason']}")
    tail = f" ({', '.join(notes)})" if notes else ""
    return f"CALL -> {mask(to)} {notice_id}: {status}{tail}"


class CallProgressStore(NoticeStore):
    """The voice worker's notice store: each status change of a call is also logged."""

    async def transition(
        self, notice_id: str, status: NoticeStatus, detail: Mapping[str, Any] | None = None
    ) -> bool:
        moved = await super().transition(notice_id, status, detail)
        if moved:
            await self._print(notice_id, status, detail)
        return moved

    async def outcome(
        self,
        notice_id: str,
        status: NoticeStatus,
        detail: Mapping[str, Any],
        *,
        retry_at_ms: int | None = None,
        fallback: Fallback | None = None,
    ) -> OutcomeResult:
        res = await super().outcome(
            notice_id, status, detail, retry_at_ms=retry_at_ms, fallback=fallback
        )
        if res.changed:
            await self._print(notice_id, status, detail)
        return res

    async def _print(
        self, notice_id: str, status: NoticeStatus, detail: Mapping[str, Any] | None
    ) -> None:
        if log.isEnabledFor(logging.INFO):
            to, channel = await self.redis.hmget(self.keys.notice(notice_id), "to", "channel")
            if channel == "voice":
                print_progress(str(to), notice_id, status, detail)


def print_progress(
    to: str, notice_id: str, status: NoticeStatus, detail: Mapping[str, Any] | None
) -> None:
    """The progress line of a call's status change whose recipient the caller has."""
    if log.isEnabledFor(logging.INFO):
        log.info("%s", progress_line(to, notice_id, status, dict(detail or {})))
