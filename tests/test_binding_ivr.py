"""The binding line with real Asterisk: SIPp calls in over the carrier trunk and keys DTMF.

Timing: SIPp cannot hear, so each key is sent while the IVR plays a prompt that the key
interrupts or waits for input (see tests/sipp_caller.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.sms.simulator import SmscSimulator
from tests.conftest import Gateway, running_voice_gateway
from tests.sipp_caller import ExpectHangup, HangUp, Keys, Pause, SippCaller, Step
from tests.sipp_phone import SippPhone
from tests.test_binding_requests import audit_events, open_request

CALLER = "13812345678"
OTHER = "13900009999"


@pytest.fixture
async def ivr_gateway(
    redis_server: str, prefix: str, smsc: SmscSimulator, asterisk: Any, tmp_path: Path
) -> AsyncIterator[Gateway]:
    async with running_voice_gateway(
        redis_server, prefix, smsc, asterisk, tmp_path, GATEWAY_RING_SECONDS="10"
    ) as gw:
        yield gw


async def call(asterisk: Any, tmp_path: Path, caller: str, dialled: str, steps: list[Step]) -> None:
    sipp = SippCaller(
        f"127.0.0.1:{asterisk.env['GATEWAY_SIP_BIND_PORT']}", caller, dialled, steps, tmp_path
    )
    try:
        rc = await asyncio.to_thread(sipp.finish, 90)
    finally:
        sipp.stop()
    assert rc == 0, f"the call did not go as scripted:\n{sipp.errors()}"


async def request_state(gw: Gateway, ref: str) -> dict[str, str]:
    return dict(await gw.redis.hgetall(gw.keys.binding_request(ref)))


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def test_caller_with_the_right_code_binds_and_parking_notices_ring_that_phone(
    ivr_gateway: Gateway, smsc: SmscSimulator, asterisk: Any, tmp_path: Path
) -> None:
    gw = ivr_gateway
    ref, code, _ = await open_request(gw, smsc, "云C12345", phone=CALLER)
    await call(
        asterisk,
        tmp_path,
        CALLER,
        ref,
        [Pause(2500), Keys("1"), Pause(1500), Keys(code), Pause(2500), Keys("1"), ExpectHangup()],
    )
    state = await request_state(gw, ref)
    assert (state["status"], state["confirmed_channel"]) == ("confirmed", "ivr")
    binding = await gw.redis.hgetall(gw.keys.binding("云C12345"))
    assert (binding["phone"], binding["channel"], binding["caller_id"]) == (CALLER, "ivr", CALLER)
    events = await audit_events(gw, "云C12345")
    assert events == ["requested", "code_verified", "confirmed", "created"]

    # A parking notice for the plate now rings the phone just bound (SIPp answers, presses 1).
    phone = SippPhone(
        "answer_dtmf",
        int(asterisk.env["GATEWAY_SIP_TRUNK_PORT"]),
        f"127.0.0.1:{asterisk.env['GATEWAY_SIP_BIND_PORT']}",
        1,
        tmp_path,
        "1",
    )
    try:
        officer = await gw.add_key("officer")
        status, body, _ = await gw.request(
            "POST",
            "/v1/parking-notices",
            officer,
            {
                "plate": "云C12345",
                "location": "白塔路",
                "move_within_minutes": 10,
                "officer_id": "K2",
            },
        )
        assert status == 202
        assert body["to"] == "138****5678"
        await gw.wait_status(body["id"], "acknowledged", within=40)
        assert await asyncio.to_thread(phone.finish, 30) == 0
    finally:
        phone.stop()


async def test_three_wrong_codes_fail_the_request(
    ivr_gateway: Gateway, smsc: SmscSimulator, asterisk: Any, tmp_path: Path
) -> None:
    gw = ivr_gateway
    ref, code, _ = await open_request(gw, smsc, "云C23456", phone=CALLER)
    bad = wrong(code)
    steps: list[Step] = [Pause(2500), Keys("1"), Pause(1500)]
    for _ in range(3):
        steps += [Keys(bad), Pause(2000)]
    await call(asterisk, tmp_path, CALLER, ref, [*steps[:-1], ExpectHangup()])
    state = await request_state(gw, ref)
    assert (state["status"], state["attempts"]) == ("failed", "3")
    assert not await gw.redis.exists(gw.keys.binding("云C23456"))
    events = await audit_events(gw, "云C23456")
    assert events == ["requested", "code_wrong", "code_wrong", "failed"]


async def test_expired_request_is_refused_on_the_line(
    ivr_gateway: Gateway, smsc: SmscSimulator, asterisk: Any, tmp_path: Path
) -> None:
    gw = ivr_gateway
    ref, _, _ = await open_request(gw, smsc, "云C34567", phone=CALLER)
    await gw.redis.hset(gw.keys.binding_request(ref), "expires_ms", 1)  # its ten minutes are up
    await call(asterisk, tmp_path, CALLER, ref, [ExpectHangup()])
    assert not await gw.redis.exists(gw.keys.binding("云C34567"))
    entries = (await gw.request("GET", "/v1/admin/binding-audit?plate=云C34567", gw._admin))[1]
    refused = entries["entries"][0]
    assert (refused["event"], refused["reason"], refused["caller_id"]) == (
        "ivr_refused",
        "expired",
        "138****5678",
    )


async def test_removal_only_from_the_bound_phone(
    ivr_gateway: Gateway, smsc: SmscSimulator, asterisk: Any, tmp_path: Path
) -> None:
    gw = ivr_gateway
    plate = "云C45678"
    code, _, _ = await gw.request(
        "POST", "/v1/bindings", gw._admin, {"plate": plate, "phone": OTHER}
    )
    assert code == 201
    ref, _, _ = await open_request(gw, smsc, plate, phone=CALLER)
    # From a phone that is not the bound one: refused; the caller then hangs up mid-menu.
    await call(asterisk, tmp_path, CALLER, ref, [Pause(2500), Keys("3"), Pause(2000), HangUp()])
    assert (await gw.redis.hget(gw.keys.binding(plate), "phone")) == OTHER
    state = await request_state(gw, ref)
    assert (state["status"], state["attempts"]) == ("pending", "0")
    async with asyncio.timeout(10):
        while "ivr_abandoned" not in (events := await audit_events(gw, plate)):
            await asyncio.sleep(0.1)
    assert events[-2:] == ["removal_refused", "ivr_abandoned"]
    # From the bound phone: removed; the caller then cancels the request with 2.
    await call(
        asterisk,
        tmp_path,
        OTHER,
        ref,
        [Pause(2500), Keys("3"), Pause(2500), Keys("2"), ExpectHangup()],
    )
    assert not await gw.redis.exists(gw.keys.binding(plate))
    assert (await request_state(gw, ref))["status"] == "cancelled"
    assert (await audit_events(gw, plate))[-2:] == ["removed", "cancelled"]


async def test_unknown_reference_then_keyed_reference(
    ivr_gateway: Gateway, smsc: SmscSimulator, asterisk: Any, tmp_path: Path
) -> None:
    """Dialled on the line's own number, the caller keys the reference; a wrong one is
    refused and asked again; non-digits (the * key) spend nothing."""
    gw = ivr_gateway
    ref, _, _ = await open_request(gw, smsc, "云C56789", phone=CALLER)
    await call(
        asterisk,
        tmp_path,
        CALLER,
        "12122",
        [
            Pause(1500),
            Keys("99999999"),
            Pause(3500),
            Keys(ref),
            Pause(2500),
            Keys("1"),
            Pause(1500),
            Keys("12*#"),  # '#' ends the input: "12*" is not a code
            Pause(2500),
            HangUp(),
        ],
    )
    state = await request_state(gw, ref)
    assert (state["status"], state["attempts"]) == ("pending", "0")
    for _ in range(100):
        if "ivr_abandoned" in (events := await audit_events(gw, "云C56789")):
            break
        await asyncio.sleep(0.1)
    assert events == ["requested", "ivr_bad_input", "ivr_abandoned"], (
        await gw.request("GET", "/v1/admin/binding-audit?limit=50", gw._admin)
    )[1]["entries"]
    _, body, _ = await gw.request("GET", "/v1/admin/binding-audit?limit=50", gw._admin)
    mine = [e for e in body["entries"] if e.get("caller_id") == "138****5678"]
    assert [(e["event"], e.get("reason")) for e in mine if e.get("ref") == "99999999"] == [
        ("ivr_refused", "unknown_reference")
    ]
    abandoned = next(e for e in mine if e["event"] == "ivr_abandoned")
    assert (abandoned["step"], abandoned["ref"]) == ("code", ref)


AGI_SECRET = "local-agi-secret"  # the shipped default the dialplan hands binding calls


async def fake_asterisk(
    port: int, header: list[str], replies: list[str], token: str | None = AGI_SECRET
) -> list[str]:
    """Speak FastAGI to the gateway as Asterisk would, answering each command as scripted;
    returns the commands the flow sent. ``GET VARIABLE "AGI_TOKEN"`` is answered with
    ``token`` (what the dialplan's [from-carrier] sets; None: a forged session that does not
    know it) and is not among the commands returned."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(("\n".join(header) + "\n\n").encode())
        commands: list[str] = []
        script = iter(replies)
        while True:
            line = await asyncio.wait_for(reader.readline(), 15)
            if not line:
                return commands
            command = line.decode().strip()
            if command == 'GET VARIABLE "AGI_TOKEN"':
                writer.write(f"200 result=1 ({token})\n".encode() if token else b"200 result=0\n")
                continue
            commands.append(command)
            reply = next(script, None)
            if reply is None:
                break
            writer.write(reply.encode() + b"\n")
            await writer.drain()
        assert await asyncio.wait_for(reader.read(), 15) == b"", "the flow should end here"
        return commands
    finally:
        writer.close()


