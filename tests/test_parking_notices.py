"""Parking notices end to end on a real Asterisk: API -> call -> DTMF answer -> status."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.receipts.signing import verify
from gateway.sms.simulator import SmscSimulator
from tests.conftest import Gateway, Receiver


async def _bind(gw: Gateway, plate: str, phone: str) -> None:
    agent = await gw.add_key("admin")  # binding without a code is for admins
    code, body, _ = await gw.request(
        "POST", "/v1/bindings", agent, {"plate": plate, "phone": phone, "agent_id": "seat-7"}
    )
    assert code in (200, 201), body


def _notice(plate: str, **extra: Any) -> dict[str, Any]:
    return {
        "plate": plate,
        "location": "北京路",
        "move_within_minutes": 10,
        "officer_id": "K1234",
        **extra,
    }


@pytest.mark.sentinel
@pytest.mark.cluster
async def test_owner_pressing_1_acknowledges(voice_gateway: Gateway, receiver: Receiver) -> None:
    gw = voice_gateway
    await _bind(gw, "云a12345", "13800138001")  # the sink callee presses the last digit: 1
    officer = await gw.add_key("officer", [receiver.allow])
    code, body, _ = await gw.request(
        "POST", "/v1/parking-notices", officer, _notice("云A·12345", callback_url=receiver.url)
    )
    assert code == 202, body
    assert (body["channel"], body["warnings_so_far"], body["penalty_if_not_moved"]) == (
        "voice",
        0,
        False,
    )
    assert body["to"] == "138****8001"
    notice = await gw.wait_status(body["id"], "acknowledged", within=30)
    assert [h["status"] for h in notice["history"]] == [
        "queued",
        "dialing",
        "answered",
        "acknowledged",
    ]
    await receiver.wait_for(body["id"], "acknowledged")
    await _slots_given_back(gw)


async def _slots_given_back(gw: Gateway) -> None:
    """The call's slot under GATEWAY_MAX_CALLS is free again once its flow has ended."""
    async with asyncio.timeout(5):
        while await gw.redis.zcard(gw.keys.active_calls):
            await asyncio.sleep(0.05)


async def test_owner_pressing_2_disputes_and_flags_a_cloned_plate(
    voice_gateway: Gateway, receiver: Receiver
) -> None:
    gw = voice_gateway
    centre = await gw.add_key("command_center", [receiver.allow], events_url=receiver.url)
    await _bind(gw, "云B54321", "13800138002")
    officer = await gw.add_key("officer")
    _, body, _ = await gw.request("POST", "/v1/parking-notices", officer, _notice("云B54321"))
    await gw.wait_status(body["id"], "disputed", within=30)
    await _slots_given_back(gw)
    cc = await gw.add_key("command_center")
    code, clones, _ = await gw.request("GET", "/v1/suspected-cloned-plates", cc)
    assert code == 200
    assert [(i["plate"], i["last_notice"]) for i in clones["items"]] == [("云B54321", body["id"])]
    async with asyncio.timeout(15):
        while not any(c["body"]["kind"] == "suspected_cloned_plate" for c in receiver.calls):
            receiver.event.clear()
            await receiver.event.wait()
    (call,) = [c for c in receiver.calls if c["body"]["kind"] == "suspected_cloned_plate"]
    assert call["body"]["detail"]["plate"] == "云B54321"
    h = call["headers"]
    assert verify(
        centre.callback_secret, h["X-Gateway-Timestamp"], call["raw"], h["X-Gateway-Signature"]
    )


async def test_same_idempotency_key_calls_once_and_notices_alone_are_no_strikes(
    voice_gateway: Gateway,
) -> None:
    gw = voice_gateway
    await _bind(gw, "云C11111", "13800138001")
    officer = await gw.add_key("officer")
    hdr = {"Idempotency-Key": "handheld-42"}
    first = await gw.request(
        "POST", "/v1/parking-notices", officer, _notice("云C11111"), headers=hdr
    )
    again = await gw.request(
        "POST", "/v1/parking-notices", officer, _notice("云C11111"), headers=hdr
    )
    assert first[0] == 202
    assert again[0] == 200
    assert again[1]["id"] == first[1]["id"]
    second = await gw.request("POST", "/v1/parking-notices", officer, _notice("云C11111"))
    third = await gw.request("POST", "/v1/parking-notices", officer, _notice("云C11111"))
    # Three calls and no warning slip: the third notice is no strike (the seed counts slips).
    for answer in (first[1], again[1], second[1], third[1]):
        assert (answer["warnings_so_far"], answer["penalty_if_not_moved"]) == (0, False)
    for nid in (first[1]["id"], second[1]["id"], third[1]["id"]):
        notice = await gw.wait_status(nid, "acknowledged", within=40)
        assert [h["status"] for h in notice["history"]].count("dialing") == 1


BAD: list[tuple[str, dict[str, Any], int, str]] = [
    ("bad plate", _notice("ZZ12345"), 422, "invalid_plate"),
    ("plate with I", _notice("云AI2345"), 422, "invalid_plate"),
    ("unknown plate", _notice("云Z99999"), 404, "no_binding"),
    ("zero minutes", _notice("云A12345", move_within_minutes=0), 422, "validation_error"),
    ("too many minutes", _notice("云A12345", move_within_minutes=600), 422, "validation_error"),
    ("minutes as text", _notice("云A12345", move_within_minutes="10"), 422, "validation_error"),
    (
        "missing officer",
        {k: v for k, v in _notice("云A12345").items() if k != "officer_id"},
        422,
        "validation_error",
    ),
]


