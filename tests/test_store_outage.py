"""A Redis restart is routine: the API answers 503 meanwhile, the workers wait it out, and
every notice accepted before and after is delivered."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.sms.simulator import SmscSimulator
from tests.conftest import Gateway, close_or_dump, free_port, make_settings


class RedisProcess:
    """A private redis-server with an append-only file, so a restart keeps its data."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        assert exe, "redis-server is missing: run scripts/test.sh, which installs it"
        self.proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--dir",
                str(self.dir),
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()  # SIGTERM: Redis writes out its AOF and exits
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path)
    server.start()
    yield server
    server.stop()


async def _alert(gw: Gateway, key: object, n: int) -> tuple[int, dict[str, object], object]:
    return await gw.request(
        "POST",
        "/v1/accident-alerts",
        key,  # type: ignore[arg-type]
        {
            "accident_type": "minor_property_damage",
            "reporter_phone": f"1390000{n:04d}",
            "location": "北京路",
            "case_id": f"A-{n}",
        },
    )


async def test_a_redis_restart_is_waited_out_and_nothing_accepted_is_lost(
    own_redis: RedisProcess, prefix: str, smsc: SmscSimulator
) -> None:
    gw = Gateway(make_settings(own_redis.url, prefix, smsc.port))
    await gw.start()
    try:
        gw._admin = await gw.add_key("admin")
        centre = await gw.add_key("command_center")
        async with asyncio.timeout(10):
            await smsc.wait_bound()
        before = []
        for n in range(10):
            code, body, _ = await _alert(gw, centre, n)
            assert code == 202, body
            before.append(str(body["id"]))

        own_redis.stop()
        code, body, headers = await _alert(gw, centre, 99)
        assert code == 503, body
        assert body["error"]["code"] == "store_unavailable"  # type: ignore[index]
        assert headers["Retry-After"] == "1"  # type: ignore[index]
        await asyncio.sleep(2.0)  # every worker loop meets the outage
        own_redis.start()

        after = []
        for n in range(10, 20):
            code, body, _ = await _alert(gw, centre, n)
            assert code == 202, body
            after.append(str(body["id"]))
        for nid in before + after:
            await gw.wait_status(nid, "delivered", within=20)
        assert gw.workers is not None
        ended = [t.get_name() for t in gw.workers.tasks if t.done()]
        assert ended == []  # no worker gave up on the way
        assert len(smsc.to([f"1390000{n:04d}" for n in range(20)])) == 20
    finally:
        await close_or_dump(gw)


async def test_workers_started_while_redis_is_away_wait_for_it_instead_of_ending(
    own_redis: RedisProcess, prefix: str, smsc: SmscSimulator
) -> None:
    """A worker's start-up (its consumer groups and heartbeats) meets the outage too: a
    process that comes up before Redis (a host's boot, a cluster reset) waits, then works."""
    own_redis.stop()
    gw = Gateway(make_settings(own_redis.url, prefix, smsc.port))
    await gw.start(api=False)
    try:
        await asyncio.sleep(1.5)  # every worker's start-up meets the outage
        assert gw.workers is not None
        ended = [t.get_name() for t in gw.workers.tasks if t.done()]
        assert ended == []
        own_redis.start()
        await gw.start(workers=False)
        gw._admin = await gw.add_key("admin")
        centre = await gw.add_key("command_center")
        async with asyncio.timeout(10):
            await smsc.wait_bound()
        code, body, _ = await _alert(gw, centre, 1)
        assert code == 202, body
        await gw.wait_status(str(body["id"]), "delivered", within=20)
        ended = [t.get_name() for t in gw.workers.tasks if t.done()]
        assert ended == []
    finally:
        await close_or_dump(gw)
