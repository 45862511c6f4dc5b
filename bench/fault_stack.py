"""The fault suite's stack: real processes on loopback under the restart supervisor.

Redis (AOF, fsync every second), the SMSC simulator (owed receipts on disk, every accepted
submit_sm logged), one API process, a priority worker and a bulk-only worker (each reaching
the SMSC through a loopback proxy that can reset its connections), a webhook receiver and,
for the voice fault, a private Asterisk. A process that dies is started again after 1 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import IO

import aiohttp
import redis.asyncio as aioredis

from bench.sms_path import ROOT, add_key, free_port, redis_command, wait_port
from bench.voice_calls import asterisk_command
from gateway.supervisor import Supervised, Supervisor
from tests.netfault import CuttableProxy

WORKERS = ("worker-priority", "worker-bulk")


class CountingProxy(CuttableProxy):
    """The proxy, counting connections, so a fault can follow a worker's re-bind."""

    def __init__(self, target_host: str, target_port: int) -> None:
        super().__init__(target_host, target_port)
        self.connections = 0
        self.connected = asyncio.Event()

    async def _client(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.connected.set()
        await super()._client(r, w)

    @property
    def live(self) -> bool:
        return bool(self._writers)


class Stack:
    def __init__(self, tmp: Path, window: int, voice: bool) -> None:
        self.tmp = tmp
        self.voice = voice
        self.window = window
        self.ports = {
            k: free_port() for k in ("redis", "smsc", "http", "hooks", "ami", "agi", "sip", "trunk")
        }
        self.accept_log = tmp / "smsc-accepted.log"
        self.hooks_log = tmp / "webhooks.log"
        self.base = f"http://127.0.0.1:{self.ports['http']}"
        self.hook_url = f"http://127.0.0.1:{self.ports['hooks']}/hook"
        self.env: dict[str, str] = {
            **os.environ,
            "GATEWAY_REDIS_URL": f"redis://127.0.0.1:{self.ports['redis']}/0",
            "GATEWAY_HTTP_PORT": str(self.ports["http"]),
            "GATEWAY_SIM_PORT": str(self.ports["smsc"]),
            "GATEWAY_SMPP_PORT": str(self.ports["smsc"]),
            "GATEWAY_SMPP_TPS": "5000",
            "GATEWAY_SMPP_WINDOW": str(window),
            "GATEWAY_REMINDER_DEDUP_HOURS": "0",
            "GATEWAY_REMINDER_DAILY_CAP": "0",
            "GATEWAY_QUIET_HOURS": "",
            # Bounded run: a callback refused while the receiver is down is tried again
            # within 8 s, not the production 30 min at most.
            "GATEWAY_WEBHOOK_FIRST_RETRY": "1",
            "GATEWAY_WEBHOOK_MAX_RETRY_INTERVAL": "8",
            "GATEWAY_VOICE_ENABLED": "true" if voice else "false",
            "GATEWAY_AMI_PORT": str(self.ports["ami"]),
            "GATEWAY_AGI_PORT": str(self.ports["agi"]),
            "GATEWAY_SIP_BIND_PORT": str(self.ports["sip"]),
            "GATEWAY_SIP_TRUNK_PORT": str(self.ports["trunk"]),
            "GATEWAY_VOICE_CHANNEL": "Local/{number}@sink",
            "GATEWAY_CALLS_PER_SECOND": "20",
            "GATEWAY_MAX_CALLS": "100",
            "GATEWAY_VOICE_RETRY_SECONDS": "3",
            "GATEWAY_AUDIO_DIR": str(tmp / "audio"),
        }
        self.gw = [str(ROOT / ".venv/bin/gateway"), "--log-level", "WARNING"]
        self.sup = Supervisor()
        self.proxies: dict[str, CountingProxy] = {}
        self.keys: dict[str, dict[str, str]] = {}
        self._logs: list[IO[bytes]] = []

    def _add(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        out = (self.tmp / f"{name}.log").open("ab")
        self._logs.append(out)
        self.sup.add(Supervised(name, argv, env=env or self.env, output=out))

    async def start(self) -> None:
        data = self.tmp / "redis"
        data.mkdir()
        self._add("redis", redis_command(self.ports["redis"], data, aof=True))
        await wait_port(self.ports["redis"])
        self._add(
            "smsc",
            [
                *self.gw,
                "smsc-sim",
                "--quiet",
                "--state-file",
                str(self.tmp / "smsc-owed"),
                "--accept-log",
                str(self.accept_log),
            ],
        )
        await wait_port(self.ports["smsc"])
        if self.voice:
            self._add("asterisk", asterisk_command(self.env, self.tmp / "asterisk"))
            await wait_port(self.ports["ami"], 30)
        for role in ("command_center", "back_office", "officer", "admin"):
            # The webhook sink, allowed by its exact address and port.
            hook = f"127.0.0.1:{self.ports['hooks']}"
            self.keys[role] = add_key(self.gw, self.env, role, (hook,))
        secrets = ",".join(k["callback_secret"] for k in self.keys.values())
        sink = ["-m", "bench.webhook_sink", "--port", str(self.ports["hooks"])]
        self._add(
            "hooks",
            [sys.executable, *sink, "--out", str(self.hooks_log)],
            {**self.env, "FAULTS_HOOK_SECRETS": secrets, "PYTHONPATH": str(ROOT)},
        )
        self._add("api", [*self.gw, "serve", "--role", "api"])
        for name in WORKERS:
            proxy = CountingProxy("127.0.0.1", self.ports["smsc"])
            await proxy.start()
            self.proxies[name] = proxy
            lane = name.removeprefix("worker-")
            env = {**self.env, "GATEWAY_WORKER_LANES": lane, "GATEWAY_SMPP_PORT": str(proxy.port)}
            self._add(name, [*self.gw, "serve", "--role", "worker"], env)
        await wait_port(self.ports["http"], 30)
        await wait_port(self.ports["hooks"], 30)

    async def healthy(self, http: aiohttp.ClientSession, within: float = 30.0) -> bool:
        """Every process running, the API ready and both workers bound, within ``within``."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if all(s.pid is not None for s in self.sup.services.values()) and all(
                p.live for p in self.proxies.values()
            ):
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(f"{self.base}/readyz") as r:
                        if r.status == 200:
                            return True
            await asyncio.sleep(0.2)
        return False

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]['key']}"}

    def exits(self, since: float) -> list[tuple[str, int]]:
        """(process, exit code) of every exit after ``since`` (monotonic)."""
        return [
            (s.name, e.code) for s in self.sup.services.values() for e in s.exits if e.at >= since
        ]

    async def close(self) -> None:
        await self.sup.close()
        for proxy in self.proxies.values():
            await proxy.close()
        for f in self._logs:
            f.close()

    def log_tail(self, name: str, lines: int = 5) -> list[str]:
        path = self.tmp / f"{name}.log"
        if not path.exists():
            return []
        return path.read_text(errors="replace").splitlines()[-lines:]

    def redis(self) -> aioredis.Redis:
        return aioredis.Redis(port=self.ports["redis"], decode_responses=True)
