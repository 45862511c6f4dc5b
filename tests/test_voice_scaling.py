"""Several workers share one Asterisk: each call's FastAGI result reaches the worker that
placed it (the Originate carries that worker's own FastAGI address)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from gateway.runner import Workers
from gateway.sms.simulator import SmscSimulator
from tests.conftest import Gateway, make_settings, running_voice_gateway
from tests.test_parking_notices import _bind, _notice
from tests.voice_stack import free_port

CALLS = 50


async def test_two_workers_sharing_one_asterisk_place_50_calls_and_every_result_comes_home(
    redis_server: str, prefix: str, smsc: SmscSimulator, asterisk: Any, tmp_path: Path
) -> None:
    async with running_voice_gateway(
        redis_server,
        prefix,
        smsc,
        asterisk,
        tmp_path,
        GATEWAY_VOICE_CHANNEL="Local/{number}@sink",
        GATEWAY_CALLS_PER_SECOND="50",
    ) as gw:
        # A second worker process: same Redis, same Asterisk, its own FastAGI port. The
        # dialplan's configured FastAGI address is the first worker's.
        env = {
            **asterisk.env,
            "GATEWAY_AGI_PORT": str(free_port()),
            "GATEWAY_VOICE_ENABLED": "true",
            "GATEWAY_AUDIO_DIR": str(tmp_path / "audio"),
            "GATEWAY_QUIET_HOURS": "",
            "GATEWAY_VOICE_CHANNEL": "Local/{number}@sink",
            "GATEWAY_CALLS_PER_SECOND": "50",
        }
        second = Workers(make_settings(redis_server, prefix, smsc.port, **env), gw.metrics)
        second.start()
        try:
            assert gw.workers is not None
            pair = (gw.workers, second)
            async with asyncio.timeout(30):
                while not all(w.voice is not None and w.voice.ami.up for w in pair):
                    await asyncio.sleep(0.05)
            ids = await _post_notices(gw)
            for nid in ids:
                await gw.wait_status(nid, "acknowledged", within=60)
            voices = [w.voice for w in pair]
            assert all(v is not None for v in voices)
            placed = [v.placed for v in voices if v is not None]
            assert sum(placed) == CALLS
            assert all(n > 0 for n in placed), placed  # both workers took calls
            # Each worker got back the result of exactly the calls it placed, and settled them
            # (its FastAGI server may also see a straggler of an earlier test's call).
            async with asyncio.timeout(10):
                while any(v.calls for v in voices if v is not None):
                    await asyncio.sleep(0.05)
            assert [v.results for v in voices if v is not None] == placed
            # Acks are batched (a few ms): every entry is acked soon after its call settled.
            async with asyncio.timeout(5):
                while (await gw.redis.xpending(gw.keys.voice_queue(0), "voice-callers"))["pending"]:
                    await asyncio.sleep(0.02)
        finally:
            await second.stop()


async def _post_notices(gw: Gateway) -> list[str]:
    officer = await gw.add_key("officer")
    ids = []
    for i in range(CALLS):
        plate = f"云A{i:05d}"
        await _bind(gw, plate, f"1380013{i:03d}1")  # the sink callee presses the last digit: 1
        code, body, _ = await gw.request("POST", "/v1/parking-notices", officer, _notice(plate))
        assert code == 202, body
        ids.append(body["id"])
    return ids
