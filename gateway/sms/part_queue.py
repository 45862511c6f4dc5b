"""The parts of one link waiting for the SMPP window: priority parts first, bulk parts only
while bulk's share of the window has room, and parts waiting out a back-off (throttling)
re-queued when it ends, without holding anything else back."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable

from gateway.sms.in_flight import InFlight, Part


class PartQueue:
    def __init__(self) -> None:
        self._high: collections.deque[Part] = collections.deque()
        self._low: collections.deque[Part] = collections.deque()
        self._wake = asyncio.Event()  # a part is ready or the window may have room
        self._timers: set[asyncio.TimerHandle] = set()

    def put(self, part: Part) -> None:
        (self._low if part.bulk else self._high).append(part)
        self._wake.set()

    def later(self, part: Part, delay: float) -> None:
        """``put`` after ``delay`` seconds (at once if none)."""
        if delay <= 0:
            self.put(part)
            return

        def fire() -> None:
            self._timers.discard(handle)
            self.put(part)

        handle = asyncio.get_running_loop().call_later(delay, fire)
        self._timers.add(handle)

    def poke(self) -> None:
        """The window may have room (or the sender is closing): look again."""
        self._wake.set()

    async def next(
        self, flight: InFlight, window: int, bulk_cap: int, closing: Callable[[], bool]
    ) -> Part:
        """The next part once the window has room for it."""
        while True:
            if not closing() and len(flight) < window:
                if self._high:
                    return self._high.popleft()
                # Bulk parts use only part of the window: what the SMSC has in hand is what a
                # priority part waits behind.
                if self._low and flight.bulk < bulk_cap:
                    return self._low.popleft()
            self._wake.clear()
            await self._wake.wait()

    def close(self) -> None:
        """Drop the back-off timers (their parts stay pending in Redis)."""
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
