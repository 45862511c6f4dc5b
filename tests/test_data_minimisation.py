"""Personal data and access, minimised (issue 15, 9): numbers and emails masked in answers
(whole only with an admin's audited ``?unmasked=true``), a revoked key refused at once by
another API process, and one plate's owner not rung more than GATEWAY_PLATE_CALLS_PER_HOUR.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from gateway.store.apikeys import ApiKeyStore
from tests.conftest import Gateway, close_or_dump, free_port, make_settings


@pytest.fixture
async def api(redis_server: str, prefix: str) -> AsyncIterator[Gateway]:
    gw = Gateway(make_settings(redis_server, prefix, free_port(), GATEWAY_QUIET_HOURS=""))
    await gw.start(workers=False)
    gw._admin = await gw.add_key("admin")
    yield gw
    await close_or_dump(gw)


def _notice(plate: str) -> dict[str, object]:
    return {"plate": plate, "location": "北京路", "move_within_minutes": 10, "officer_id": "K1"}


async def _bind(gw: Gateway, plate: str, phone: str, email: str | None = None) -> None:
    body = {"plate": plate, "phone": phone, **({"email": email} if email else {})}
    code, answer, _ = await gw.request("POST", "/v1/bindings", gw._admin, body)
    assert code in (200, 201), answer


async def test_a_plate_is_notified_three_times_an_hour_at_most(api: Gateway) -> None:
    await _bind(api, "云A7P001", "13800138001")
    await _bind(api, "云A7P002", "13800138002")
    officer, another = await api.add_key("officer"), await api.add_key("officer")
    first = None
    for i in range(3):  # two officers reporting the same car
        code, body, _ = await api.request(
            "POST",
            "/v1/parking-notices",
            officer if i % 2 else another,
            _notice("云A7P001"),
            headers={"Idempotency-Key": "first"} if i == 0 else None,
        )
        assert code == 202, body
        first = first or body["id"]
    code, body, headers = await api.request(
        "POST", "/v1/parking-notices", officer, _notice("云A·7P001")
    )
    assert (code, body["error"]["code"]) == (429, "plate_rate_limited"), body
    assert 3500 < int(headers["Retry-After"]) <= 3601
    assert body["error"]["details"]["limit_per_hour"] == 3
    # A retry of an accepted request still gets its notice; another plate is not affected.
    code, body, _ = await api.request(
        "POST",
        "/v1/parking-notices",
        another,
        _notice("云A7P001"),
        headers={"Idempotency-Key": "first"},
    )
    assert (code, body["id"]) == (200, first)
    code, _, _ = await api.request("POST", "/v1/parking-notices", officer, _notice("云A7P002"))
    assert code == 202
    assert await api.redis.zcard(api.keys.plate_calls("云A7P001")) == 3


async def test_the_plate_limit_holds_under_concurrent_requests(api: Gateway) -> None:
    await _bind(api, "云A7P003", "13800138003")
    officer = await api.add_key("officer")
    answers = await asyncio.gather(
        *(
            api.request("POST", "/v1/parking-notices", officer, _notice("云A7P003"))
            for _ in range(12)
        )
    )
    codes = sorted(a[0] for a in answers)
    assert codes == [202] * 3 + [429] * 9
    members = await api.redis.zrange(api.keys.plate_calls("云A7P003"), 0, -1)
    assert sorted(members) == sorted(a[1]["id"] for a in answers if a[0] == 202)


async def test_numbers_and_emails_are_masked_unless_an_admin_asks_and_is_audited(
    api: Gateway,
) -> None:
    await _bind(api, "云A7P004", "13800138004", "zhang.san@example.cn")
    agent = await api.add_key("binding_agent")
    code, binding, _ = await api.request("GET", "/v1/bindings/云A7P004", agent)
    assert (binding["phone"], binding["email"]) == ("138****8004", "z***@example.cn")
    code, body, _ = await api.request("GET", "/v1/bindings/云A7P004?unmasked=true", agent)
    assert (code, body["error"]["code"]) == (403, "forbidden")  # admins only
    code, binding, _ = await api.request("GET", "/v1/bindings/云A7P004?unmasked=true", api._admin)
    assert (binding["phone"], binding["email"]) == ("13800138004", "zhang.san@example.cn")
    code, trail, _ = await api.request("GET", "/v1/admin/binding-audit?plate=云A7P004", api._admin)
    assert trail["entries"][0]["event"] == "binding_read_unmasked"
    assert trail["entries"][0]["key_id"] == api._admin.key.id
    code, body, _ = await api.request(
        "POST", "/v1/binding-requests", agent,
        {"plate": "云A7P005", "phone": "13800138005", "email": "li.si@example.cn"},
    )  # fmt: skip
    assert code == 201, body
    assert (body["phone"], body["email"]) == ("138****8005", "l***@example.cn")
    await _bind(api, "云A7P004", "13800138006")
    code, body, _ = await api.request("GET", "/v1/admin/binding-audit", api._admin)
    trail = json.dumps(body, ensure_ascii=False)
    assert not re.search(r"1[3-9]\d{9}", trail), trail
    code, body, _ = await api.request(
        "POST", "/v1/admin/opt-outs", api._admin, {"phone": "13700007777"}
    )
    assert (code, body["phone"]) == (201, "137****7777")
    code, body, _ = await api.request("GET", "/v1/admin/opt-outs", api._admin)
    assert [o["phone"] for o in body["opt_outs"]] == ["137****7777"]
    code, body, _ = await api.request("GET", "/v1/admin/opt-outs?unmasked=true", api._admin)
    assert [o["phone"] for o in body["opt_outs"]] == ["13700007777"]
    audit = [f for _, f in await api.redis.xrange(api.keys.audit_log(0))]
    assert [f["key_id"] for f in audit if f["event"] == "opt_outs_read_unmasked"] == [
        api._admin.key.id
    ]
    code, body, _ = await api.request("GET", "/v1/admin/opt-outs?unmasked=yes", api._admin)
    assert (code, body["error"]["code"]) == (422, "invalid_unmasked")


async def test_a_revoked_key_is_refused_at_once_by_another_api_process(api: Gateway) -> None:
    port = free_port()
    env = {
        **os.environ,
        "GATEWAY_REDIS_URL": api.settings.redis.redis_url,
        "GATEWAY_REDIS_PREFIX": api.settings.redis.redis_prefix,
        "GATEWAY_HTTP_PORT": str(port),
    }
    channel = api.keys.api_key_events
    listening = (await api.redis.pubsub_numsub(channel))[0][1]  # this test's own API
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "--log-level", "WARNING", "serve", "--role", "api",
        env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    key = await api.add_key("command_center")
    auth = {"Authorization": f"Bearer {key.token}"}
    try:
        async with aiohttp.ClientSession() as http:
            async with asyncio.timeout(20):
                while True:
                    try:
                        async with http.get(f"{base}/v1/templates", headers=auth) as resp:
                            if resp.status == 200:
                                break  # the other process has the key in its cache now
                    except aiohttp.ClientConnectionError:
                        pass
                    await asyncio.sleep(0.1)
            async with asyncio.timeout(10):  # its subscription is up (not a guess by time)
                while (await api.redis.pubsub_numsub(channel))[0][1] <= listening:
                    await asyncio.sleep(0.05)
            assert await ApiKeyStore(api.redis, api.keys).revoke(key.key.id)
            revoked_at = time.monotonic()
            async with http.get(f"{base}/v1/templates", headers=auth) as resp:
                assert resp.status == 401
            assert time.monotonic() - revoked_at < 0.5  # not the cache's 5 s
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
