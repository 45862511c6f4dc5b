"""Why an originated call was not answered.

An unanswered Originate reports only Reason 0 with PJSIP; why it failed comes from the dial:
DialBegin ties the outgoing channel to the dial string, DialEnd gives DIALSTATUS, and the
OriginateResponse names the dial string. DialEnd may trail the OriginateResponse a little.
"""

from __future__ import annotations

import asyncio

from gateway.core.statuses import DIAL_STATUS, NoticeStatus, originate_outcome


class DialTracker:
    def __init__(self) -> None:
        self._dialing: dict[str, str] = {}  # outgoing channel -> dial string
        self._dial_status: dict[str, str] = {}  # dial string -> DIALSTATUS

    def on_event(self, name: str, keys: dict[str, str]) -> bool:
        """Take DialBegin/DialEnd; False for any other event."""
        if name == "DialBegin":
            self._dialing[keys.get("DestChannel", "")] = keys.get("DialString", "")
            return True
        if name == "DialEnd":
            dial = self._dialing.pop(keys.get("DestChannel", ""), "")
            if dial:
                self._dial_status[dial] = keys.get("DialStatus", "")
            return True
        return False

    async def unanswered(self, reason: int, channel: str) -> tuple[NoticeStatus, str]:
        """The attempt's status and the DIALSTATUS behind it (waits up to 0.5 s for it)."""
        dial = channel.partition("/")[2]
        for _ in range(10):
            if dial in self._dial_status:
                break
            await asyncio.sleep(0.05)
        dial_status = self._dial_status.pop(dial, "")
        return DIAL_STATUS.get(dial_status) or originate_outcome(reason), dial_status
