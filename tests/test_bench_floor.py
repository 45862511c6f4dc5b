"""bench.floor runs end to end (a few operations, no figure asserted: figures are the
benchmark's, docs/performance.md), so the floor it reports stays measurable."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_floor_benchmark_measures_every_operation() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.floor", "--ops", "2000", "--concurrency", "8"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
        check=True,
    ).stdout
    rows = dict(re.findall(r"^  (\S+) .*?  ([\d./ ]+)$", out, re.M))
    assert set(rows) == {
        "http-server",
        "http-client",
        "lean-client",
        "redis-script",
        "redis-pipelined",
        "redis-get",
        "socket-frame",
    }
    # CPU times tick in 10 ms: a few thousand operations show each client's cost; Redis's
    # share of a GET may still round to 0.
    for value in rows.values():
        own, *server = (float(v) for v in value.split(" / "))
        assert own > 0, out
        assert all(v >= 0 for v in server), out