def agi_header(flow: str, extension: str, callerid: str = CALLER) -> list[str]:
    return [
        f"agi_network_script: {flow}",
        f"agi_request: agi://127.0.0.1/{flow}",
        "agi_channel: PJSIP/carrier-00000001",
        f"agi_callerid: {callerid}",
        f"agi_extension: {extension}",
        "agi_context: from-carrier",
    ]


async def test_garbage_on_the_agi_socket_leaves_the_request_intact(
    ivr_gateway: Gateway, smsc: SmscSimulator
) -> None:
    gw = ivr_gateway
    port = gw.settings.agi.agi_port
    ref, code, _ = await open_request(gw, smsc, "云C67890", phone=CALLER)

    # Garbage instead of an answer to the first prompt.
    commands = await fake_asterisk(port, agi_header("binding", ref), ["\x00\xffgarbage; rm -rf /"])
    assert commands[0].startswith("STREAM FILE ")
    # Not an AGI header at all, then an oversized line.
    for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"agi_x: " + b"A" * 100_000 + b"\n"):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(junk)
        # Closed with our junk unread, the connection may end in a reset: a close too.
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(r.read(), 15) == b""
        w.close()
    # Non-digits where the reference goes, three times; then the flow says goodbye.
    commands = await fake_asterisk(
        port,
        agi_header("binding", "abc"),
        ["200 result=12ab", "200 result=*#", "200 result= (timeout)", "200 result=0 endpos=8000"],
    )
    assert [c.split()[0] + " " + c.split()[1] for c in commands] == [
        "GET DATA",
        "GET DATA",
        "GET DATA",
        "STREAM FILE",
    ]

    state = await request_state(gw, ref)
    assert (state["status"], state["attempts"]) == ("pending", "0")
    async with asyncio.timeout(10):
        while True:
            _, body, _ = await gw.request("GET", "/v1/admin/binding-audit?limit=50", gw._admin)
            events = [(e["event"], e.get("step"), e.get("reason")) for e in body["entries"]]
            if sum(e[0] == "ivr_session_refused" for e in events) == 2:
                break
            await asyncio.sleep(0.1)
    assert ("ivr_abandoned", "menu", "agi_error") in events
    assert [e for e in events if e[0] == "ivr_bad_input"] == [
        ("ivr_bad_input", "reference", None)
    ] * 3
    # The request still works: the website path binds with the same code.
    status, body, _ = await gw.request(
        "POST", f"/v1/binding-requests/{ref}/verify", gw._admin, {"code": code}
    )
    assert (status, body["status"]) == (200, "confirmed")


