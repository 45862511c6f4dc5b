"""The service processes' collector settings (checked in a child process, so that this test
process keeps its own)."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import gc
from gateway.gc_tuning import YOUNG_THRESHOLD, tune_for_service
before = gc.get_threshold()
tune_for_service()
after = gc.get_threshold()
assert after == (YOUNG_THRESHOLD, *before[1:]), (before, after)
assert gc.get_freeze_count() > 1000, gc.get_freeze_count()
assert gc.isenabled()
print("ok")
"""


def test_tuning_keeps_the_collector_on_with_a_larger_young_generation() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
