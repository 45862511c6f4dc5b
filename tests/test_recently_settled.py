"""The worker's memory of entries it settled lately: the last ``most``, however old."""

from __future__ import annotations

from gateway.channels.settled import RecentlySettled


def test_the_last_settles_are_kept_and_older_ones_forgotten() -> None:
    seen = RecentlySettled(most=3)
    for eid in ("1-0", "2-0", "3-0"):
        seen.add(eid)
    assert "1-0" in seen
    assert "4-0" not in seen
    seen.add("4-0")
    assert "1-0" not in seen
    assert "4-0" in seen
    assert len(seen) == 3
