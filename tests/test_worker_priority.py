"""A bulk worker lowers its own CPU priority at start (checked in a child process, so the
test runner keeps its own)."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
import os, threading
from gateway.runner import lower_cpu_priority
from gateway.settings import WorkerSettings
started = threading.Event()
t = threading.Thread(target=lambda: started.wait(5), daemon=True)
t.start()  # a thread that exists already is lowered too
lower_cpu_priority(WorkerSettings(worker_nice={nice}, worker_sched_idle={idle}))
print(os.sched_getscheduler(0), os.sched_getscheduler(t.native_id))
print(os.getpriority(os.PRIO_PROCESS, 0))
started.set()
"""


def probe(nice: int, idle: bool) -> list[int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(nice=nice, idle=idle)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return [int(x) for x in out.stdout.split()]


def test_sched_idle_applies_to_every_thread_and_nice_is_added() -> None:
    base = os.getpriority(os.PRIO_PROCESS, 0)
    assert probe(5, True) == [os.SCHED_IDLE, os.SCHED_IDLE, min(base + 5, 19)]


def test_a_worker_left_at_its_defaults_keeps_the_normal_policy() -> None:
    base = os.getpriority(os.PRIO_PROCESS, 0)
    assert probe(0, False) == [os.SCHED_OTHER, os.SCHED_OTHER, base]
