"""Per-host limits for webhook delivery (pure): slots, and a circuit breaker.

One caller's dead or slow callback host must not hold the dispatcher's shared slots: each
host (``host:port`` of the callback URL) gets at most ``per_host`` deliveries at once; one
more is put back for a moment, not waited for. A host whose deliveries keep timing out (or
cannot be connected to) ``failures`` times in a row is parked: its webhooks are not tried
(which is not an attempt of theirs) and wait for the pause to end. After the pause one
delivery probes it; success closes the breaker, another failure parks it again for twice as
long, from ``first_park`` up to ``park_seconds``: a host back after a short outage is found
soon, one down for long is not knocked on more than once a ``park_seconds``.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit


class Admit(enum.Enum):
    GO = "go"
    BUSY = "busy"  # the host's slots are taken: try again in a moment, not an attempt
    PARKED = "parked"  # the breaker is open: an attempt that failed, on its schedule


class Result(enum.Enum):
    OK = "ok"  # the host answered (any HTTP status)
    STALLED = "stalled"  # timed out or could not connect
    OTHER = "other"  # refused before connecting: says nothing about the host


@dataclass(slots=True)
class _Host:
    busy: int = 0
    failures: int = 0
    parked_until: float = 0.0
    probing: bool = False
    parks: int = 0  # times parked in a row


def host_of(url: str) -> str:
    """``host:port`` of a callback URL (the name, as the caller wrote it)."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return url
    return f"{(parts.hostname or '').lower()}:{port}"


class HostGate:
    def __init__(
        self,
        per_host: int,
        failures: int,
        park_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        first_park: float | None = None,
    ) -> None:
        self.per_host = per_host
        self.failures = failures
        self.park_seconds = park_seconds
        self.first_park = min(park_seconds, first_park or park_seconds)
        self.clock = clock
        self._hosts: dict[str, _Host] = {}

    def admit(self, host: str) -> Admit:
        h = self._hosts.setdefault(host, _Host())
        if h.parked_until:
            if self.clock() < h.parked_until or h.probing:
                return Admit.PARKED
            h.probing = True  # the pause is over: one delivery finds out
        elif h.busy >= self.per_host:
            return Admit.BUSY
        h.busy += 1
        return Admit.GO

    def release(self, host: str, result: Result) -> None:
        h = self._hosts.setdefault(host, _Host())
        h.busy = max(0, h.busy - 1)
        if result is Result.OK:
            h.failures, h.parked_until, h.probing, h.parks = 0, 0.0, False, 0
        elif result is Result.STALLED:
            h.failures += 1
            if h.probing or h.failures >= self.failures:
                pause = min(self.park_seconds, self.first_park * 2**h.parks)
                h.parked_until, h.probing = self.clock() + pause, False
                h.parks += 1
        elif h.probing:
            h.probing = False
        if not h.busy and not h.failures and not h.parked_until:
            del self._hosts[host]  # only hosts with something to remember stay

    def wait_of(self, host: str) -> float:
        """Seconds until a parked host's probe may go (0 when it may go now or is not
        parked; a probe in flight counts as 0 too: the caller waits its own short while)."""
        h = self._hosts.get(host)
        return max(0.0, h.parked_until - self.clock()) if h and h.parked_until else 0.0

    def parked(self) -> list[str]:
        now = self.clock()
        return sorted(k for k, h in self._hosts.items() if h.parked_until > now)
