"""What the local stack's terminal shows: call progress, the mail sink's one line per message,
webhook retries that say what they carry, and a quiet clean stop. Numbers and addresses masked."""

from __future__ import annotations

import asyncio
import logging
import sys
from email.message import EmailMessage

import aiosmtplib
import pytest

from tests.conftest import Gateway, Receiver, free_port


async def test_a_call_prints_its_progress_and_a_clean_stop_warns_of_nothing(
    voice_gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    gw = voice_gateway
    caplog.set_level(logging.INFO)
    await gw.request(
        "POST", "/v1/bindings", gw._admin, {"plate": "云F12345", "phone": "13800138001"}
    )
    officer = await gw.add_key("officer")
    code, body, _ = await gw.request(
        "POST",
        "/v1/parking-notices",
        officer,
        {"plate": "云F12345", "location": "北京路", "move_within_minutes": 10, "officer_id": "K1"},
    )
    assert code == 202, body
    await gw.wait_status(body["id"], "acknowledged", within=30)
    await asyncio.sleep(0.1)
    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.voice.progress"]
    nid = body["id"]
    assert lines == [
        f"CALL -> 138****8001 {nid}: dialing (attempt 1)",
        f"CALL -> 138****8001 {nid}: answered",
        f"CALL -> 138****8001 {nid}: acknowledged (digit 1)",
    ]
    caplog.clear()
    await gw.stop_workers()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert "AMI link closed" in caplog.text


async def test_the_mail_sink_prints_one_masked_line_per_message() -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "smtp-sink",
        "--port",
        str(port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        ready = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert b"listening" in ready
        msg = EmailMessage()
        msg["From"] = "notices@jj.example.cn"
        msg["To"] = "zhang.san@example.cn"
        msg["Subject"] = "驾驶证到期换证提醒"
        msg.set_content("张三您好，您的驾驶证有效期至2026年12月31日。")
        await aiosmtplib.send(msg, hostname="127.0.0.1", port=port)
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
    finally:
        proc.terminate()
        rest, _ = await asyncio.wait_for(proc.communicate(), 10)
    assert line.startswith("SMTP <- n***@jj.example.cn to z***@example.cn: 驾驶证到期换证提醒")
    assert "张三您好" in line
    everything = line + rest.decode()
    assert "zhang.san" not in everything
    assert "RCPT" not in everything, everything
    assert "INFO" not in everything, everything


async def test_a_webhook_retry_line_names_the_notice_the_status_and_the_attempt(
    gateway: Gateway, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.receipts")
    receiver.fail_first = 1
    centre = await gateway.add_key("command_center", [receiver.allow])
    code, body, _ = await gateway.request(
        "POST",
        "/v1/accident-alerts",
        centre,
        {
            "accident_type": "injury",
            "reporter_phone": "13800138000",
            "location": "北京路",
            "case_id": "A-1",
            "callback_url": receiver.url,
        },
    )
    assert code == 202
    await receiver.wait_for(body["id"], "delivered")
    retries = [r.getMessage() for r in caplog.records if "failed on attempt" in r.getMessage()]
    assert retries, caplog.text
    assert retries[0].startswith(
        f"webhook for {body['id']} (status submitted) failed on attempt 1 (HTTP 503); attempt 2"
    ), retries
