"""This machine's speed right now, printed before and after a benchmark: the host's speed
drifts on a shared machine, and runs are compared only with this beside them."""

from __future__ import annotations

import os
import time


def reference_loop_ms() -> float:
    """This machine's speed right now for one process, to compare runs (the best of three)."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        sum(range(10**7))
        best = min(best, time.perf_counter() - t0)
    return best * 1000


def pipe_round_trip_us(trips: int = 20_000) -> float:
    """Microseconds for one byte to go to another process and back (the median of three
    runs). The sum loop above misses what slows this machine down at times: every process
    of the run pays more for each wake-up, which this shows."""
    results = []
    for _ in range(3):
        to_child, from_parent = os.pipe()
        to_parent, from_child = os.pipe()
        pid = os.fork()
        if pid == 0:  # the echo
            for _ in range(trips):
                os.read(to_child, 1)
                os.write(from_child, b"x")
            os._exit(0)
        t0 = time.perf_counter()
        for _ in range(trips):
            os.write(from_parent, b"x")
            os.read(to_parent, 1)
        results.append((time.perf_counter() - t0) / trips * 1e6)
        os.waitpid(pid, 0)
        for fd in (to_child, from_parent, to_parent, from_child):
            os.close(fd)
    return sorted(results)[1]


def host_line(when: str) -> str:
    return (
        f"host {when}: sum loop {reference_loop_ms():.0f} ms, pipe round trip between two "
        f"processes {pipe_round_trip_us():.1f} us (smaller is faster)"
    )
