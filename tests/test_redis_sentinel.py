"""Sentinel mode's settings, and what a 202 waits for: a replica that has the notice."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis
from pydantic import ValidationError

from gateway.settings import RedisSettings
from gateway.sms.simulator import SmscSimulator
from tests.conftest import Gateway, close_or_dump, make_settings
from tests.redis_sentinel import SentinelSet, running_sentinel_set


def test_sentinel_settings_name_the_sentinels_and_wait_for_a_replica_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert RedisSettings().sentinel_addresses() == []
    assert RedisSettings().replicas_to_wait() == 0  # one Redis: its own persistence
    monkeypatch.setenv("GATEWAY_REDIS_SENTINELS", "10.0.0.1:26379,sentinel-2:26380,[::1]:26381")
    settings = RedisSettings()
    assert settings.sentinel_addresses() == [
        ("10.0.0.1", 26379),
        ("sentinel-2", 26380),
        ("::1", 26381),
    ]
    assert settings.redis_service == "gateway"
    assert settings.replicas_to_wait() == 1
    monkeypatch.setenv("GATEWAY_REDIS_WAIT_REPLICAS", "0")
    assert RedisSettings().replicas_to_wait() == 0  # availability over durability, if asked
    for bad in ("sentinel-1", "a:1,,b:2", "host:port"):
        monkeypatch.setenv("GATEWAY_REDIS_SENTINELS", bad)
        with pytest.raises(ValidationError, match="redis_sentinels"):
            RedisSettings()


@pytest.fixture
def own_sentinels() -> Iterator[SentinelSet]:
    with running_sentinel_set() as stack:
        yield stack


async def test_a_202_waits_for_the_replica_and_without_one_the_api_answers_503(
    own_sentinels: SentinelSet, prefix: str, smsc: SmscSimulator
) -> None:
    stack = own_sentinels
    env = {**stack.env, "GATEWAY_REDIS_WAIT_TIMEOUT_MS": "200"}
    gw = Gateway(make_settings(env["GATEWAY_REDIS_URL"], prefix, smsc.port, **env))
    await gw.start()
    replica = redis.Redis(port=stack.replica.port, decode_responses=True)
    try:
        gw._admin = await gw.add_key("admin")
        centre = await gw.add_key("command_center")
        async with asyncio.timeout(10):
            await smsc.wait_bound()
        body = {
            "accident_type": "minor_property_damage",
            "reporter_phone": "13900020001",
            "location": "北京路",
            "case_id": "S-1",
        }
        code, first, _ = await gw.request("POST", "/v1/accident-alerts", centre, body)
        assert code == 202, first
        # The replica had it before the caller heard 202 (WAIT 1, not a race).
        assert replica.hget(gw.keys.notice(first["id"]), "status") == "queued"
        await gw.wait_status(first["id"], "delivered")
        # The notice is delivered once its last part's receipt is stored; the SMSC counts
        # that receipt when the answer reaches it, a moment later.
        owed = sum(len(m.message_ids) for m in smsc.messages)
        async with asyncio.timeout(5):
            while smsc.receipts_sent < owed:
                await asyncio.sleep(0.01)
        answered = smsc.receipts_sent

        stack.replica.stop()
        headers = {"Idempotency-Key": "sentinel-test-2"}
        body = {**body, "reporter_phone": "13900020002", "case_id": "S-2"}
        code, refused, hdrs = await gw.request(
            "POST", "/v1/accident-alerts", centre, body, headers=headers
        )
        assert code == 503, refused
        assert refused["error"]["code"] == "store_unavailable"
        assert "replica" in refused["error"]["message"]
        assert hdrs["Retry-After"] == "1"
        # The notice is on the primary, but a failover now would lose it, and the caller's
        # retry would make it again: had the worker sent it, the citizen would get it twice.
        # So it is not sent while no replica has it (the worker reads it at once and holds
        # it), and nothing else is answered to the SMSC meanwhile.
        await asyncio.sleep(2.0)
        assert smsc.to(["13900020002"]) == []
        assert smsc.receipts_sent == answered

        stack.replica.start()
        await asyncio.to_thread(stack.wait_replicated, stack.primary)
        code, again, hdrs = await gw.request(
            "POST", "/v1/accident-alerts", centre, body, headers=headers
        )
        assert code == 200, again  # it was stored: the retry gets it, not a second one
        assert hdrs["Idempotent-Replayed"] == "true"
        for nid in (first["id"], again["id"]):
            await gw.wait_status(nid, "delivered", within=15)
        assert len(smsc.to(["13900020002"])) == 1
    finally:
        replica.close()
        await close_or_dump(gw)


def test_cluster_urls_name_their_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_REDIS_URL", "redis+cluster://u:p@10.0.0.1:7000,[::1]:7001/0")
    assert RedisSettings().cluster_nodes() == [("10.0.0.1", 7000), ("::1", 7001)]
    monkeypatch.setenv("GATEWAY_REDIS_SENTINELS", "s:26379")
    with pytest.raises(ValidationError, match="cluster"):
        RedisSettings()
    monkeypatch.delenv("GATEWAY_REDIS_SENTINELS")
    monkeypatch.setenv("GATEWAY_REDIS_URL", "redis+cluster://10.0.0.1")
    with pytest.raises(ValidationError, match="host:port"):
        RedisSettings()
