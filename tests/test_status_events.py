"""Status event selection: a request's ``status_events``, or its key's default, decides which
status changes are posted to ``callback_url``; the history keeps every one."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from gateway.core.status_events import SELECTABLE, parse_option, selected, selection
from gateway.sms.simulator import SmscSimulator
from tests.conftest import Gateway, Receiver, make_settings

ALERT = {
    "accident_type": "injury",
    "reporter_phone": "13800138000",
    "location": "北京路与青年路交叉口",
    "case_id": "A20261202-0007",
}
# Time for a webhook that should not come to show up anyway (the dispatcher posts within
# milliseconds of the status change here).
QUIET_S = 0.7


async def _quiet(receiver: Receiver, *ids: str) -> dict[str, list[str]]:
    """Every id's webhook statuses, after a pause for stragglers."""
    await asyncio.sleep(QUIET_S)
    return {i: receiver.statuses(i) for i in ids}


async def test_a_message_for_delivered_only_gets_exactly_one_webhook(
    gateway: Gateway, receiver: Receiver
) -> None:
    key = await gateway.add_key("command_center", [receiver.allow])
    base = {"to": "13800138001", "text": "测试", "callback_url": receiver.url}
    code, picked, _ = await gateway.request(
        "POST", "/v1/messages", key, {**base, "status_events": ["delivered"]}
    )
    assert code == 202, picked
    code, every, _ = await gateway.request("POST", "/v1/messages", key, base)
    assert code == 202, every
    for nid in (picked["id"], every["id"]):
        await receiver.wait_for(nid, "delivered")
    await receiver.wait_for(every["id"], "submitted")
    got = await _quiet(receiver, picked["id"], every["id"])
    assert got[picked["id"]] == ["delivered"]
    assert sorted(got[every["id"]]) == ["delivered", "submitted"]
    notice = await gateway.wait_status(picked["id"], "delivered")
    assert [h["status"] for h in notice["history"]] == ["queued", "submitted", "delivered"]
    assert notice["status_events"] == ["delivered"]
    # Nothing was even queued for the unselected status.
    outbox = await gateway.redis.xrange(gateway.keys.webhook_queue(0))
    queued = [json.loads(f["body"])["status"] for _, f in outbox if f["id"] == picked["id"]]
    assert queued in ([], ["delivered"])


async def test_undeliverable_only_alert(
    gateway: Gateway, smsc: SmscSimulator, receiver: Receiver
) -> None:
    smsc.script.undeliverable.add("13900139002")
    key = await gateway.add_key("command_center", [receiver.allow])
    events = ["undeliverable", "expired", "rejected", "failed"]
    alerts = []
    for phone in ("13900139002", "13800138002"):
        body = {**ALERT, "reporter_phone": phone, "callback_url": receiver.url}
        code, made, _ = await gateway.request(
            "POST", "/v1/accident-alerts", key, {**body, "status_events": events}
        )
        assert code == 202, made
        alerts.append(made["id"])
    await receiver.wait_for(alerts[0], "undeliverable")
    await gateway.wait_status(alerts[1], "delivered")
    got = await _quiet(receiver, *alerts)
    assert got == {alerts[0]: ["undeliverable"], alerts[1]: []}


