"""The records the gateway stores and queues: a notice and its queue entry.

``Notice`` is a notice's Redis hash, read and written only through ``from_hash``/``to_hash``;
``QueueEntry`` is what a channel's queue stream holds for it. (The job admission script writes
both for reminder rows inside Redis, with the same fields.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from gateway.core.phones import Msisdn
from gateway.core.statuses import NoticeStatus

# Written even when empty: the scripts and the API read them from every notice.
_ALWAYS = frozenset({"id", "kind", "channel", "status", "to", "created_at", "key_id", "parts"})
_INTS = frozenset({"parts", "attempt", "deadline_ms", "warnings_so_far", "warning_number"})


@dataclass(slots=True)
class Notice:
    """A notice as stored. ``history`` is its status history (a list beside the hash)."""

    id: str
    kind: str
    channel: str
    to: str
    created_at: str
    status: NoticeStatus = NoticeStatus.QUEUED
    key_id: str = ""
    callback_url: str = ""
    status_events: str = ""  # the statuses whose webhooks go out (core.status_events)
    text: str = ""
    parts: int = 1
    encoding: str = ""
    attempt: int = 0
    updated_at: str = ""
    job: str = ""
    template: str = ""
    template_version: str = ""
    plate: str = ""
    location: str = ""
    officer_id: str = ""
    accident_type: str = ""
    case_id: str = ""
    binding_ref: str = ""
    detail_reason: str = ""
    fallback_of: str = ""
    fallback_id: str = ""
    deadline_ms: int = 0  # a parking notice: when the time to move the car is up (epoch ms)
    warnings_so_far: int = 0  # the plate's warning slips in the window when it was made
    follow_up: str = ""  # what the officer found: moved | still_parked
    warning_number: int = 0  # with still_parked: this slip's number in the window
    penalty_due: bool = False
    reply: str = ""  # an accident alert: the reporter's answer (gateway.core.replies)
    reply_text: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_hash(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for f in fields(self):
            if f.name == "history":
                continue
            value = getattr(self, f.name)
            if f.name not in _ALWAYS and value in ("", 0, False):
                continue
            out[f.name] = ("1" if value else "0") if isinstance(value, bool) else str(value)
        return out

    @classmethod
    def from_hash(cls, h: Mapping[str, str], history: list[dict[str, Any]] | None = None) -> Notice:
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in h:
                continue
            raw = h[f.name]
            if f.name in _INTS:
                values[f.name] = int(raw or 0)
            elif f.name == "penalty_due":
                values[f.name] = raw == "1"
            elif f.name == "status":
                values[f.name] = NoticeStatus(raw)
            else:
                values[f.name] = raw
        return cls(**values, history=list(history or []))

    def fallback_to(self, channel: str, *, id: str, at: str) -> Notice:
        """The same notice to the same person on another channel, linked back to this one."""
        return replace(
            self,
            id=id,
            channel=channel,
            status=NoticeStatus.QUEUED,
            created_at=at,
            updated_at="",
            attempt=0,
            fallback_of=self.id,
            fallback_id="",
            officer_id="",
            location="",
            deadline_ms=0,
            warnings_so_far=0,
            history=[],
        )

    def history_entry(self, detail: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The first entry of a new notice's history."""
        return {"status": self.status.value, "at": self.created_at, "detail": dict(detail or {})}


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One entry of a channel's queue stream. A voice entry carries only the id (the worker
    reads the notice); the others carry what the channel sends."""

    id: str
    to: str = ""
    text: str = ""
    job: str = ""
    subject: str = ""

    @staticmethod
    def address(channel: str, to: str) -> str:
        """What a channel sends to: SMS takes the international number (86 + national)."""
        return Msisdn(to).international if channel == "sms" else to

    @classmethod
    def for_notice(cls, notice: Notice, *, text: str | None = None) -> QueueEntry:
        """``text`` when what is sent differs from what is stored (a blanked-out code)."""
        if notice.channel == "voice":
            return cls(notice.id)
        return cls(
            notice.id,
            cls.address(notice.channel, notice.to),
            notice.text if text is None else text,
            notice.job,
        )

    def fields(self) -> dict[str, str]:
        out = {"id": self.id}
        for name in ("to", "text", "job", "subject"):
            if value := getattr(self, name):
                out[name] = value
        return out

    @classmethod
    def from_fields(cls, f: Mapping[str, str]) -> QueueEntry:
        return cls(
            f.get("id", ""), f.get("to", ""), f.get("text", ""), f.get("job", ""),
            f.get("subject", ""),
        )  # fmt: skip
