"""The worker's memory of entries it settled lately: bounded in time and in size."""

from __future__ import annotations

import pytest

from gateway.channels import settled
from gateway.channels.settled import RecentlySettled


def test_ids_are_forgotten_past_the_horizon_and_past_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(settled.time, "monotonic", lambda: now[0])
    seen = RecentlySettled(horizon_s=60, most=3)
    seen.add("1-0")
    now[0] += 30
    seen.add("2-0")
    assert "1-0" in seen
    assert "2-0" in seen
    assert "3-0" not in seen
    now[0] += 31  # 1-0 is 61 s old
    seen.add("3-0")
    assert "1-0" not in seen
    assert "2-0" in seen
    seen.add("4-0")
    seen.add("5-0")  # four would be kept: the oldest goes
    assert "2-0" not in seen
    assert len(seen) == 3