async def test_a_forged_binding_session_without_the_dialplans_token_changes_nothing(
    ivr_gateway: Gateway, smsc: SmscSimulator
) -> None:
    """Someone who reaches the FastAGI port claims the bound phone's caller id and presses 3
    (remove the binding): without the token [from-carrier] hands its calls, refused."""
    gw = ivr_gateway
    plate = "云C99887"
    code, _, _ = await gw.request(
        "POST", "/v1/bindings", gw._admin, {"plate": plate, "phone": OTHER}
    )
    assert code == 201
    ref, _, _ = await open_request(gw, smsc, plate, phone=CALLER)
    for token in (None, "local-agi-secreX"):
        commands = await fake_asterisk(
            gw.settings.agi.agi_port,
            agi_header("binding", ref, callerid=OTHER),
            ["200 result=51"],
            token=token,
        )
        assert commands == []  # not one prompt played
    assert (await gw.redis.hget(gw.keys.binding(plate), "phone")) == OTHER
    async with asyncio.timeout(10):
        while True:
            _, body, _ = await gw.request("GET", "/v1/admin/binding-audit?limit=20", gw._admin)
            refused = [e for e in body["entries"] if e.get("reason") == "invalid_token"]
            if len(refused) == 2:
                break
            await asyncio.sleep(0.1)
    assert {e["event"] for e in refused} == {"ivr_session_refused"}


