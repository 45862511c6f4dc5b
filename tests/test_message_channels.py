# ruff: noqa: F811
"""``POST /v1/messages`` reaches every channel the gateway has: SMS, email (a real SMTP server)
and voice (a real call through Asterisk)."""

from __future__ import annotations

from gateway.sms.simulator import SmscSimulator
from tests.conftest import Gateway

# The mail fixtures are imported for pytest to find; tests name them as parameters.
from tests.test_reminder_jobs import Inbox, jobs_gateway, smtp_server  # noqa: F401


async def test_an_email_message_from_a_template_and_from_plain_text_is_sent(
    jobs_gateway: Gateway, smtp_server: Inbox
) -> None:
    gw = jobs_gateway
    centre = await gw.add_key("command_center")
    code, body, _ = await gw.request(
        "POST",
        "/v1/messages",
        centre,
        {
            "to": "zhang.san@example.cn",
            "channel": "email",
            "template": "licence_review_due",
            "params": {"name": "张三", "due_date": "2026年12月31日"},
        },
    )
    assert code == 202, body
    assert (body["channel"], body["to"], body["status"]) == ("email", "z***@example.cn", "queued")
    notice = await gw.wait_status(body["id"], "sent")
    assert [h["status"] for h in notice["history"]] == ["queued", "sent"]
    code, body, _ = await gw.request(
        "POST",
        "/v1/messages",
        centre,
        {"to": "li.si@example.cn", "channel": "email", "text": "明天北京路封闭施工。"},
    )
    assert code == 202, body
    await gw.wait_status(body["id"], "sent")
    first, second = smtp_server.messages
    assert first["Subject"] == "驾驶证到期换证提醒"
    assert "张三您好" in first.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert second["Subject"] == "交警提示"
    assert [e.rcpt_tos for e in smtp_server.envelopes] == [
        ["zhang.san@example.cn"],
        ["li.si@example.cn"],
    ]
    code, body, _ = await gw.request(
        "POST", "/v1/messages", centre, {"to": "13800138000", "channel": "email", "text": "x"}
    )
    assert (code, body["error"]["code"]) == (422, "invalid_email")
    code, body, _ = await gw.request(
        "POST",
        "/v1/messages",
        centre,
        {"to": "a@example.cn", "channel": "email", "template": "accident_injury", "params": {}},
    )
    assert (code, body["error"]["code"]) == (422, "channel_not_supported")
    assert body["error"]["details"]["allowed"] == ["sms"]


async def test_a_voice_message_is_a_call_read_out_to_the_phone(voice_gateway: Gateway) -> None:
    gw = voice_gateway
    centre = await gw.add_key("command_center")
    code, body, _ = await gw.request(
        "POST",
        "/v1/messages",
        centre,
        {
            "to": "13800138000",
            "channel": "voice",
            "template": "traffic_conditions",
            "params": {"road": "人民路", "period": "明天", "detour": "北京路"},
        },
    )
    assert code == 202, body
    assert (body["channel"], body["to"]) == ("voice", "138****8000")
    notice = await gw.wait_status(body["id"], "listened", within=40)
    assert [h["status"] for h in notice["history"]] == [
        "queued",
        "dialing",
        "answered",
        "listened",
    ]
    assert notice["template"] == "traffic_conditions"


async def test_voice_on_a_gateway_without_calls_names_the_channels_it_has(
    gateway: Gateway, smsc: SmscSimulator
) -> None:
    centre = await gateway.add_key("command_center")
    code, body, _ = await gateway.request(
        "POST", "/v1/messages", centre, {"to": "13800138000", "channel": "voice", "text": "x"}
    )
    assert (code, body["error"]["code"]) == (422, "channel_unavailable")
    assert body["error"]["details"]["allowed"] == ["sms", "email"]
    assert smsc.submits == 0
