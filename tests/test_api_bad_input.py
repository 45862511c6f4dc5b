"""Bad input of every kind gets a clear 4xx with an error code, never a 5xx, and sends nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.sms.simulator import SmscSimulator
from tests.conftest import Gateway

GOOD = {
    "accident_type": "minor_property_damage",
    "reporter_phone": "13800138000",
    "location": "人民中路",
    "case_id": "C-1",
}

CASES: list[tuple[str, Any, int, str]] = [
    ("malformed json", b'{"accident_type": "injury",', 400, "malformed_json"),
    ("not utf-8", b"\xff\xfe{}", 400, "malformed_json"),
    ("json array", b"[1, 2]", 400, "invalid_body"),
    ("json string", b'"hello"', 400, "invalid_body"),
    ("empty body", b"", 400, "empty_body"),
    ("missing field", {k: v for k, v in GOOD.items() if k != "case_id"}, 422, "validation_error"),
    ("phone as number", {**GOOD, "reporter_phone": 13800138000}, 422, "validation_error"),
    ("location as list", {**GOOD, "location": ["a"]}, 422, "validation_error"),
    ("null type", {**GOOD, "accident_type": None}, 422, "validation_error"),
    ("unknown field", {**GOOD, "priority": "high"}, 422, "validation_error"),
    (
        "unknown accident type",
        {**GOOD, "accident_type": "alien_landing"},
        422,
        "unknown_accident_type",
    ),
    ("landline", {**GOOD, "reporter_phone": "0871-63123456"}, 422, "not_mobile"),
    ("foreign number", {**GOOD, "reporter_phone": "+1 415 555 2671"}, 422, "foreign_phone"),
    ("too short number", {**GOOD, "reporter_phone": "1380013"}, 422, "invalid_phone"),
    ("letters as number", {**GOOD, "reporter_phone": "138abc38000"}, 422, "invalid_phone"),
    ("10 kB location", {**GOOD, "location": "路" * 10_000}, 422, "validation_error"),
    ("10 kB case id", {**GOOD, "case_id": "C" * 10_000}, 422, "validation_error"),
    ("case id with spaces", {**GOOD, "case_id": "A 1; DROP"}, 422, "validation_error"),
    (
        "callback host not allowed",
        {**GOOD, "callback_url": "https://evil.example/x"},
        422,
        "callback_host_not_allowed",
    ),
    (
        "callback to metadata service",
        {**GOOD, "callback_url": "http://169.254.169.254/"},
        422,
        "callback_host_not_allowed",
    ),
    (
        "callback to loopback not named",
        {**GOOD, "callback_url": "http://127.0.0.2:9/"},
        422,
        "callback_host_not_allowed",
    ),
    (
        "callback file scheme",
        {**GOOD, "callback_url": "file:///etc/passwd"},
        422,
        "invalid_callback_url",
    ),
    (
        "callback with credentials",
        {**GOOD, "callback_url": "https://u:p@hooks.example.com/"},
        422,
        "invalid_callback_url",
    ),
    ("body over the size limit", b'{"location": "' + b"x" * 200_000 + b'"}', 413, "body_too_large"),
]


@pytest.mark.parametrize(("name", "body", "status", "code"), CASES, ids=[c[0] for c in CASES])
async def test_bad_accident_alert_gets_a_clear_error(
    gateway: Gateway, smsc: SmscSimulator, name: str, body: Any, status: int, code: str
) -> None:
    key = await gateway.add_key("command_center", ["hooks.example.com"])
    if isinstance(body, bytes):
        got = await gateway.request("POST", "/v1/accident-alerts", key, data=body)
    else:
        got = await gateway.request("POST", "/v1/accident-alerts", key, body)
    assert got[0] == status, got[1]
    assert got[1]["error"]["code"] == code
    assert got[1]["error"]["message"]
    await asyncio.sleep(0.05)
    assert smsc.submits == 0


async def test_wrong_key_wrong_role_and_bad_routes(gateway: Gateway, smsc: SmscSimulator) -> None:
    officer = await gateway.add_key("officer")
    cc = await gateway.add_key("command_center")
    checks = [
        (await gateway.request("POST", "/v1/accident-alerts", None, GOOD), 401, "unauthorized"),
        (
            await gateway.request("POST", "/v1/accident-alerts", "gwk_nope_x", GOOD),
            401,
            "unauthorized",
        ),
        (
            await gateway.request("POST", "/v1/accident-alerts", "Basic abc", GOOD),
            401,
            "unauthorized",
        ),
        (await gateway.request("POST", "/v1/accident-alerts", officer, GOOD), 403, "forbidden"),
        (await gateway.request("GET", "/v1/accident-alerts", cc), 405, "method_not_allowed"),
        (await gateway.request("GET", "/v1/nothing-here", cc), 404, "not_found"),
        (await gateway.request("GET", "/v1/notices/ntc_doesnotexist0000", cc), 404, "not_found"),
        (await gateway.request("GET", "/v1/notices/..%2f..%2fetc", cc), 404, "not_found"),
        (
            await gateway.request(
                "POST", "/v1/accident-alerts", cc, GOOD, headers={"Idempotency-Key": "x" * 300}
            ),
            400,
            "invalid_idempotency_key",
        ),
        (
            await gateway.request(
                "POST",
                "/v1/accident-alerts",
                cc,
                data="a=b",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ),
            415,
            "unsupported_media_type",
        ),
        (
            await gateway.request("POST", "/v1/messages", cc, {"to": "13800138000"}),
            422,
            "validation_error",
        ),
        (
            await gateway.request(
                "POST", "/v1/messages", cc, {"to": "13800138000", "template": "nope", "params": {}}
            ),
            422,
            "unknown_template",
        ),
        (
            await gateway.request(
                "POST",
                "/v1/messages",
                cc,
                {"to": "13800138000", "template": "accident_injury", "params": {"location": "x"}},
            ),
            422,
            "missing_params",
        ),
        (
            await gateway.request(
                "POST",
                "/v1/messages",
                cc,
                {
                    "to": "13800138000",
                    "template": "plain_notice",
                    "params": {"text": "a", "extra": "b"},
                },
            ),
            422,
            "unknown_params",
        ),
        (
            await gateway.request(
                "POST", "/v1/messages", cc, {"to": "13800138000", "text": "x", "channel": "fax"}
            ),
            422,
            "validation_error",
        ),
    ]
    for (status, body, _), want_status, want_code in checks:
        assert status == want_status, body
        assert body["error"]["code"] == want_code, body
    assert smsc.submits == 0


async def test_other_callers_cannot_read_a_notice(gateway: Gateway) -> None:
    a = await gateway.add_key("command_center")
    b = await gateway.add_key("command_center")
    _, created, _ = await gateway.request("POST", "/v1/accident-alerts", a, GOOD)
    own = await gateway.request("GET", f"/v1/notices/{created['id']}", a)
    other = await gateway.request("GET", f"/v1/notices/{created['id']}", b)
    assert own[0] == 200
    assert own[1]["to"] == "138****8000"
    assert other[0] == 404


async def test_rate_limit_answers_429_with_retry_after(gateway: Gateway) -> None:
    key = await gateway.add_key("command_center", rate=1, burst=2)
    codes = []
    for _ in range(4):
        status, body, headers = await gateway.request("POST", "/v1/accident-alerts", key, GOOD)
        codes.append(status)
    assert codes[:2] == [202, 202]
    assert codes[-1] == 429
    assert body["error"]["code"] == "rate_limited"
    assert int(headers["Retry-After"]) >= 1