async def _cli(gw: Gateway, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "keys",
        *args,
        "--log-level",
        "WARNING",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={
            **os.environ,
            "GATEWAY_REDIS_URL": gw.settings.redis.redis_url,
            "GATEWAY_REDIS_PREFIX": gw.settings.redis.redis_prefix,
        },
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_key_default_and_request_override(gateway: Gateway, receiver: Receiver) -> None:
    rc, out, err = await _cli(
        gateway,
        "add",
        "--name",
        "cc",
        "--role",
        "command_center",
        "--callback-host",
        receiver.allow,
        "--status-events",
        "submitted",
        "--json",
    )
    assert rc == 0, err
    made = json.loads(out)
    assert made["status_events"] == ["submitted"]
    token = made["key"]
    body = {**ALERT, "callback_url": receiver.url}
    code, default, _ = await gateway.request("POST", "/v1/accident-alerts", token, body)
    assert code == 202, default
    code, override, _ = await gateway.request(
        "POST",
        "/v1/accident-alerts",
        token,
        {**body, "case_id": "A-2", "status_events": ["delivered", "submitted", "delivered"]},
    )
    assert code == 202, override
    await receiver.wait_for(override["id"], "delivered")
    await gateway.wait_status(default["id"], "delivered")
    got = await _quiet(receiver, default["id"], override["id"])
    assert got[default["id"]] == ["submitted"]
    assert sorted(got[override["id"]]) == ["delivered", "submitted"]

    rc, out, err = await _cli(gateway, "update", made["id"], "--status-events", "all", "--json")
    assert rc == 0, err
    assert json.loads(out)["status_events"] == "all"
    rc, _, err = await _cli(gateway, "update", made["id"], "--status-events", "delivred")
    assert rc == 2
    assert "unknown status 'delivred'" in err
    assert "delivered" in err


async def test_parking_notice_selection(
    redis_server: str, prefix: str, smsc: SmscSimulator, receiver: Receiver
) -> None:
    gw = Gateway(make_settings(redis_server, prefix, smsc.port, GATEWAY_QUIET_HOURS="00:00-23:59"))
    await gw.start()
    gw._admin = await gw.add_key("admin")
    try:
        code, _, _ = await gw.request(
            "POST", "/v1/bindings", gw._admin, {"plate": "云D33333", "phone": "13800138003"}
        )
        assert code == 201
        officer = await gw.add_key("officer", [receiver.allow])
        notice: dict[str, Any] = {
            "plate": "云D33333",
            "location": "北京路",
            "move_within_minutes": 10,
            "officer_id": "K1234",
            "callback_url": receiver.url,
            "status_events": ["delivered"],
        }
        code, body, _ = await gw.request("POST", "/v1/parking-notices", officer, notice)
        assert code == 202, body
        assert body["channel"] == "sms"  # quiet hours
        await receiver.wait_for(body["id"], "delivered")
        assert (await _quiet(receiver, body["id"]))[body["id"]] == ["delivered"]
    finally:
        await gw.close()


async def test_bad_selections_are_clear_errors(gateway: Gateway, receiver: Receiver) -> None:
    cc = await gateway.add_key("command_center", [receiver.allow])
    officer = await gateway.add_key("officer", [receiver.allow])
    alert = {**ALERT, "callback_url": receiver.url}
    cases: list[tuple[Any, str, str]] = [
        (["delivered", "read"], "invalid_status_events", "unknown status 'read'"),
        ([], "invalid_status_events", "at least one"),
        (["queued"], "invalid_status_events", "unknown status 'queued'"),
        ("delivered", "validation_error", "status_events"),
        ([1], "validation_error", "status_events"),
    ]
    for value, code_name, words in cases:
        code, body, _ = await gateway.request(
            "POST", "/v1/accident-alerts", cc, {**alert, "status_events": value}
        )
        assert code == 422, (value, body)
        assert body["error"]["code"] == code_name
        assert words in body["error"]["message"]
    code, body, _ = await gateway.request(
        "POST", "/v1/accident-alerts", cc, {**alert, "status_events": ["read"]}
    )
    assert body["error"]["details"]["allowed"] == list(SELECTABLE)
    assert body["error"]["details"]["unknown"] == ["read"]
    code, body, _ = await gateway.request(
        "POST",
        "/v1/parking-notices",
        officer,
        {
            "plate": "云D44444",
            "location": "北京路",
            "move_within_minutes": 10,
            "officer_id": "K1",
            "status_events": ["answred"],
        },
    )
    assert (code, body["error"]["code"]) == (422, "invalid_status_events")
    back_office = await gateway.add_key("back_office")
    code, body, _ = await gateway.request(
        "POST",
        "/v1/reminder-jobs",
        back_office,
        {
            "template": "road_closure",
            "recipients": [{"to": "13800138000"}],
            "status_events": ["delivered"],
        },
    )
    assert code == 422, body
    assert "when the job ends" in body["error"]["message"]


def test_selection_is_canonical_and_matches_the_lua_test() -> None:
    assert selection(["delivered", "submitted", "delivered"]) == "submitted,delivered"
    assert parse_option(" all ") == ""
    assert parse_option("answered, dialing") == "dialing,answered"
    assert selected("", "delivered")
    assert selected("submitted,delivered", "delivered")
    assert not selected("submitted,delivered", "deliver")
    assert "queued" not in SELECTABLE
    assert "moved" not in SELECTABLE