async def test_a_forged_parking_session_for_a_queued_notice_is_refused(
    ivr_gateway: Gateway, smsc: SmscSimulator
) -> None:
    """A FastAGI session naming a notice that was never dialled, pressing 2 ("not my car"):
    no call of this worker is in progress for it, so the notice and the clone list stay."""
    gw = ivr_gateway
    notice_id = "ntc_forged0000000000"
    await gw.redis.hset(
        gw.keys.notice(notice_id),
        mapping={"id": notice_id, "status": "queued", "kind": "parking_notice", "plate": "云A1"},
    )
    header = [
        "agi_network_script: parking",
        "agi_request: agi://127.0.0.1/parking",
        "agi_channel: Local/1@sink-00000001;2",
        "agi_context: notice-call",
    ]
    replies = [f"200 result=1 ({notice_id})", "200 result=0", "200 result=0", "200 result=0"]
    commands = await fake_asterisk(
        gw.settings.agi.agi_port, header, [*replies, "200 result=50"], token="guessed"
    )
    assert commands[-1].startswith("WAIT FOR DIGIT")  # the flow ran to the digit
    async with asyncio.timeout(10):
        while True:
            _, body, _ = await gw.request("GET", "/v1/admin/binding-audit?limit=20", gw._admin)
            if any(e["event"] == "agi_result_refused" for e in body["entries"]):
                break
            await asyncio.sleep(0.1)
    assert await gw.redis.hget(gw.keys.notice(notice_id), "status") == "queued"
    assert not await gw.redis.hexists(gw.keys.suspected_clones(0), "云A1")
