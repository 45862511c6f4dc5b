"""Speech: espeak-ng offline, and gTTS against a local stand-in of Google's endpoint."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from aiohttp import web

from gateway.voice.tts import Tts, TtsError
from tests.conftest import free_port


def _format(wav: Path) -> tuple[int, int, int]:
    out = (
        subprocess.check_output(["soxi", "-r", str(wav)]).strip(),
        subprocess.check_output(["soxi", "-c", str(wav)]).strip(),
        subprocess.check_output(["soxi", "-b", str(wav)]).strip(),
    )
    return int(out[0]), int(out[1]), int(out[2])


async def test_espeak_renders_8khz_mono_16bit_and_caches(tmp_path: Path) -> None:
    tts = Tts(tmp_path)
    first = await tts.render("您的车辆云A·12345违法停放在北京路。")
    assert _format(first.with_suffix(".wav")) == (8000, 1, 16)
    mtime = first.with_suffix(".wav").stat().st_mtime_ns
    again = await tts.render("您的车辆云A·12345违法停放在北京路。")
    assert again == first
    assert again.with_suffix(".wav").stat().st_mtime_ns == mtime  # served from the cache
    assert again == tts.path_for("您的车辆云A·12345违法停放在北京路。")


@pytest.fixture
async def gtts_standin(tmp_path: Path) -> tuple[str, list[str]]:
    """Answers gTTS's batchexecute RPC with a real MP3, and records the texts asked for."""
    wav, mp3 = tmp_path / "src.wav", tmp_path / "src.mp3"
    subprocess.run(["espeak-ng", "-v", "cmn", "-w", str(wav), "测试"], check=True)
    subprocess.run(["sox", str(wav), str(mp3)], check=True)
    audio = base64.b64encode(mp3.read_bytes()).decode()
    texts: list[str] = []

    async def rpc(request: web.Request) -> web.Response:
        form = parse_qs((await request.read()).decode())
        rpc_call = json.loads(form["f.req"][0])[0][0]
        params = json.loads(rpc_call[1])
        texts.append(params[0])
        assert params[1] == "zh"
        # Compact, as Google sends it: gTTS matches the line literally.
        rpc_result = [["wrb.fr", "jQ1olc", json.dumps([audio]), None, None, None, "generic"]]
        line = json.dumps(rpc_result, separators=(",", ":"))
        return web.Response(text=")]}'\n\n" + line + "\n")

    app = web.Application()
    app.router.add_post("/_/TranslateWebserverUi/data/batchexecute", rpc)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", texts
    await runner.cleanup()


async def test_gtts_engine_speaks_through_its_http_endpoint(
    tmp_path: Path, gtts_standin: tuple[str, list[str]]
) -> None:
    url, texts = gtts_standin
    tts = Tts(tmp_path, engine="gtts", gtts_url=url)
    base = await tts.render("请在10分钟内驶离。")
    assert texts == ["请在10分钟内驶离。"]
    assert _format(base.with_suffix(".wav")) == (8000, 1, 16)


async def test_gtts_without_a_reachable_endpoint_fails_clearly(tmp_path: Path) -> None:
    tts = Tts(tmp_path, engine="gtts", gtts_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(TtsError, match="gTTS failed"):
        await asyncio.wait_for(tts.render("你好"), 30)
    assert not list((tmp_path / "cache").glob("*.wav"))  # nothing half-written is cached
