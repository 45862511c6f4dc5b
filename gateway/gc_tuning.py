"""Garbage-collector settings for the long-running processes.

Every SMS makes hundreds of short-lived containers (PDU objects, Redis replies, task frames),
almost all freed by reference counting at once. CPython's default of a young collection every
700 net allocations then makes the collector scan the same live objects thousands of times a
second. A larger young generation, and moving the objects made at start-up (modules, settings,
the app) out of the collector's sight with ``gc.freeze()``, keep cycle collection but make it
rare and cheap.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000


def tune_for_service() -> None:
    """Call once, when start-up is done."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
