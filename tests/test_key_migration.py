"""Keys of a store written before lanes get their names now (``gateway migrate-keys``)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import redis.asyncio as aioredis

from gateway.store.key_migration import DROP, migrate, new_name
from gateway.store.keys import Keys
from tests.conftest import Gateway

K = Keys("gw")

# Every key shape the gateway wrote before lanes (its keys module then), with its name now.
BEFORE_AND_NOW = [
    ("gw:n:{ntc_1}", K.notice("ntc_1")),
    ("gw:n:{ntc_1}:h", K.history("ntc_1")),
    ("gw:n:{ntc_1}:sub", K.submitted_parts("ntc_1")),
    ("gw:n:{ntc_1}:dlr", K.receipt_parts("ntc_1")),
    ("gw:idem:{k1:abc}", K.idempotency("k1", "abc", 0)),
    ("gw:smsc:{main/0001}", K.carrier_id("main", "0001", 0)),
    ("gw:smsc:{main/0001}:early", K.early_receipt("main", "0001", 0)),
    ("gw:sms:awaiting-receipts", K.awaiting_receipts(0)),
    ("gw:smsc:parked", K.receipts_parked(0)),
    ("gw:smsc:unmatched", K.receipts_unmatched(0)),
    ("gw:cap:{13800138000}:20261202", K.sent_today("13800138000", "20261202")),
    ("gw:dedup:{13800138000}:t", K.recent_reminder("t", "13800138000")),
    ("gw:apikey:ab12", K.api_key("ab12")),
    ("gw:apikeys", K.api_key_index),
    ("gw:plate:{云A1}:binding", K.binding("云A1")),
    ("gw:binding-audit", K.binding_audit(0)),
    ("gw:plate:{云A1}:audit", K.binding_audit_of("云A1")),
    ("gw:plate:{云A1}:calls", K.plate_calls("云A1")),
    ("gw:breq:{r1}", K.binding_request("r1")),
    ("gw:plate:{云A1}:warnings", K.warnings("云A1")),
    ("gw:alert:{13800138000}:latest", K.latest_alert("13800138000")),
    ("gw:follow-ups-due", K.follow_ups_due(0)),
    ("gw:figures:total", K.figures("total")),
    ("gw:audit", K.audit_log(0)),
    ("gw:events", K.events(0)),
    ("gw:accident-replies", K.accident_replies(0)),
    ("gw:jobs:recent", K.jobs_recent(0)),
    ("gw:suspected-clones", K.suspected_clones(0)),
    ("gw:q:voice", K.voice_queue(0)),
    ("gw:q:voice-bulk", K.voice_bulk_queue(0)),
    ("gw:voice:retry", K.voice_retry(0)),
    ("gw:q:sms", K.sms_queue(0)),
    ("gw:q:sms-bulk", K.sms_bulk_queue(0)),
    ("gw:q:email", K.email_queue(0)),
    ("gw:q:mo", K.mo_queue(0)),
    ("gw:mo-parts:13800138000:7", K.mo_parts("13800138000", 7)),
    ("gw:optout", K.opt_outs(0)),
    ("gw:optout:meta", K.opt_outs(0) + ":meta"),
    ("gw:job:{job_1}", K.job("job_1")),
    ("gw:job:{job_1}:rows", K.job_rows("job_1")),
    ("gw:job:{job_1}:counts", K.job_counts("job_1")),
    ("gw:job:{job_1}:bad", K.job_bad_rows("job_1")),
    ("gw:job:{job_1}:lease", K.job_lease("job_1")),
    ("gw:jobs:active", K.jobs_active(0)),
    ("gw:jobs:cancelled", K.jobs_cancelled(0)),
    ("gw:q:webhooks", K.webhook_queue(0)),
    ("gw:webhooks:retry", K.webhook_retry(0)),
    ("gw:webhooks:dead", K.webhook_dead(0)),
]


@pytest.mark.parametrize(("before", "now"), BEFORE_AND_NOW)
def test_every_old_key_shape_maps_to_its_name_now(before: str, now: str) -> None:
    assert new_name(K, before) == now
    assert new_name(K, now) is None  # a second run renames nothing


def test_keys_whose_names_did_not_change_are_left() -> None:
    unchanged = (
        K.rate("api:k1"),
        K.link_rate("main"),
        K.link_rate_state("main"),
        K.heartbeat("g", "c"),
        K.console_session("h"),
        K.binding_requests_per_day("13800138000", "20261202"),  # its own slot, as before lanes
    )
    assert K.binding_requests_per_day("13800138000", "20261202") == (
        "gw:breq-day:{13800138000}:20261202"
    )
    for key in unchanged:
        assert new_name(K, key) is None
    assert new_name(K, "other:n:{ntc_1}") is None  # another gateway's prefix
    assert new_name(K, "gw:smpp:bound:sms-main-1") == DROP
    assert new_name(K, "gw:voice:active") == DROP  # call slots: none while it is stopped
    assert new_name(K, "gw:{gw.L0}:voice:active") == DROP  # and from before the one key


async def test_an_old_store_is_moved_and_the_gateway_finds_its_keys_and_notices(
    gateway: Gateway,
) -> None:
    key = await gateway.add_key("command_center")
    code, body, _ = await gateway.request(
        "POST", "/v1/messages", key, {"to": "13800138000", "text": "通知"}
    )
    assert code == 202, body
    notice = await gateway.wait_status(body["id"], "delivered")
    await gateway.stop_workers()
    # Back to the names before lanes, as an old gateway left its store.
    r: aioredis.Redis = gateway.redis
    p = gateway.keys.prefix
    renamed = 0
    async for name in r.scan_iter(match=f"{p}:*"):
        old = _old_name(name, p)
        if old is not None:
            await r.rename(name, old)
            renamed += 1
    assert renamed >= 5
    code, _, _ = await gateway.request("GET", f"/v1/notices/{body['id']}", key)
    assert code == 404  # not found under its old names
    assert not await r.exists(gateway.keys.api_key_index)

    report = await migrate(r, gateway.keys)
    assert sum(report.renamed.values()) == renamed
    assert report.conflicts == []
    assert await r.hlen(gateway.keys.api_key_index) == 2  # the admin's and the centre's
    code, again, _ = await gateway.request("GET", f"/v1/notices/{body['id']}", key)
    assert code == 200, again
    assert again["history"] == notice["history"]
    second = await migrate(r, gateway.keys)
    assert sum(second.renamed.values()) == 0


def _old_name(name: str, prefix: str) -> str | None:
    """The name before lanes of a key a message leaves (the inverse of the migration for
    those shapes: a notice's keys and a carrier id had their id in braces)."""
    lane = f"{prefix}:{{{prefix}.L0}}:"
    if name.startswith(f"{prefix}:{{{prefix}.apikeys}}:key:"):
        return f"{prefix}:apikey:" + name.rsplit(":", 1)[1]
    if name == f"{prefix}:{{{prefix}.apikeys}}:index":
        return f"{prefix}:apikeys"
    if not name.startswith(lane):
        return None
    kind, _, rest = name[len(lane) :].partition(":")
    if kind == "n" or (kind == "smsc" and "/" in rest):
        entity, sep, tail = rest.partition(":")
        return f"{prefix}:{kind}:{{{entity}}}{sep}{tail}"
    return f"{prefix}:{kind}:{rest}" if rest else f"{prefix}:{kind}"


def test_the_command_says_what_it_would_rename(redis_server: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "migrate-keys", "--dry-run"],
        env={"GATEWAY_REDIS_URL": redis_server, "GATEWAY_REDIS_PREFIX": "t-none", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert "would rename 0 keys (none); dropped 0" in out.stdout


def test_the_command_refuses_a_gateway_set_to_several_lanes(redis_server: str) -> None:
    """Old names are all one lane's, and a notice's keys now follow its id's lane."""
    env = {"GATEWAY_REDIS_URL": redis_server, "GATEWAY_REDIS_PREFIX": "t-none", "PATH": ""}
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "migrate-keys", "--dry-run"],
        env={**env, "GATEWAY_REDIS_LANES": "3"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert "GATEWAY_REDIS_LANES=1" in out.stderr
