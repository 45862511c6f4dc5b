"""The fault suite's counting: the SMSC's accept log and the receiver's file as they grow,
notice statuses from Redis, and the table."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.fault_stack import Stack
from gateway.store.keys import Keys

SMS_FINAL = frozenset({"delivered", "undeliverable", "expired", "rejected", "failed", "cancelled"})
VOICE_FINAL = frozenset({"acknowledged", "disputed", "no_input", "cancelled"})
VOICE_RETRIED = frozenset({"busy", "no_answer", "failed"})  # final once an SMS replaced it
KEYS = Keys()  # the stack runs on the default prefix


class Tail:
    """Complete lines another process appended to a file since the last read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.rest = b""

    def read(self) -> list[str]:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        *lines, self.rest = (self.rest + data).split(b"\n")
        return [line.decode(errors="replace") for line in lines]


@dataclass
class Ledger:
    """What the SMSC accepted and what the receiver got, as the two files say."""

    accepts: list[tuple[float, str, str]] = field(default_factory=list)  # time, number, part
    hooks: list[dict[str, object]] = field(default_factory=list)
    _smsc: Tail | None = None
    _hooks: Tail | None = None

    def update(self) -> None:
        assert self._smsc is not None
        assert self._hooks is not None
        for line in self._smsc.read():
            f = line.split("\t")
            if len(f) == 4:
                self.accepts.append((float(f[0]), f[2][-11:], f[3]))
        for line in self._hooks.read():
            with contextlib.suppress(ValueError):
                self.hooks.append(json.loads(line))

    def first_accept(self, after: float, numbers: Callable[[str], bool]) -> float | None:
        return next((t for t, n, _ in self.accepts if t >= after and numbers(n)), None)


@dataclass
class Row:
    fault: str
    accepted: int = 0
    delivered: int = 0
    duplicates: int = 0
    stuck: int = 0
    missing: int = 0
    job_end: bool = False
    recovery: float | None = None
    faults: int = 1  # fault events in the row (kills): duplicates are bounded per event
    error: str = ""  # the row could not run to its end
    notes: list[str] = field(default_factory=list)

    def ok(self, window: int) -> bool:
        return (
            not self.error
            and self.stuck == 0
            and self.missing == 0
            and self.duplicates <= window * self.faults
        )


async def statuses(stack: Stack, ids: list[str]) -> dict[str, tuple[str, bool]] | None:
    """Each notice's status in Redis, and whether an SMS replaced it; None if Redis is away."""
    redis = stack.redis()
    try:
        out: dict[str, tuple[str, bool]] = {}
        for at in range(0, len(ids), 2000):
            pipe = redis.pipeline(transaction=False)
            for nid in ids[at : at + 2000]:
                pipe.hmget(KEYS.notice(nid), "status", "fallback_id")
            for nid, (status, fallback) in zip(
                ids[at : at + 2000], await pipe.execute(), strict=True
            ):
                out[nid] = (status or "missing", bool(fallback))
        return out
    except OSError:
        return None
    except Exception as exc:  # redis-py's ConnectionError and BusyLoadingError among them
        if "redis" in type(exc).__module__:
            return None
        raise
    finally:
        await redis.aclose()


def is_final(kind: str, status: str, replaced: bool) -> bool:
    if kind == "voice":
        return status in VOICE_FINAL or (status in VOICE_RETRIED and replaced)
    return status in SMS_FINAL


@dataclass
class Tally:
    """One look at the row's notices: ``kinds`` is job (no callback of its own), sms, voice."""

    kinds: dict[str, str]
    state: dict[str, tuple[str, bool]]
    signed: set[tuple[str, str]]

    def final(self, nid: str) -> bool:
        kind = self.kinds[nid]
        return is_final("voice" if kind == "voice" else "sms", *self.state.get(nid, ("?", False)))

    def stuck(self) -> list[str]:
        return [nid for nid in self.kinds if not self.final(nid)]

    def missing(self) -> list[str]:
        """Final notices with a callback_url whose callback for that status never came."""
        return [
            nid
            for nid, kind in self.kinds.items()
            if kind != "job" and self.final(nid) and (nid, self.state[nid][0]) not in self.signed
        ]


def table(rows: list[Row], window: int) -> str:
    head = (
        "fault",
        "accepted",
        "delivered",
        "duplicates",
        "stuck",
        "webhooks missing",
        "job end webhook",
        "recovery s",
        "",
    )
    lines = [head]
    for r in rows:
        lines.append(
            (
                r.fault,
                str(r.accepted),
                str(r.delivered),
                str(r.duplicates) + (f" ({r.faults} faults)" if r.faults > 1 else ""),
                str(r.stuck),
                str(r.missing),
                "yes" if r.job_end else "no",
                f"{r.recovery:.1f}" if r.recovery is not None else "-",
                "ok" if r.ok(window) else "FAIL",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = [" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    out.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(out)
