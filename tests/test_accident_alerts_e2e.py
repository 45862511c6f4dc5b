"""Accident alerts end to end over real TCP: API -> Redis -> SMPP simulator -> receipts ->
signed webhooks."""

from __future__ import annotations

import asyncio

import pytest

from gateway.receipts.signing import verify
from gateway.sms.simulator import SmscSimulator
from tests.conftest import Gateway, Receiver

ALERT = {
    "accident_type": "injury",
    "reporter_phone": "+86 138 0013 8000",
    "location": "北京路与青年路交叉口",
    "case_id": "A20261128-0042",
}


@pytest.mark.sentinel
@pytest.mark.cluster
async def test_three_part_alert_arrives_whole_and_webhooks_are_signed(
    gateway: Gateway, smsc: SmscSimulator, receiver: Receiver
) -> None:
    key = await gateway.add_key("command_center", [receiver.allow])
    code, body, headers = await gateway.request(
        "POST", "/v1/accident-alerts", key, {**ALERT, "callback_url": receiver.url}
    )
    assert code == 202, body
    assert body["status"] == "queued"
    assert body["channel"] == "sms"
    assert body["segments"] == 3
    assert body["to"] == "138****8000"
    assert headers["Location"] == f"/v1/notices/{body['id']}"

    async with asyncio.timeout(10):
        (msg,) = await smsc.wait_messages(1)
    assert msg.parts == 3
    assert msg.destination == "8613800138000"
    assert "北京路与青年路交叉口" in msg.text
    assert "A20261128-0042" in msg.text
    assert "拨打120" in msg.text

    notice = await gateway.wait_status(body["id"], "delivered")
    assert [h["status"] for h in notice["history"]] == ["queued", "submitted", "delivered"]
    assert len(notice["history"][1]["detail"]["message_ids"]) == 3

    for status in ("submitted", "delivered"):
        call = await receiver.wait_for(body["id"], status)
        h = call["headers"]
        assert verify(
            key.callback_secret, h["X-Gateway-Timestamp"], call["raw"], h["X-Gateway-Signature"]
        )
        assert not verify(
            "wrong-secret", h["X-Gateway-Timestamp"], call["raw"], h["X-Gateway-Signature"]
        )
        assert call["body"]["kind"] == "accident_alert"
        assert call["body"]["channel"] == "sms"


@pytest.mark.sentinel
@pytest.mark.cluster
async def test_same_idempotency_key_sends_once(gateway: Gateway, smsc: SmscSimulator) -> None:
    key = await gateway.add_key("command_center")
    hdr = {"Idempotency-Key": "handheld-7f3a-0001"}
    first = await gateway.request("POST", "/v1/accident-alerts", key, ALERT, headers=hdr)
    second = await gateway.request("POST", "/v1/accident-alerts", key, ALERT, headers=hdr)
    assert first[0] == 202
    assert second[0] == 200
    assert second[1]["id"] == first[1]["id"]
    assert second[2]["Idempotent-Replayed"] == "true"
    other = await gateway.request(
        "POST", "/v1/accident-alerts", key, {**ALERT, "case_id": "A2"}, headers=hdr
    )
    assert other[0] == 409
    assert other[1]["error"]["code"] == "idempotency_conflict"
    await gateway.wait_status(first[1]["id"], "delivered")
    await asyncio.sleep(0.3)
    assert len(smsc.messages) == 1


@pytest.mark.sentinel
@pytest.mark.cluster
async def test_undeliverable_and_rejected_numbers_end_in_their_statuses(
    gateway: Gateway, smsc: SmscSimulator
) -> None:
    smsc.script.undeliverable.add("13900139000")
    smsc.script.reject.add("13700137000")
    key = await gateway.add_key("command_center")
    _, a, _ = await gateway.request(
        "POST", "/v1/messages", key, {"to": "13900139000", "text": "测试"}
    )
    _, b, _ = await gateway.request(
        "POST", "/v1/messages", key, {"to": "13700137000", "text": "测试"}
    )
    undeliv = await gateway.wait_status(a["id"], "undeliverable")
    assert undeliv["history"][-1]["detail"]["stat"] == "UNDELIV"
    rejected = await gateway.wait_status(b["id"], "rejected")
    assert rejected["history"][-1]["detail"]["smpp_status"] == "ESME_RINVDSTADR"


async def test_throttled_submits_are_retried_and_delivered(
    gateway: Gateway, smsc: SmscSimulator
) -> None:
    smsc.script.throttle_first = smsc.submits + 5
    key = await gateway.add_key("command_center")
    ids = []
    for i in range(4):
        code, body, _ = await gateway.request(
            "POST", "/v1/messages", key, {"to": f"1380013800{i}", "text": f"提醒 {i}"}
        )
        assert code == 202, body
        ids.append(body["id"])
    for nid in ids:
        await gateway.wait_status(nid, "delivered")
    throttled = gateway.metrics.sms_throttled.labels("main", "ESME_RTHROTTLED", "priority")
    assert throttled._value.get() >= 5


async def test_template_message_with_plain_gsm_text(gateway: Gateway, smsc: SmscSimulator) -> None:
    key = await gateway.add_key("command_center")
    code, body, _ = await gateway.request(
        "POST",
        "/v1/messages",
        key,
        {"to": "008613800138001", "template": "plain_notice", "params": {"text": "Road closed"}},
    )
    assert code == 202, body
    assert body["segments"] == 1
    await gateway.wait_status(body["id"], "delivered")
    assert smsc.messages[-1].text == "Road closed"
