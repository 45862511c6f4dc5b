"""What a copy of Redis gives away (issue 15, 3): not a pending binding code, not a way to
forge webhooks.

A binding code's stored hash is keyed by GATEWAY_CODE_PEPPER: the reference alone (the old
key, brute-forced in 1.8 s) does not reproduce it. Callback secrets are sealed with
GATEWAY_SECRET_KEY; a plain one from before sealing still signs, ``gateway keys
seal-secrets`` seals it, and ``gateway keys rotate-secret`` replaces a secret at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import sys
from typing import Any

import pytest

from gateway.core.binding_codes import code_hash, legacy_code_hash
from gateway.core.secret_box import SealedUnreadable, SecretBox
from gateway.receipts.signing import verify
from gateway.sms.simulator import SmscSimulator
from tests.conftest import Gateway, Receiver
from tests.test_binding_requests import open_request

ALERT = {
    "accident_type": "injury",
    "reporter_phone": "13800138000",
    "location": "北京路",
    "case_id": "A-1",
}


async def test_a_stored_code_hash_needs_the_pepper(gateway: Gateway, smsc: SmscSimulator) -> None:
    agent = await gateway.add_key("binding_agent")
    ref, code, _ = await open_request(gateway, smsc, "云A5E001", agent=agent)
    stored = await gateway.redis.hget(gateway.keys.binding_request(ref), "code_hash")
    pepper = gateway.settings.security.code_pepper.get_secret_value()
    assert stored == code_hash(ref, code, pepper)
    # What an attacker with Redis alone could compute, for every one of the million codes:
    assert stored != legacy_code_hash(ref, code)
    assert stored != "p1:" + hmac.new(ref.encode(), code.encode(), hashlib.sha256).hexdigest()
    assert code not in json.dumps(await gateway.redis.hgetall(gateway.keys.binding_request(ref)))
    status, body, _ = await gateway.request(
        "POST", f"/v1/binding-requests/{ref}/verify", agent, {"code": code}
    )
    assert (status, body["status"]) == (200, "confirmed")


async def test_a_request_pending_from_before_the_pepper_still_confirms(
    gateway: Gateway, smsc: SmscSimulator
) -> None:
    agent = await gateway.add_key("binding_agent")
    ref, code, _ = await open_request(gateway, smsc, "云A5E002", agent=agent)
    await gateway.redis.hset(  # as the previous version stored it
        gateway.keys.binding_request(ref), "code_hash", legacy_code_hash(ref, code)
    )
    status, body, _ = await gateway.request(
        "POST", f"/v1/binding-requests/{ref}/verify", agent, {"code": "000000"}
    )
    assert (status, body["error"]["code"]) == (422, "wrong_code")
    status, body, _ = await gateway.request(
        "POST", f"/v1/binding-requests/{ref}/verify", agent, {"code": code}
    )
    assert (status, body["status"]) == (200, "confirmed")


async def _cli(gw: Gateway, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "keys",
        *args,
        "--log-level",
        "WARNING",
        stdout=asyncio.subprocess.PIPE,
        env={
            **os.environ,
            "GATEWAY_REDIS_URL": gw.settings.redis.redis_url,
            "GATEWAY_REDIS_PREFIX": gw.settings.redis.redis_prefix,
        },
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, out
    return out.decode()


async def _signed_with(gw: Gateway, key: Any, receiver: Receiver) -> dict[str, Any]:
    code, body, _ = await gw.request(
        "POST", "/v1/accident-alerts", key, {**ALERT, "callback_url": receiver.url}
    )
    assert code == 202, body
    call = await receiver.wait_for(body["id"], "submitted")
    return dict(call)


def _valid(secret: str, call: dict[str, Any]) -> bool:
    h = call["headers"]
    return verify(secret, h["X-Gateway-Timestamp"], call["raw"], h["X-Gateway-Signature"])


async def test_callback_secrets_are_sealed_rotated_and_old_plain_ones_still_sign(
    gateway: Gateway, receiver: Receiver
) -> None:
    key = await gateway.add_key("command_center", [receiver.allow])
    h = await gateway.redis.hget(gateway.keys.api_key_index, key.key.id)
    stored = await gateway.redis.hget(gateway.keys.api_key(h), "callback_secret")
    assert stored.startswith("enc1:")
    assert key.callback_secret not in json.dumps(
        await gateway.redis.hgetall(gateway.keys.api_key(h))
    )
    assert _valid(key.callback_secret, await _signed_with(gateway, key, receiver))
    # Sealed to this key: moved onto another key's record, it does not open.
    box = SecretBox(gateway.settings.security.secret_key.get_secret_value())
    assert box.open(key.key.id, stored) == key.callback_secret
    other = await gateway.add_key("command_center", [receiver.allow])
    with pytest.raises(SealedUnreadable):
        box.open(other.key.id, stored)

    # A key from before sealing: its plain secret still signs; seal-secrets seals it.
    plain = "whsec_from-the-previous-version"
    await gateway.redis.hset(gateway.keys.api_key(h), "callback_secret", plain)
    await gateway.redis.publish(gateway.keys.api_key_events, h)  # as a change says
    assert _valid(plain, await _signed_with(gateway, key, receiver))
    assert "sealed 1 callback secret(s)" in await _cli(gateway, "seal-secrets")
    resealed = await gateway.redis.hget(gateway.keys.api_key(h), "callback_secret")
    assert resealed.startswith("enc1:")
    assert box.open(key.key.id, resealed) == plain

    # Rotation: the new secret is printed once and signs from then on.
    out = json.loads(await _cli(gateway, "rotate-secret", key.key.id, "--json"))
    fresh = out["callback_secret"]
    assert fresh.startswith("whsec_")
    assert fresh != plain
    call = await _signed_with(gateway, key, receiver)
    assert _valid(fresh, call)
    assert not _valid(plain, call)
