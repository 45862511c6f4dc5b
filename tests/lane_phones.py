"""Recipients in a chosen lane: a one-off message or an alert is kept in its recipient's lane
(``Keys.recipient_lane``), so a test that means a lane picks a number in it."""

from __future__ import annotations

from gateway.store.keys import Keys


def phones_in_lane(keys: Keys, lane: int, n: int = 1, start: int = 0) -> list[str]:
    """``n`` mobile numbers (national form) whose notices are kept in ``lane``."""
    out = []
    i = start
    while len(out) < n:
        phone = f"1380013{i:04d}"
        if keys.recipient_lane(phone) == lane:
            out.append(phone)
        i += 1
    return out
