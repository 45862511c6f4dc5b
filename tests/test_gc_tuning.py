"""The service processes' collector settings (checked in a child process, so that this test
process keeps its own)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import gc, sys
from gateway.gc_tuning import YOUNG_THRESHOLD, tune_for_service
throughput = sys.argv[1] == "throughput"
before = gc.get_threshold()
tune_for_service(throughput=throughput)
after = gc.get_threshold()
want = (YOUNG_THRESHOLD, *before[1:]) if throughput else before
assert after == want, (before, after)
assert gc.get_freeze_count() > 1000, gc.get_freeze_count()
assert gc.isenabled()
print("ok")
"""


@pytest.mark.parametrize("kind", ["throughput", "latency"])
def test_start_up_objects_are_frozen_and_only_throughput_processes_collect_less_often(
    kind: str,
) -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, kind],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
