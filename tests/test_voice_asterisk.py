"""The voice building blocks against a real Asterisk: AMI link, FastAGI, the parking flow."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from gateway.ivr_flows.agi_server import FastAgiServer, FlowResult
from gateway.ivr_flows.parking import parking_flow
from gateway.voice.ami import AmiError, AmiLink
from gateway.voice.tts import Tts
from tests.voice_stack import AsteriskProcess


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, str]]] = []
        self.results: list[FlowResult] = []
        self.changed = asyncio.Event()

    def on_event(self, name: str, keys: dict[str, str]) -> None:
        self.events.append((name, keys))
        self.changed.set()

    async def on_result(self, result: FlowResult) -> None:
        self.results.append(result)
        self.changed.set()

    async def wait(self, pred: Any, within: float = 15) -> None:
        async with asyncio.timeout(within):
            while not pred():
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def voice(asterisk: AsteriskProcess, tmp_path: Path) -> Any:
    settings = asterisk.settings()
    rec = Recorder()
    link = AmiLink(settings.ami, rec.on_event)
    agi = FastAgiServer(
        "127.0.0.1",
        settings.agi.agi_port,
        {"parking": parking_flow},
        rec.on_result,
        max_sessions=32,
        session_timeout=30,
    )
    agi.bind()
    tasks = [asyncio.create_task(link.run()), asyncio.create_task(agi.serve())]
    async with asyncio.timeout(30):
        while not link.up:
            await asyncio.sleep(0.05)
    tts = Tts(tmp_path)
    prompt = await tts.render("您的车辆云A12345违法停放在北京路，请在10分钟内驶离。")
    menu = await tts.render("如您将驶离车辆，请按1；如不是您的车辆，请按2。")
    yield link, agi, rec, {"NOTICE_PROMPT": str(prompt), "NOTICE_MENU": str(menu)}
    link.close()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await agi.shutdown(1)


async def _originate(
    link: AmiLink, callee: str, notice_id: str, prompts: dict[str, str]
) -> dict[str, str]:
    return await link.action(
        "Originate",
        Channel=f"Local/{callee}@sink",
        Context="notice-call",
        Exten="s",
        Priority="1",
        Async="true",
        Timeout="20000",
        ActionID=notice_id,
        variables={"NOTICE_ID": notice_id, "NOTICE_FLOW": "parking", **prompts},
    )


@pytest.mark.parametrize(("callee", "outcome"), [("1001", "acknowledged"), ("1002", "disputed")])
async def test_parking_flow_takes_the_digit_pressed(voice: Any, callee: str, outcome: str) -> None:
    link, _, rec, prompts = voice
    nid = f"ntc_test{callee}"
    resp = await _originate(link, callee, nid, prompts)
    assert resp["Message"] == "Originate successfully queued"
    await rec.wait(lambda: any(r.outcome.get("notice_id") == nid for r in rec.results))
    (result,) = [r for r in rec.results if r.outcome.get("notice_id") == nid]
    assert result.outcome["outcome"] == outcome
    assert result.request.flow == "parking"
    await rec.wait(
        lambda: any(n == "OriginateResponse" and k.get("ActionID") == nid for n, k in rec.events)
    )
    (ev,) = [k for n, k in rec.events if n == "OriginateResponse" and k.get("ActionID") == nid]
    assert (ev["Response"], ev["Reason"]) == ("Success", "4")


async def test_garbage_on_the_agi_socket_ends_that_session_only(voice: Any) -> None:
    link, agi, rec, prompts = voice
    port = agi.port
    for junk in (
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x00\xff" * 600 + b"\n",
        b"agi_request: http://evil/\n\n",
        b"",
    ):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(junk)
        await w.drain()
        w.write_eof()
        assert await asyncio.wait_for(r.read(), 5) == b""  # the server closed it
        w.close()
    # A silent peer is cut by the read budget, not left hanging forever.
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"agi_network: yes\n")
    # The server still serves real calls afterwards.
    await _originate(link, "1001", "ntc_after_garbage", prompts)
    await rec.wait(
        lambda: any(r.outcome.get("notice_id") == "ntc_after_garbage" for r in rec.results)
    )
    assert agi.sessions_failed == 0


async def test_ami_error_response_is_raised(voice: Any) -> None:
    link, *_ = voice
    with pytest.raises(AmiError):
        await link.action("NoSuchActionAtAll")


async def test_a_quiet_ami_link_stays_up(asterisk: AsteriskProcess) -> None:
    """An idle Asterisk sends nothing for minutes; that is not a lost link. (asterisk-ami kept
    its connect timeout on the reader's socket: a link was dropped after that many quiet
    seconds, every time.)"""
    states: list[bool] = []
    link = AmiLink(asterisk.settings().ami, lambda name, keys: None, states.append, 1.0)
    task = asyncio.create_task(link.run())
    try:
        async with asyncio.timeout(30):
            while not link.up:
                await asyncio.sleep(0.05)
        await asyncio.sleep(3.5)  # more than three connect timeouts of silence
        assert link.up
        assert states == [True]
        response = await link.action("Ping")
        assert response.get("Ping") == "Pong"
    finally:
        link.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
