"""Restarting processes that exit, as compose's ``restart:`` policies do for the containers.

``unless-stopped`` restarts a process whatever its exit code until it is stopped on purpose;
``on-failure`` only after a non-zero code (a signal counts as one). The restart waits a delay
(1 s, like Docker's first back-off), so a process that fails at once does not spin.

    python -m gateway.supervisor [--policy on-failure] [--delay 1] -- gateway serve

runs one command so; SIGINT or SIGTERM stops it (the child is sent SIGTERM and waited for,
then killed after ``--stop-timeout``) and nothing is left running.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Literal

log = logging.getLogger(__name__)

Policy = Literal["unless-stopped", "on-failure"]


@dataclass
class Exit:
    at: float  # time.monotonic()
    code: int  # negative: the signal that ended it


@dataclass
class Supervised:
    """One command, run again each time it ends until ``stop()``."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    policy: Policy = "unless-stopped"
    delay: float = 1.0
    output: IO[bytes] | int | None = None
    own_session: bool = False  # a process group of its own: a terminal's Ctrl-C skips it
    exits: list[Exit] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)
    _proc: asyncio.subprocess.Process | None = None
    _task: asyncio.Task[None] | None = None
    _stopping: bool = False
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def pid(self) -> int | None:
        p = self._proc
        return p.pid if p is not None and p.returncode is None else None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.running:
            return
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"supervise-{self.name}")

    def send(self, sig: int) -> bool:
        """Send ``sig`` to the running process (it is restarted by its policy)."""
        pid = self.pid
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
            return True
        return False

    async def stop(self, sig: int = signal.SIGTERM, grace: float = 15.0) -> int | None:
        """Stop on purpose: no restart. Returns the last exit code."""
        self._stopping = True
        self._wake.set()
        self.send(sig)
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), grace)
            except TimeoutError:
                log.warning("%s did not stop within %.0f s; killing it", self.name, grace)
                self.send(signal.SIGKILL)
                await self._task
        return self.exits[-1].code if self.exits else None

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv,
                env=dict(self.env) if self.env is not None else None,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=self.output,
                stderr=self.output,
                start_new_session=self.own_session,
            )
            self.starts.append(time.monotonic())
            if self._stopping:  # stop() came while it was starting
                self.send(signal.SIGTERM)
            code = await self._proc.wait()
            self.exits.append(Exit(time.monotonic(), code))
            if self._stopping or (self.policy == "on-failure" and code == 0):
                return
            log.warning("%s exited with code %d; restarting in %.0f s", self.name, code, self.delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.delay)


class Supervisor:
    """Several supervised commands; ``close()`` stops them in reverse start order."""

    def __init__(self) -> None:
        self.services: dict[str, Supervised] = {}

    def add(self, service: Supervised) -> Supervised:
        self.services[service.name] = service
        service.start()
        return service

    def __getitem__(self, name: str) -> Supervised:
        return self.services[name]

    async def close(self, grace: float = 15.0) -> None:
        for service in reversed(list(self.services.values())):
            await service.stop(grace=grace)


async def _main(args: argparse.Namespace) -> int:
    service = Supervised(args.name or os.path.basename(args.cmd[0]), args.cmd, policy=args.policy)
    service.delay = args.delay
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    service.start()
    assert service._task is not None
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait([stopped, service._task], return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    code = await service.stop(grace=args.stop_timeout)
    return 0 if stop.is_set() else (code or 0)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gateway.supervisor", description=__doc__)
    p.add_argument("--policy", choices=["unless-stopped", "on-failure"], default="on-failure")
    p.add_argument("--delay", type=float, default=1.0, help="seconds before a restart")
    p.add_argument("--stop-timeout", type=float, default=20.0)
    p.add_argument("--name", help="for the log lines (default: the command)")
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    if args.cmd and args.cmd[0] == "--":
        args.cmd = args.cmd[1:]
    if not args.cmd:
        p.error("no command given")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s supervisor %(message)s")
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
