"""Garbage-collector settings for the long-running processes.

Every process freezes what start-up made (modules, settings, the app): ``gc.freeze()`` moves
those objects out of the collector's sight, so full collections no longer rescan them.

Throughput processes (a bulk-only worker, the simulator) also get a larger young generation.
Each SMS makes hundreds of short-lived containers, almost all freed by reference counting at
once; with CPython's default of a young collection every 700 net allocations the collector
rescans live objects thousands of times a second. The price is a longer pause per
collection, which a process that answers accident alerts should not pay, so the API and
priority workers keep the default thresholds.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000


def tune_for_service(*, throughput: bool) -> None:
    """Call once, when start-up is done."""
    gc.collect()
    gc.freeze()
    if throughput:
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
