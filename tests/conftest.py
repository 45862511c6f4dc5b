"""Real components on ephemeral ports: a private redis-server, the SMSC simulator, the gateway
(API + workers in the test's event loop) and a webhook receiver."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from gateway.api.app import create_app
from gateway.api.server import ApiRunner
from gateway.core.secret_box import SecretBox
from gateway.metrics import Metrics
from gateway.runner import Workers
from gateway.settings import Settings
from gateway.sms.simulator import Script, SmscSimulator
from gateway.store.apikeys import ApiKeyStore, NewKey
from gateway.store.redis_conn import connect
from tests.receiver import Receiver
from tests.redis_sentinel import RedisBackend
from tests.voice_stack import settings_from

# The Redis a gateway fixture uses: one server, or (tests marked "sentinel") a Sentinel set too.
pytest_plugins = ["tests.redis_backends"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """One private redis-server for the session; each test gets its own database prefix."""
    exe = shutil.which("redis-server")
    assert exe, "redis-server is missing: run scripts/test.sh, which installs it"
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="gw-redis-")
    proc = subprocess.Popen(
        [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            tmp,
            "--loglevel",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)
    shutil.rmtree(tmp, ignore_errors=True)


_counter = iter(range(1, 1_000_000))


@pytest.fixture
async def r(redis_server: str) -> AsyncIterator[aioredis.Redis]:
    """A client of the session's redis-server (answers decoded)."""
    client = aioredis.from_url(redis_server, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def prefix() -> str:
    return f"t{os.getpid()}x{next(_counter)}"


def make_settings(redis_url: str, prefix: str, smpp_port: int, **extra: str) -> Settings:
    env = {
        "GATEWAY_REDIS_URL": redis_url,
        "GATEWAY_REDIS_PREFIX": prefix,
        "GATEWAY_SMPP_PORT": str(smpp_port),
        "GATEWAY_SMPP_TPS": "5000",
        "GATEWAY_CONSUMER_DEAD_AFTER": "2",
        "GATEWAY_HEARTBEAT_SECONDS": "0.5",
        "GATEWAY_WEBHOOK_FIRST_RETRY": "0.2",
        "GATEWAY_WEBHOOK_MAX_RETRY_INTERVAL": "1",
        "GATEWAY_SMPP_THROTTLE_BACKOFF": "0.05",
        "GATEWAY_VOICE_ENABLED": "false",
        **extra,
    }
    return settings_from(env)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    rec.url = f"http://127.0.0.1:{port}/hook"
    yield rec
    await runner.cleanup()


@pytest.fixture
async def smsc() -> AsyncIterator[SmscSimulator]:
    sim = SmscSimulator("127.0.0.1", free_port(), Script(receipt_delay=0.05))
    await sim.start()
    task = asyncio.create_task(sim.serve())
    yield sim
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=10)
    if not done:
        for t in asyncio.all_tasks():
            print(f"--- {t.get_name()}: {t.get_coro()}")
            t.print_stack(limit=8)
        raise TimeoutError("simulator did not stop")


