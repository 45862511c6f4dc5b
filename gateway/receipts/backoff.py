"""Retry schedule (pure): exponential back-off with full jitter, capped."""

from __future__ import annotations

import random


def next_delay(attempt: int, first: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based).

    The upper bound doubles per attempt up to ``cap``; the delay is drawn from its upper half,
    so receivers that failed together do not all come back at once.
    """
    upper = min(cap, first * (2 ** max(0, attempt - 1)))
    draw = (rng or random).random()
    return float(upper / 2 + draw * upper / 2)
