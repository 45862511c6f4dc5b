"""The parts handed to the SMPP session and not yet answered: the window's accounting.

A part is *handed* when the session takes it (it counts against the window from then on),
*written* once it has a sequence number on the wire. A written part whose submit_sm_resp
does not come within the response timeout leaves the window (``expire``) but is not sent
again on the same session: its answer may still come, and a second submit would be a second
message to the citizen. It stays *late* until that answer comes (then it is settled like any
other) or the session ends (``lost``: it is sent again after the next bind, as every part in
flight is).

An accepted part keeps its place in the window until its carrier id is stored
(``storing`` .. ``stored``): what a crash can make the gateway send twice, the parts the SMSC
took whose ids were not yet in Redis, is then never more than the window.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.channels.worker import Delivery
from gateway.sms.encoding import EncodedSms


@dataclass(slots=True)
class Part:
    delivery: Delivery
    to: str  # international digits
    sms: EncodedSms
    index: int
    attempt: int = 0
    token: str = ""
    written_at: float = 0.0  # monotonic; 0 while not on the wire
    rewrites: int = 0  # sent again because its carrier id could not be stored

    @property
    def notice_id(self) -> str:
        return self.delivery.notice_id

    @property
    def bulk(self) -> bool:
        return self.delivery.bulk

    @property
    def label(self) -> str:
        """``ntc_x part 2/3`` (parts counted from 1), for logs."""
        return f"{self.notice_id} part {self.index + 1}/{len(self.sms.parts)}"


class InFlight:
    def __init__(self) -> None:
        self._handed: dict[str, Part] = {}  # token -> part, in the window
        self._late: dict[str, Part] = {}  # token -> part, out of the window, answer awaited
        self._by_seq: dict[int, str] = {}
        self._storing = 0  # accepted parts whose carrier id is being stored
        self._storing_bulk = 0
        self.lost_written = 0  # of the parts the last ended session held
        self.bulk = 0  # bulk parts in the window

    def __len__(self) -> int:
        """Parts in the window: handed and unanswered, or accepted and not yet stored."""
        return len(self._handed) + self._storing

    def storing(self, part: Part) -> None:
        """An accepted part's carrier id is on its way to Redis: it holds its window place."""
        self._storing += 1
        self._storing_bulk += part.bulk
        self.bulk += part.bulk

    def stored(self, part: Part) -> None:
        """The write ended (landed or failed): the place is free."""
        self._storing -= 1
        self._storing_bulk -= part.bulk
        self.bulk -= part.bulk

    @property
    def late(self) -> int:
        return len(self._late)

    def hand(self, part: Part) -> None:
        # Not on the wire in this attempt yet: a throttled part comes back with the time its
        # previous attempt was written, and must not time out before it is written again.
        part.written_at = 0.0
        self._handed[part.token] = part
        self.bulk += part.bulk

    def written(self, sequence: int, token: str, now: float) -> None:
        part = self._handed.get(token)
        if part is not None:
            part.written_at = now
            self._by_seq[sequence] = token

    def answered(self, sequence: int) -> tuple[Part, bool] | None:
        """The part a submit_sm_resp (or generic_nack) of this session answers, and whether
        it came late; None for a sequence that is not an unanswered submit of ours."""
        token = self._by_seq.pop(sequence, None)
        if token is None:
            return None
        part = self._handed.pop(token, None)
        if part is not None:
            self.bulk -= part.bulk
            return part, False
        late = self._late.pop(token, None)
        return None if late is None else (late, True)

    def expire(self, written_before: float) -> list[Part]:
        """Written parts unanswered since before ``written_before`` leave the window."""
        gone = [p for p in self._handed.values() if 0 < p.written_at < written_before]
        for part in gone:
            del self._handed[part.token]
            self.bulk -= part.bulk
            self._late[part.token] = part
        return gone

    def oldest_late(self) -> float:
        """When the longest-waiting late part was written (inf when none is late)."""
        return min((p.written_at for p in self._late.values()), default=float("inf"))

    def lost(self) -> list[Part]:
        """The session ended: every part it held, written or not, late or not."""
        parts = [*self._handed.values(), *self._late.values()]
        # Written ones the SMSC may have taken: submitted again, they may be duplicates.
        self.lost_written = sum(1 for part in parts if part.written_at)
        for part in parts:
            part.written_at = 0.0
        self._handed.clear()
        self._late.clear()
        self._by_seq.clear()
        self.bulk = self._storing_bulk
        return parts
