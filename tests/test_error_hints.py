"""Errors that name the fix: the allowed values, the expected header, how to allow a host."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from urllib.parse import urlsplit

import pytest

from tests.conftest import Gateway, Receiver
from tests.test_reminder_jobs import post_csv

ALERT = {
    "accident_type": "injury",
    "reporter_phone": "13800138000",
    "location": "北京路",
    "case_id": "A-1",
}


async def test_unknown_names_come_back_with_the_allowed_ones(gateway: Gateway) -> None:
    centre = await gateway.add_key("command_center")
    code, body, _ = await gateway.request(
        "POST", "/v1/messages", centre, {"to": "13800138000", "template": "nope", "params": {}}
    )
    assert (code, body["error"]["code"]) == (422, "unknown_template")
    assert "licence_review_due" in body["error"]["details"]["allowed"]
    assert "plain_notice" in body["error"]["message"]
    code, body, _ = await gateway.request(
        "POST", "/v1/accident-alerts", centre, {**ALERT, "accident_type": "fender_bender"}
    )
    assert (code, body["error"]["code"]) == (422, "unknown_accident_type")
    assert "hit_and_run" in body["error"]["details"]["allowed"]
    code, body, _ = await gateway.request(
        "POST",
        "/v1/messages",
        centre,
        {"to": "13800138000", "template": "accident_injury", "params": {"location": "x"}},
    )
    assert (code, body["error"]["code"]) == (422, "missing_params")
    assert body["error"]["details"]["params"] == ["location", "case_id"]
    code, body, _ = await gateway.request("DELETE", "/v1/accident-alerts", centre)
    assert (code, body["error"]["details"]["allowed"]) == (405, ["POST"])


async def test_a_csv_header_error_shows_the_expected_header_and_what_was_read(
    gateway: Gateway,
) -> None:
    office = await gateway.add_key("back_office")
    code, body = await post_csv(gateway, office, b"to;road;period;detour\n13800138000;a;b;c\n")
    assert (code, body["error"]["code"]) == (422, "missing_params"), body
    message = body["error"]["message"]
    assert "expected the header to,road,period,detour" in message
    assert "read to;road;period;detour" in message
    assert "separated by ';'" in message
    assert body["error"]["details"]["expected"] == ["to", "road", "period", "detour"]


async def test_a_refused_callback_host_names_the_command_that_allows_it(
    gateway: Gateway, receiver: Receiver
) -> None:
    centre = await gateway.add_key("command_center", ["hooks.example.cn"])
    url = receiver.url
    code, body, _ = await gateway.request(
        "POST", "/v1/accident-alerts", centre, {**ALERT, "callback_url": url}
    )
    assert (code, body["error"]["code"]) == (422, "callback_host_not_allowed")
    command = f"gateway keys update {centre.key.id} --add-callback-host {receiver.allow}"
    assert command in body["error"]["message"]
    assert body["error"]["details"] == {"host": receiver.allow, "allowed": ["hooks.example.cn"]}
    # The command works as the message says, with the other options beside it.
    settings = gateway.settings.redis
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        *command.split()[1:],
        "--rate",
        "20",
        "--json",
        "--log-level",
        "WARNING",
        stdout=asyncio.subprocess.PIPE,
        env={
            **os.environ,
            "GATEWAY_REDIS_URL": settings.redis_url,
            "GATEWAY_REDIS_PREFIX": settings.redis_prefix,
        },
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    updated = json.loads(out)
    assert updated["callback_hosts"] == ["hooks.example.cn", receiver.allow]
    assert updated["rate"] == 20
    async with asyncio.timeout(10):  # API processes cache a key for a few seconds
        while True:
            code, body, _ = await gateway.request(
                "POST", "/v1/accident-alerts", centre, {**ALERT, "callback_url": url}
            )
            if code == 202:
                break
            await asyncio.sleep(0.5)


async def test_an_unencoded_chinese_query_gets_the_json_error_and_no_traceback(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    addr = urlsplit(gateway.base)
    reader, writer = await asyncio.open_connection(addr.hostname, addr.port)
    writer.write("GET /v1/admin/binding-audit?plate=云A12345 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    with caplog.at_level(logging.INFO):
        raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") or head.startswith(b"HTTP/1.0 400"), raw
    assert b"application/json" in head
    error = json.loads(body)["error"]
    assert error["code"] == "invalid_url"
    assert "--data-urlencode" in error["message"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
