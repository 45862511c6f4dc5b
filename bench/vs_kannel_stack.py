"""The side-by-side benchmark's processes, each in its own process group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

import psutil


class Stack:
    """The processes, each in its own process group, so a stop leaves none behind."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> None:
        log = (self.tmp / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def check(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is not None:
                tail = (self.tmp / f"{name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} exited ({p.returncode}):\n{tail}")

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of each process and its children, and of this process."""
        out: dict[str, float] = {}
        for name, p in self.procs.items():
            total = 0.0
            with contextlib.suppress(psutil.NoSuchProcess):
                proc = psutil.Process(p.pid)
                for q in (proc, *proc.children(recursive=True)):
                    with contextlib.suppress(psutil.NoSuchProcess):
                        t = q.cpu_times()
                        total += t.user + t.system
            out[name] = total
        me = psutil.Process().cpu_times()
        out["driver+receiver"] = me.user + me.system
        return out

    def stop(self) -> None:
        for p in reversed(list(self.procs.values())):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in reversed(list(self.procs.values())):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
