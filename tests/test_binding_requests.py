"""Binding requests on the website path: the SMS code, verify, attempts, expiry, audit."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest

from gateway.sms.simulator import SmscSimulator
from tests.conftest import Gateway

PHONE = "13812345678"


async def open_request(
    gw: Gateway, smsc: SmscSimulator, plate: str, phone: str = PHONE, agent: Any = None
) -> tuple[str, str, dict[str, Any]]:
    """A new request, and the code as it reached the phone through the SMSC."""
    agent = agent or await gw.add_key("binding_agent")
    before = len(smsc.to([phone]))
    code, body, _ = await gw.request(
        "POST",
        "/v1/binding-requests",
        agent,
        {"plate": plate, "phone": phone, "agent_id": "seat-07"},
    )
    assert code == 201, body
    async with asyncio.timeout(10):
        while len(smsc.to([phone])) <= before:
            await asyncio.sleep(0.02)
    text = smsc.to([phone])[-1].text
    assert body["ref"] in text
    match = re.search(r"验证码(\d{6})", text)
    assert match, text
    return body["ref"], match.group(1), body


async def audit_events(gw: Gateway, plate: str) -> list[str]:
    code, body, _ = await gw.request("GET", f"/v1/admin/binding-audit?plate={plate}", gw._admin)
    assert code == 200, body
    return [e["event"] for e in reversed(body["entries"])]


@pytest.mark.sentinel
@pytest.mark.cluster
async def test_the_right_code_binds_and_the_code_is_never_shown_to_the_agent(
    gateway: Gateway, smsc: SmscSimulator
) -> None:
    gateway._admin = await gateway.add_key("admin")
    agent = await gateway.add_key("binding_agent")
    ref, sms_code, created = await open_request(gateway, smsc, "云A1B234", agent=agent)
    assert created["status"] == "pending"
    assert created["phone"] == "138****5678"
    assert created["attempts_left"] == 3
    assert sms_code not in str(created)
    # The agent may follow the code SMS, but its stored text has the code blanked out.
    code, notice, _ = await gateway.request(
        "GET", f"/v1/notices/{created['code_notice_id']}", agent
    )
    assert code == 200
    assert notice["kind"] == "binding_code"
    stored = await gateway.redis.hget(gateway.keys.notice(created["code_notice_id"]), "text")
    assert sms_code not in stored
    assert "******" in stored

    code, body, _ = await gateway.request(
        "POST", f"/v1/binding-requests/{ref}/verify", agent, {"code": sms_code}
    )
    assert code == 200, body
    assert body["status"] == "confirmed"
    assert body["replaced"] is False
    assert body["binding"]["phone"] == "138****5678"
    assert body["binding"]["channel"] == "website"
    code, binding, _ = await gateway.request("GET", "/v1/bindings/云A1B234", agent)
    assert code == 200
    assert binding["ref"] == ref
    # A code works once.
    code, body, _ = await gateway.request(
        "POST", f"/v1/binding-requests/{ref}/verify", agent, {"code": sms_code}
    )
    assert (code, body["error"]["code"]) == (409, "request_closed")
    events = await audit_events(gateway, "云A1B234")
    assert events[:3] == ["requested", "confirmed", "created"]
    assert events[-1] == "verify_refused"


async def test_three_wrong_codes_fail_the_request(gateway: Gateway, smsc: SmscSimulator) -> None:
    gateway._admin = await gateway.add_key("admin")
    agent = await gateway.add_key("binding_agent")
    ref, sms_code, _ = await open_request(gateway, smsc, "云A2C345", agent=agent)
    wrong = f"{(int(sms_code) + 1) % 1_000_000:06d}"
    lefts = []
    for _ in range(3):
        code, body, _ = await gateway.request(
            "POST", f"/v1/binding-requests/{ref}/verify", agent, {"code": wrong}
        )
        assert (code, body["error"]["code"]) == (422, "wrong_code")
        lefts.append(body["error"]["details"]["attempts_left"])
    assert lefts == [2, 1, 0]
    code, body, _ = await gateway.request(
        "POST", f"/v1/binding-requests/{ref}/verify", agent, {"code": sms_code}
    )
    assert (code, body["error"]["details"]["status"]) == (409, "failed")
    code, _, _ = await gateway.request("GET", "/v1/bindings/云A2C345", agent)
    assert code == 404
    events = await audit_events(gateway, "云A2C345")
    assert events == ["requested", "code_wrong", "code_wrong", "failed", "verify_refused"]


async def test_an_expired_request_is_refused(gateway: Gateway, smsc: SmscSimulator) -> None:
    gateway._admin = await gateway.add_key("admin")
    agent = await gateway.add_key("binding_agent")
    ref, sms_code, _ = await open_request(gateway, smsc, "云A3D456", agent=agent)
    # Ten minutes pass.
    await gateway.redis.hset(
        gateway.keys.binding_request(ref), "expires_ms", int(time.time() * 1000) - 1
    )
    code, body, _ = await gateway.request("GET", f"/v1/binding-requests/{ref}", agent)
    assert body["status"] == "expired"
    code, body, _ = await gateway.request(
        "POST", f"/v1/binding-requests/{ref}/verify", agent, {"code": sms_code}
    )
    assert (code, body["error"]["code"]) == (410, "request_expired")
    code, _, _ = await gateway.request("GET", "/v1/bindings/云A3D456", agent)
    assert code == 404
    assert (await audit_events(gateway, "云A3D456"))[-1] == "expired"


async def test_bad_input_changes_nothing_and_is_on_record(
    gateway: Gateway, smsc: SmscSimulator
) -> None:
    gateway._admin = await gateway.add_key("admin")
    agent = await gateway.add_key("binding_agent")
    ref, sms_code, _ = await open_request(gateway, smsc, "云A4E567", agent=agent)
    for body_in, status, err in [
        ({"code": "12ab56"}, 422, "invalid_code"),
        ({"code": "1234567"}, 422, "invalid_code"),
        ({"code": 123456}, 422, "validation_error"),
        ({}, 422, "validation_error"),
    ]:
        code, body, _ = await gateway.request(
            "POST", f"/v1/binding-requests/{ref}/verify", agent, body_in
        )
        assert (code, body["error"]["code"]) == (status, err), body
    code, body, _ = await gateway.request(
        "POST", f"/v1/binding-requests/{ref}/verify", agent, data="{not json"
    )
    assert (code, body["error"]["code"]) == (400, "malformed_json")
    # Unknown and malformed references.
    for bad_ref in ("99999999", "abc", "1" * 40):
        code, body, _ = await gateway.request(
            "POST", f"/v1/binding-requests/{bad_ref}/verify", agent, {"code": "123456"}
        )
        assert (code, body["error"]["code"]) == (404, "unknown_reference")
    # The request is as it was: pending, no attempt spent; the right code still works.
    code, body, _ = await gateway.request("GET", f"/v1/binding-requests/{ref}", agent)
    assert (body["status"], body["attempts"], body["attempts_left"]) == ("pending", 0, 3)
    events = await audit_events(gateway, "云A4E567")
    assert events.count("verify_refused") == 5
    code, all_entries, _ = await gateway.request(
        "GET", "/v1/admin/binding-audit?limit=1000", gateway._admin
    )
    reasons = [e.get("reason") for e in all_entries["entries"] if e.get("ref") in ("99999999",)]
    assert reasons == ["unknown_reference"]
    code, body, _ = await gateway.request(
        "POST", f"/v1/binding-requests/{ref}/verify", agent, {"code": sms_code}
    )
    assert code == 200
    assert body["status"] == "confirmed"


async def test_request_input_and_limits(gateway: Gateway, smsc: SmscSimulator) -> None:
    agent = await gateway.add_key("binding_agent")
    gateway._admin = await gateway.add_key("admin")
    for body_in, err in [
        ({"plate": "XX12345", "phone": PHONE}, "invalid_plate"),
        ({"plate": "云A12345", "phone": "12345"}, "invalid_phone"),
        ({"plate": "云A12345", "phone": PHONE, "extra": 1}, "validation_error"),
    ]:
        code, body, _ = await gateway.request("POST", "/v1/binding-requests", agent, body_in)
        assert (code, body["error"]["code"]) == (422, err)
    # Five requests per phone per day; the sixth sends no SMS.
    for i in range(5):
        await open_request(gateway, smsc, f"云B1000{i}", phone="13900001111", agent=agent)
    code, body, _ = await gateway.request(
        "POST", "/v1/binding-requests", agent, {"plate": "云B10009", "phone": "13900001111"}
    )
    assert (code, body["error"]["code"]) == (429, "too_many_binding_requests")
    await asyncio.sleep(0.3)
    assert len(smsc.to(["13900001111"])) == 5
    assert (await audit_events(gateway, "云B10009")) == ["request_refused"]
    # Cancelled requests cannot be verified; only admins bind or unbind without a code.
    ref, sms_code, _ = await open_request(gateway, smsc, "云B20000", phone=PHONE, agent=agent)
    code, body, _ = await gateway.request("POST", f"/v1/binding-requests/{ref}/cancel", agent)
    assert (code, body["status"]) == (200, "cancelled")
    code, body, _ = await gateway.request(
        "POST", f"/v1/binding-requests/{ref}/verify", agent, {"code": sms_code}
    )
    assert code == 409
    code, body, _ = await gateway.request(
        "POST", "/v1/bindings", agent, {"plate": "云B20000", "phone": PHONE}
    )
    assert code == 403
    code, body, _ = await gateway.request("DELETE", "/v1/bindings/云B20000", agent)
    assert code == 403
    code, body, _ = await gateway.request("GET", "/v1/admin/binding-audit", agent)
    assert code == 403


async def test_a_second_verified_request_replaces_the_binding(
    gateway: Gateway, smsc: SmscSimulator
) -> None:
    gateway._admin = await gateway.add_key("admin")
    agent = await gateway.add_key("binding_agent")
    for phone, replaced in (("13811110000", False), ("13922220000", True)):
        ref, sms_code, _ = await open_request(gateway, smsc, "云A5F678", phone=phone, agent=agent)
        code, body, _ = await gateway.request(
            "POST", f"/v1/binding-requests/{ref}/verify", agent, {"code": sms_code}
        )
        assert code == 200
        assert body["replaced"] is replaced
    code, binding, _ = await gateway.request("GET", "/v1/bindings/云A5F678", agent)
    assert binding["phone"] == "139****0000"
    code, body, _ = await gateway.request(
        "GET", "/v1/admin/binding-audit?plate=云A5F678", gateway._admin
    )
    newest = body["entries"][0]
    assert (newest["event"], newest["phone"], newest["previous_phone"]) == (
        "replaced",
        "139****0000",
        "138****0000",
    )
    assert newest["channel"] == "website"


async def test_every_audit_entry_has_a_time_and_masked_numbers_unless_unmasked_is_asked(
    gateway: Gateway, smsc: SmscSimulator
) -> None:
    agent = await gateway.add_key("binding_agent")
    admin = await gateway.add_key("admin")
    ref, sms_code, _ = await open_request(gateway, smsc, "云A6G789", agent=agent)
    wrong = f"{(int(sms_code) + 1) % 1_000_000:06d}"
    for body_in in ({"code": "12"}, {"code": wrong}, {"code": sms_code}):
        await gateway.request("POST", f"/v1/binding-requests/{ref}/verify", agent, body_in)
    await gateway.request("POST", "/v1/binding-requests/99999999/verify", agent, {"code": "1"})
    code, body, _ = await gateway.request("GET", "/v1/admin/binding-audit?plate=云A6G789", admin)
    assert code == 200
    entries = body["entries"]
    assert [e["event"] for e in reversed(entries)] == [
        "requested",
        "verify_refused",
        "code_wrong",
        "confirmed",
        "created",
    ]
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
    _, everything, _ = await gateway.request("GET", "/v1/admin/binding-audit?limit=1000", admin)
    assert all(stamp.match(e.get("at", "")) for e in everything["entries"]), everything
    assert PHONE not in str(everything)
    assert entries[0]["phone"] == "138****5678"
    # Whole numbers only on asking, and the asking is on the trail itself.
    code, whole, _ = await gateway.request(
        "GET", "/v1/admin/binding-audit?plate=云A6G789&unmasked=true", admin
    )
    assert whole["entries"][0]["phone"] == PHONE
    _, after, _ = await gateway.request("GET", "/v1/admin/binding-audit?plate=云A6G789", admin)
    read = after["entries"][0]
    assert (read["event"], read["key_id"], read["limit"]) == (
        "audit_read_unmasked",
        admin.key.id,
        100,
    )
    assert stamp.match(read["at"])
    code, err, _ = await gateway.request("GET", "/v1/admin/binding-audit?unmasked=yes", admin)
    assert (code, err["error"]["code"]) == (422, "invalid_unmasked")
    assert (await gateway.request("GET", "/v1/admin/binding-audit?unmasked=true", agent))[0] == 403