@pytest.mark.parametrize(("name", "body", "status", "code"), BAD, ids=[b[0] for b in BAD])
async def test_bad_parking_notice_is_refused_without_a_call(
    gateway: Gateway, name: str, body: dict[str, Any], status: int, code: str
) -> None:
    await _bind(gateway, "云A12345", "13800138001")
    officer = await gateway.add_key("officer")
    got = await gateway.request("POST", "/v1/parking-notices", officer, body)
    assert (got[0], got[1]["error"]["code"]) == (status, code)
    assert await gateway.redis.xlen(gateway.keys.voice_queue(0)) == 0


async def test_wrong_role_cannot_send_parking_notices_or_bind(gateway: Gateway) -> None:
    cc = await gateway.add_key("command_center")
    assert (await gateway.request("POST", "/v1/parking-notices", cc, _notice("云A12345")))[0] == 403
    assert (
        await gateway.request(
            "POST", "/v1/bindings", cc, {"plate": "云A12345", "phone": "13800138000"}
        )
    )[0] == 403


async def test_quiet_hours_send_sms_instead(
    redis_server: str, prefix: str, smsc: SmscSimulator
) -> None:
    from tests.conftest import make_settings

    gw = Gateway(make_settings(redis_server, prefix, smsc.port, GATEWAY_QUIET_HOURS="00:00-23:59"))
    await gw.start()
    gw._admin = await gw.add_key("admin")
    try:
        await _bind(gw, "云D22222", "13800138009")
        officer = await gw.add_key("officer")
        _, body, _ = await gw.request("POST", "/v1/parking-notices", officer, _notice("云D22222"))
        assert body["channel"] == "sms"
        await gw.wait_status(body["id"], "delivered")
        assert "云D·22222" in smsc.to(["13800138009"])[0].text
    finally:
        await gw.close()


@pytest.mark.sentinel
@pytest.mark.cluster
async def test_bindings_round_trip(gateway: Gateway) -> None:
    admin = await gateway.add_key("admin")
    agent = await gateway.add_key("binding_agent")
    code, b, _ = await gateway.request(
        "POST", "/v1/bindings", admin, {"plate": "粤b12345f", "phone": "+8613912345678"}
    )
    assert code == 201
    assert (b["plate"], b["phone"], b["channel"]) == ("粤B12345F", "139****5678", "admin")
    code, got, _ = await gateway.request("GET", "/v1/bindings/粤B12345F", agent)
    assert code == 200
    assert got["created_by"] == admin.key.id
    assert (await gateway.request("DELETE", "/v1/bindings/粤B12345F", admin))[0] == 204
    assert (await gateway.request("GET", "/v1/bindings/粤B12345F", agent))[0] == 404
    audit = await gateway.redis.lrange(gateway.keys.binding_audit(0), 0, -1)
    assert [a.split('"event": "')[1].split('"')[0] for a in audit] == ["removed", "created"]


async def test_asterisk_restart_mid_run_then_later_notices_go_through(
    voice_gateway: Gateway, asterisk: Any
) -> None:
    gw = voice_gateway
    assert gw.workers is not None
    assert gw.workers.voice is not None
    await _bind(gw, "云H40000", "13800138001")
    officer = await gw.add_key("officer")
    await asyncio.to_thread(asterisk.restart)
    async with asyncio.timeout(40):
        while gw.workers.voice.ami.up:  # the gateway notices the link went down ...
            await asyncio.sleep(0.05)
        while not gw.workers.voice.ami.up:  # ... and logs back in after FullyBooted
            await asyncio.sleep(0.05)
    _, body, _ = await gw.request("POST", "/v1/parking-notices", officer, _notice("云H40000"))
    await gw.wait_status(body["id"], "acknowledged", within=30)
    code, ready, _ = await gw.request("GET", "/readyz")
    assert code == 200, ready
    assert ready["checks"]["ami"] is True


async def test_full_width_plate_typed_by_an_ime_binds_and_rings_the_owner(
    voice_gateway: Gateway,
) -> None:
    gw = voice_gateway
    admin = await gw.add_key("admin")
    code, b, _ = await gw.request(
        "POST", "/v1/bindings", admin, {"plate": "云ａ１２３４５", "phone": "13800138001"}
    )
    assert (code, b["plate"]) == (201, "云A12345"), b
    agent = await gw.add_key("binding_agent")
    code, got, _ = await gw.request("GET", "/v1/bindings/云Ａ－１２３４５", agent)
    assert (code, got["plate"]) == (200, "云A12345"), got
    officer = await gw.add_key("officer")
    code, body, _ = await gw.request(
        "POST", "/v1/parking-notices", officer, _notice("云Ａ·１２３４５")
    )
    assert (code, body["plate"]) == (202, "云A12345"), body
    await gw.wait_status(body["id"], "acknowledged", within=30)
