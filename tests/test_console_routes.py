"""The routes the console's panels read: the alert preview, accident replies, recent jobs,
the readiness detail; each limited to what the key may see."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from gateway.core.replies import Reply
from gateway.store.accident_replies import AccidentReplies
from gateway.store.notices import now_iso
from tests.conftest import Gateway, close_or_dump, free_port, make_settings
from tests.test_reminder_jobs import LATER, window


@pytest.fixture
async def api(redis_server: str, prefix: str) -> AsyncIterator[Gateway]:
    gw = Gateway(make_settings(redis_server, prefix, free_port()))
    await gw.start(workers=False)
    gw._admin = await gw.add_key("admin")
    yield gw
    await close_or_dump(gw)


ALERT = {"accident_type": "injury", "location": "北京路", "case_id": "A-1"}


async def test_the_preview_is_what_the_alert_sends_and_checks_the_phone_as_the_api(
    api: Gateway,
) -> None:
    cc = await api.add_key("command_center")
    code, preview, _ = await api.request(
        "POST", "/v1/accident-alerts/preview", cc, {**ALERT, "reporter_phone": "138 0013 8000"}
    )
    assert code == 200
    assert preview["phone"] == {"valid": True, "masked": "138****8000"}
    code, sent, _ = await api.request(
        "POST", "/v1/accident-alerts", cc, {**ALERT, "reporter_phone": "13800138000"}
    )
    assert code == 202
    notice = await api.wait_status(sent["id"], "queued")
    assert (preview["segments"], preview["encoding"]) == (sent["segments"], "ucs2")
    stored = await api.redis.hget(api.keys.notice(sent["id"]), "text")
    assert preview["text"] == stored
    assert preview["chars"] == len(stored)
    assert notice["case_id"] == "A-1"
    for phone, verdict in (
        ("", "empty"),
        ("1380013", "invalid_phone"),
        ("+14155550100", "foreign_phone"),
        ("010-12345678", "not_mobile"),
    ):
        _, body, _ = await api.request(
            "POST", "/v1/accident-alerts/preview", cc, {"reporter_phone": phone}
        )
        assert (body["phone"]["valid"], body["phone"]["code"]) == (False, verdict), phone
        assert "text" not in body  # no type chosen yet
        code, refused, _ = await api.request(
            "POST", "/v1/accident-alerts", cc, {**ALERT, "reporter_phone": phone or "x"}
        )
        assert code == 422, phone  # what the preview refuses, the alert refuses
        del refused
    long = "很长的路名" * 30
    _, body, _ = await api.request(
        "POST", "/v1/accident-alerts/preview", cc, {**ALERT, "location": long[:120]}
    )
    assert body["segments"] > 3
    code, body, _ = await api.request(
        "POST", "/v1/accident-alerts/preview", cc, {"accident_type": "flood"}
    )
    assert (code, body["error"]["code"]) == (422, "unknown_accident_type")


async def test_replies_and_jobs_are_listed_per_key(api: Gateway) -> None:
    cc, other = await api.add_key("command_center"), await api.add_key("command_center")
    office = await api.add_key("back_office")
    code, alert, _ = await api.request(
        "POST", "/v1/accident-alerts", cc, {**ALERT, "reporter_phone": "13800138000"}
    )
    assert code == 202
    match = await AccidentReplies(api.redis, api.keys).record(
        national="13800138000",
        reply=Reply.SELF_SETTLED,
        text="1",
        from_masked="138****8000",
        mo_id="1-0",
        mo_ms=int(time.time() * 1000),
        window_ms=3_600_000,
        at=now_iso(),
        recipients=[],
    )
    assert match.matched
    _, mine, _ = await api.request("GET", "/v1/accident-replies", cc)
    assert [(r["id"], r["reply"], r["case_id"]) for r in mine["items"]] == [
        (alert["id"], "self_settled", "A-1")
    ]
    assert "key" not in mine["items"][0]
    _, theirs, _ = await api.request("GET", "/v1/accident-replies", other)
    assert theirs["items"] == []
    _, every, _ = await api.request("GET", "/v1/accident-replies", api._admin)
    assert len(every["items"]) == 1
    job = {
        "template": "licence_review_due",
        "recipients": [{"to": "13700001111", "params": {"name": "李", "due_date": "明年"}}],
        "send_window": window(LATER),
    }
    made = [
        (await api.request("POST", "/v1/reminder-jobs", k, job))[1]["job_id"] for k in (cc, office)
    ]
    _, listed, _ = await api.request("GET", "/v1/reminder-jobs", cc)
    assert [j["job_id"] for j in listed["items"]] == [made[0]]
    assert listed["items"][0]["total"] == 1
    _, listed, _ = await api.request("GET", "/v1/reminder-jobs", api._admin)
    assert [j["job_id"] for j in listed["items"]] == made[::-1]  # newest first
    code, body, _ = await api.request("GET", "/v1/reminder-jobs?limit=0", cc)
    assert (code, body["error"]["code"]) == (400, "invalid_query")


async def test_readiness_names_the_bound_smpp_links(api: Gateway) -> None:
    now_ms = int(time.time() * 1000)
    await api.redis.zadd(api.keys.smpp_bound, {"sms-a-1": now_ms + 60_000, "sms-b-1": now_ms - 1})
    code, body, _ = await api.request("GET", "/readyz")
    assert body["checks"]["smpp"] is True
    assert body["detail"] == {"smpp_binds": ["sms-a-1"]}
    assert code == 200
