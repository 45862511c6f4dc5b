"""The restart supervisor, with real child processes: restarts after the delay by policy, stops
on purpose without a restart, and leaves nothing running after SIGINT."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gateway.supervisor import Supervised, Supervisor

# Writes its pid to a file per start, then exits with the code given (or sleeps when "sleep").
CHILD = """
import os, sys, time
with open(sys.argv[1], "a") as f:
    f.write(f"{os.getpid()}\\n")
if sys.argv[2] == "sleep":
    time.sleep(60)
sys.exit(int(sys.argv[2]))
"""


def _pids(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill 0 until its parent reaps it
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


async def _until(check: object, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_failed_process_is_restarted_after_one_second(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    svc = Supervised("child", [sys.executable, "-c", CHILD, str(starts), "3"], policy="on-failure")
    svc.start()
    await _until(lambda: len(_pids(starts)) >= 2)
    assert svc.exits[0].code == 3
    assert 0.9 <= svc.starts[1] - svc.exits[0].at < 2.0
    await svc.stop()
    assert not any(_alive(p) for p in _pids(starts))


async def test_on_failure_leaves_a_clean_exit_alone(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    svc = Supervised("child", [sys.executable, "-c", CHILD, str(starts), "0"], policy="on-failure")
    svc.start()
    await _until(lambda: not svc.running)
    await asyncio.sleep(1.3)
    assert len(_pids(starts)) == 1
    assert [e.code for e in svc.exits] == [0]


async def test_unless_stopped_restarts_a_killed_process_but_not_a_stopped_one(
    tmp_path: Path,
) -> None:
    starts = tmp_path / "starts"
    sup = Supervisor()
    svc = sup.add(
        Supervised("child", [sys.executable, "-c", CHILD, str(starts), "sleep"], delay=0.2)
    )
    await _until(lambda: svc.pid is not None and len(_pids(starts)) == 1)
    first = svc.pid
    assert svc.send(signal.SIGKILL)
    await _until(lambda: len(_pids(starts)) == 2)
    assert svc.exits[0].code == -signal.SIGKILL
    await sup.close()
    assert not svc.running
    await asyncio.sleep(0.4)
    assert len(_pids(starts)) == 2
    assert first is not None
    assert not any(_alive(p) for p in _pids(starts))


def test_sigint_stops_the_supervisor_and_its_child(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    child = [sys.executable, "-c", CHILD, str(starts), "sleep"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.supervisor", "--", *child], stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while not _pids(starts):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)  # the child is not in the terminal's group here
    assert proc.wait(25) == 0
    (pid,) = _pids(starts)
    assert not _alive(pid)
