"""Accident reporters answer the procedure SMS by MO through the simulator: 1 settled, 2 send
an officer, anything else kept as written; the command centre hears of it, signed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.core.replies import Reply, classify
from gateway.receipts.signing import verify
from gateway.sms import mo_inbox
from gateway.sms.simulator import SmscSimulator
from tests.conftest import Gateway, Receiver, close_or_dump, make_settings

ALERT = {"accident_type": "minor_property_damage", "location": "北京路", "case_id": "A-7"}


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        ("1", Reply.SELF_SETTLED),
        (" 1 ", Reply.SELF_SETTLED),
        ("１", Reply.SELF_SETTLED),
        ("「１」", Reply.SELF_SETTLED),
        ("２", Reply.OFFICER_REQUESTED),
        ("2。", Reply.OFFICER_REQUESTED),
        ("12", Reply.OTHER),
        ("谢谢", Reply.OTHER),
        ("", Reply.OTHER),
    ],
)
def test_a_reply_is_read_after_width_and_wrapping_are_undone(text: str, reply: Reply) -> None:
    assert classify(text) is reply


async def _alert(gw: Gateway, key: Any, phone: str) -> str:
    code, body, _ = await gw.request(
        "POST", "/v1/accident-alerts", key, {**ALERT, "reporter_phone": phone}
    )
    assert code == 202, body
    await gw.wait_status(body["id"], "delivered")
    return str(body["id"])


async def _reply_of(gw: Gateway, notice_id: str, within: float = 10) -> dict[str, Any]:
    async with asyncio.timeout(within):
        while True:
            _, notice, _ = await gw.request("GET", f"/v1/notices/{notice_id}", gw._admin)
            if "reply" in notice:
                return dict(notice)
            await asyncio.sleep(0.05)


@pytest.mark.sentinel
@pytest.mark.cluster
async def test_replies_by_mo_mark_the_alert_and_reach_the_command_centre_signed(
    gateway: Gateway, smsc: SmscSimulator, receiver: Receiver
) -> None:
    centre = await gateway.add_key("command_center", [receiver.allow], events_url=receiver.url)
    cases = [
        ("13800138100", "1", "self_settled"),
        ("13800138101", "２", "officer_requested"),
        ("13800138102", "谢谢", "other"),
        ("13800138103", "请打13912345678", "other"),  # a number in a reply: masked when read
    ]
    for phone, text, reply in cases:
        alert = await _alert(gateway, centre, phone)
        assert await smsc.inject_mo("86" + phone, "12122", text)
        notice = await _reply_of(gateway, alert)
        shown = text.replace("13912345678", "139****5678")
        assert (notice["reply"], notice["reply_text"]) == (reply, shown)
        assert notice["history"][-1]["detail"]["event"] == "reply"
        assert notice["history"][-1]["detail"]["text"] == shown
        async with asyncio.timeout(10):
            while not [c for c in receiver.calls if c["body"]["id"] == alert]:
                receiver.event.clear()
                await receiver.event.wait()
        (call,) = [c for c in receiver.calls if c["body"]["id"] == alert]
        assert call["body"]["kind"] == "accident_reply"
        assert call["body"]["detail"]["reply"] == reply
        assert call["body"]["detail"]["from"] == phone[:3] + "****" + phone[-4:]
        h = call["headers"]
        assert verify(
            centre.callback_secret,
            h["X-Gateway-Timestamp"],
            call["raw"],
            h["X-Gateway-Signature"],
        )
    _, stats, _ = await gateway.request("GET", "/v1/stats", centre)
    row = stats["total"]["accidents"]["minor_property_damage"]
    assert {k: row[k] for k in ("alerts", "delivered", "self_settled", "officer_requested")} == {
        "alerts": 4,
        "delivered": 4,
        "self_settled": 1,
        "officer_requested": 1,
    }
    assert (row["other_reply"], row["no_reply"]) == (2, 0)


@pytest.fixture
async def short_window_gateway(
    redis_server: str, prefix: str, smsc: SmscSimulator
) -> AsyncIterator[Gateway]:
    gw = Gateway(
        make_settings(redis_server, prefix, smsc.port, GATEWAY_ACCIDENT_REPLY_HOURS="0.0003")
    )
    await gw.start()
    gw._admin = await gw.add_key("admin")
    async with asyncio.timeout(10):
        await smsc.wait_bound()
    yield gw
    await close_or_dump(gw)


async def test_a_reply_after_the_window_is_not_matched_and_goes_on_as_any_mo(
    short_window_gateway: Gateway, smsc: SmscSimulator
) -> None:
    gw = short_window_gateway  # the window is 1.08 s
    centre = await gw.add_key("command_center")
    alert = await _alert(gw, centre, "13800138200")
    await asyncio.sleep(1.5)
    assert await smsc.inject_mo("8613800138200", "12122", "1")
    assert await smsc.inject_mo("8613800138200", "12122", "退订")  # read after the "1"
    async with asyncio.timeout(10):
        while not await gw.redis.sismember(gw.keys.opt_outs(0), "13800138200"):
            await asyncio.sleep(0.05)
    _, notice, _ = await gw.request("GET", f"/v1/notices/{alert}", gw._admin)
    assert "reply" not in notice
    _, stats, _ = await gw.request("GET", "/v1/stats", centre)
    row = stats["total"]["accidents"]["minor_property_damage"]
    assert (row["alerts"], row["self_settled"], row["no_reply"]) == (1, 0, 1)


def _drop(inbox: Path, content: str) -> None:
    (inbox / "r.tmp").write_text(content, encoding="utf-8")
    (inbox / "r.tmp").rename(inbox / "r.sms")


async def test_the_local_stacks_mo_inbox_sends_a_reply_through_the_simulator(
    gateway: Gateway, smsc: SmscSimulator, tmp_path: Path
) -> None:
    centre = await gateway.add_key("command_center")
    alert = await _alert(gateway, centre, "13800138400")
    watcher = asyncio.create_task(mo_inbox.watch(smsc, tmp_path, "12122"))
    try:
        await asyncio.to_thread(_drop, tmp_path, "8613800138400\n「２」\n")
        notice = await _reply_of(gateway, alert)
        assert notice["reply"] == "officer_requested"
        assert not await asyncio.to_thread(lambda: list(tmp_path.iterdir()))
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