class Gateway:
    """The gateway's API and workers, started and stopped inside the test's loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.workers: Workers | None = None
        self.runner: web.AppRunner | None = None
        self.base = ""
        self.redis = connect(settings.redis)
        self.keys = settings.redis.keys()
        self.http: aiohttp.ClientSession | None = None

    async def start(self, *, api: bool = True, workers: bool = True) -> None:
        if workers:
            self.workers = Workers(self.settings, self.metrics)
            self.workers.start()
        if api and self.runner is None:
            readiness = {"smpp": lambda: bool(self.workers and self.workers.sms.bound)}
            if self.settings.voice.voice_enabled:
                readiness["ami"] = lambda: bool(
                    self.workers and self.workers.voice and self.workers.voice.ami.up
                )
            app = create_app(self.settings, self.metrics, readiness)
            self.runner = ApiRunner(app, access_log=None)
            await self.runner.setup()
            port = free_port()
            await web.TCPSite(self.runner, "127.0.0.1", port).start()
            self.base = f"http://127.0.0.1:{port}"
            self.http = aiohttp.ClientSession()

    async def stop_workers(self) -> None:
        if self.workers is not None:
            await self.workers.stop()
            self.workers = None

    async def close(self) -> None:
        await self.stop_workers()
        if self.runner is not None:
            await self.runner.cleanup()
        if self.http is not None:
            await self.http.close()
        await self.redis.aclose()

    async def add_key(
        self,
        role: str,
        hosts: list[str] | None = None,
        rate: float = 1000,
        burst: int = 1000,
        events_url: str = "",
    ) -> NewKey:
        box = SecretBox(self.settings.security.secret_key.get_secret_value())
        return await ApiKeyStore(self.redis, self.keys, box).add(
            f"test-{role}", role, hosts or [], rate, burst, events_url
        )

    async def request(
        self,
        method: str,
        path: str,
        key: NewKey | str | None = None,
        json_body: Any = None,
        data: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, Any]:
        assert self.http is not None
        h = dict(headers or {})
        if key is not None:
            h["Authorization"] = f"Bearer {key.token if isinstance(key, NewKey) else key}"
        if data is not None:
            h.setdefault("Content-Type", "application/json")
        async with self.http.request(
            method, self.base + path, json=json_body, data=data, headers=h
        ) as resp:
            sse = resp.content_type == "text/event-stream"  # never ends: the status is enough
            text = "" if sse else await resp.text()
            try:
                body = json.loads(text)
            except ValueError:
                body = text
            return resp.status, body, resp.headers

    async def wait_status(self, notice_id: str, status: str, within: float = 10) -> dict[str, Any]:
        async with asyncio.timeout(within):
            while True:
                st = await self.redis.hget(self.keys.notice(notice_id), "status")
                if st == status:
                    code, body, _ = await self.request(
                        "GET", f"/v1/notices/{notice_id}", self._admin
                    )
                    assert code == 200
                    return dict(body)
                await asyncio.sleep(0.02)

    _admin: NewKey


@pytest.fixture
async def gateway(
    redis_backend: RedisBackend, prefix: str, smsc: SmscSimulator
) -> AsyncIterator[Gateway]:
    gw = Gateway(make_settings(redis_backend.url, prefix, smsc.port, **redis_backend.env))
    await gw.start()
    gw._admin = await gw.add_key("admin")
    async with asyncio.timeout(10):
        await smsc.wait_bound()
    yield gw
    await close_or_dump(gw)


def _dump_tasks() -> None:
    for task in asyncio.all_tasks():
        print(f"--- {task.get_name()}: {task.get_coro()}", flush=True)
        task.print_stack(limit=12)


async def close_or_dump(gw: Gateway) -> None:
    """Close the gateway; if that hangs, show where every task is stuck."""
    watchdog = asyncio.get_running_loop().call_later(20, _dump_tasks)
    try:
        await gw.close()
    finally:
        watchdog.cancel()


@pytest.fixture(scope="session")
def asterisk() -> Iterator[Any]:
    """One private Asterisk for the session (about 2 s to boot)."""
    from tests.voice_stack import AsteriskProcess

    ast = AsteriskProcess.create()
    ast.start()
    yield ast
    ast.cleanup()


@asynccontextmanager
async def running_voice_gateway(
    redis_url: str,
    prefix: str,
    smsc: SmscSimulator,
    asterisk: Any,
    tmp_path: Path,
    **extra: str,
) -> AsyncIterator[Gateway]:
    """The gateway with its voice worker on the session's Asterisk, ready to call."""
    gw = Gateway(
        make_settings(
            redis_url,
            prefix,
            smsc.port,
            **asterisk.env,
            GATEWAY_VOICE_ENABLED="true",
            GATEWAY_AUDIO_DIR=str(tmp_path / "audio"),
            GATEWAY_QUIET_HOURS="",
            GATEWAY_VOICE_RETRY_SECONDS="0.5",
            **extra,
        )
    )
    await gw.start()
    gw._admin = await gw.add_key("admin")
    try:
        async with asyncio.timeout(30):
            await smsc.wait_bound()
            while not (gw.workers and gw.workers.voice and gw.workers.voice.ami.up):
                await asyncio.sleep(0.05)
        yield gw
    finally:
        await close_or_dump(gw)


@pytest.fixture
async def voice_gateway(
    redis_backend: RedisBackend, prefix: str, smsc: SmscSimulator, asterisk: Any, tmp_path: Path
) -> AsyncIterator[Gateway]:
    """Calls go to Local/<number>@sink, whose callee presses the number's last digit."""
    async with running_voice_gateway(
        redis_backend.url,
        prefix,
        smsc,
        asterisk,
        tmp_path,
        GATEWAY_VOICE_CHANNEL="Local/{number}@sink",
        GATEWAY_CALLS_PER_SECOND="50",
        # The strike scenarios post four notices to one plate within a minute; the per-plate
        # limit (3 an hour by default) has a test of its own.
        GATEWAY_PLATE_CALLS_PER_HOUR="10",
        **redis_backend.env,
    ) as gw:
        yield gw
