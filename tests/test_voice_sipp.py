"""Calls through the SIP trunk to a SIPp phone: DTMF over SIP INFO, busy, no answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.sms.simulator import SmscSimulator
from tests.conftest import Gateway, running_voice_gateway
from tests.sipp_phone import SippPhone


@pytest.fixture
async def trunk_gateway(
    redis_server: str, prefix: str, smsc: SmscSimulator, asterisk: Any, tmp_path: Path
) -> AsyncIterator[Gateway]:
    """Calls leave through the PJSIP trunk to the SIPp phone; it rings 5 s at most."""
    async with running_voice_gateway(
        redis_server, prefix, smsc, asterisk, tmp_path, GATEWAY_RING_SECONDS="5"
    ) as gw:
        yield gw


async def _notice(gw: Gateway, plate: str, phone: str) -> str:
    await gw.request("POST", "/v1/bindings", gw._admin, {"plate": plate, "phone": phone})
    officer = await gw.add_key("officer")
    code, body, _ = await gw.request(
        "POST",
        "/v1/parking-notices",
        officer,
        {"plate": plate, "location": "青年路", "move_within_minutes": 15, "officer_id": "K7"},
    )
    assert code == 202, body
    return str(body["id"])


def _phone(asterisk: Any, scenario: str, calls: int, tmp_path: Path, digit: str = "1") -> SippPhone:
    return SippPhone(
        scenario,
        int(asterisk.env["GATEWAY_SIP_TRUNK_PORT"]),
        f"127.0.0.1:{asterisk.env['GATEWAY_SIP_BIND_PORT']}",
        calls,
        tmp_path,
        digit,
    )


@pytest.mark.parametrize(("digit", "status"), [("1", "acknowledged"), ("2", "disputed")])
async def test_sipp_phone_answers_and_presses_a_digit(
    trunk_gateway: Gateway, asterisk: Any, tmp_path: Path, digit: str, status: str
) -> None:
    phone = _phone(asterisk, "answer_dtmf", 1, tmp_path, digit)
    try:
        nid = await _notice(trunk_gateway, f"云E1000{digit}", "13800138000")
        notice = await trunk_gateway.wait_status(nid, status, within=40)
        assert notice["history"][-1]["detail"]["digit"] == digit
        assert await asyncio.to_thread(phone.finish, 30) == 0
    finally:
        phone.stop()


async def test_a_phone_hung_up_mid_message_ends_the_call_no_input_at_once(
    trunk_gateway: Gateway, asterisk: Any, tmp_path: Path
) -> None:
    """The citizen answers and hangs up before any digit: the flow says so (no_input,
    reason hangup) then and there, not after a horizon."""
    phone = _phone(asterisk, "answer_hangup", 1, tmp_path)
    try:
        nid = await _notice(trunk_gateway, "云F10001", "13900139001")
        notice = await trunk_gateway.wait_status(nid, "no_input", within=20)
        assert notice["history"][-1]["detail"]["reason"] == "hangup"
        assert [h["status"] for h in notice["history"]] == [
            "queued", "dialing", "answered", "no_input",
        ]  # fmt: skip
        assert await asyncio.to_thread(phone.finish, 30) == 0
    finally:
        phone.stop()


async def test_busy_phone_is_retried_then_gets_the_sms_fallback(
    trunk_gateway: Gateway, asterisk: Any, smsc: SmscSimulator, tmp_path: Path
) -> None:
    phone = _phone(asterisk, "busy", 3, tmp_path)
    try:
        nid = await _notice(trunk_gateway, "云F20000", "13900139111")
        async with asyncio.timeout(30):
            while not (
                fallback := await trunk_gateway.redis.hget(
                    trunk_gateway.keys.notice(nid), "fallback_id"
                )
            ):
                await asyncio.sleep(0.1)
        statuses = [h["status"] for h in (await trunk_gateway.wait_status(nid, "busy"))["history"]]
        assert statuses.count("dialing") == 3
        assert statuses.count("busy") == 3
        await trunk_gateway.wait_status(fallback, "delivered", within=20)
        assert "云F·20000" in smsc.to(["13900139111"])[0].text
        assert await asyncio.to_thread(phone.finish, 30) == 0  # SIPp saw all 3 INVITEs
    finally:
        phone.stop()


async def test_phone_that_never_answers_ends_no_answer_after_its_attempts(
    trunk_gateway: Gateway, asterisk: Any, tmp_path: Path
) -> None:
    phone = _phone(asterisk, "no_answer", 3, tmp_path)
    try:
        nid = await _notice(trunk_gateway, "云G30000", "13700137111")
        async with asyncio.timeout(90):
            while not await trunk_gateway.redis.hget(trunk_gateway.keys.notice(nid), "fallback_id"):
                await asyncio.sleep(0.2)
        notice = await trunk_gateway.wait_status(nid, "no_answer")
        assert [h["status"] for h in notice["history"]].count("dialing") == 3
        assert await asyncio.to_thread(phone.finish, 30) == 0  # rang 3 times, cancelled 3
    finally:
        phone.stop()
