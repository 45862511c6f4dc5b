"""The seed's figures after a scripted scenario on the real stack (calls through Asterisk, SMS
through the simulator, replies by MO), across a worker restart; and the audit trail."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from gateway.core.audit import expand_entry
from gateway.sms.simulator import SmscSimulator
from tests.conftest import Gateway
from tests.test_parking_notices import _bind, _notice
from tests.test_reminder_jobs import wait_job, window


async def _stats(gw: Gateway, key: Any, query: str = "") -> dict[str, Any]:
    code, body, _ = await gw.request("GET", f"/v1/stats{query}", key)
    assert code == 200, body
    return dict(body)


async def _metric(gw: Gateway, line_start: str) -> float:
    code, text, _ = await gw.request("GET", "/metrics")
    assert code == 200
    (line,) = [ln for ln in text.splitlines() if ln.startswith(line_start)]
    return float(line.rsplit(" ", 1)[1])


async def test_the_figures_are_exactly_the_scenario_and_survive_a_worker_restart(
    voice_gateway: Gateway, smsc: SmscSimulator
) -> None:
    gw = voice_gateway
    officer = await gw.add_key("officer")
    centre = await gw.add_key("command_center")
    await _bind(gw, "云E10001", "13800138001")
    made: list[str] = []
    for _ in range(4):  # N = 4 notices, each acknowledged on the phone
        code, body, _ = await gw.request(
            "POST", "/v1/parking-notices", officer, _notice("云E10001")
        )
        assert code == 202, body
        made.append(body["id"])
    for nid in made:
        await gw.wait_status(nid, "acknowledged", within=40)
    outcomes = ["moved", "moved", "still_parked"]  # M = 2 moved, K = 1 warning, 1 not followed up
    for nid, outcome in zip(made, outcomes, strict=False):
        code, body, _ = await gw.request(
            "POST",
            f"/v1/parking-notices/{nid}/follow-up",
            officer,
            {"outcome": outcome, "officer_id": "K1"},
        )
        assert code == 200, body
    alerts = []
    for phone in ("13800138300", "13800138301"):
        code, body, _ = await gw.request(
            "POST",
            "/v1/accident-alerts",
            centre,
            {
                "accident_type": "injury",
                "reporter_phone": phone,
                "location": "北京路",
                "case_id": "A1",
            },
        )
        assert code == 202, body
        alerts.append(body["id"])
    for nid in alerts:
        await gw.wait_status(nid, "delivered")
    assert await smsc.inject_mo("8613800138300", "12122", "1")
    async with asyncio.timeout(10):
        while not await gw.redis.hget(gw.keys.notice(alerts[0]), "reply"):
            await asyncio.sleep(0.05)

    want_parking = {
        "notices": 4,
        "calls_answered": 4,
        "acknowledged": 4,
        "disputed": 0,
        "moved": 2,
        "warnings": 1,
        "penalties_due": 0,
        "follow_ups_missing": 0,
        "sms_fallbacks": 0,
        "suspected_cloned_plates": 0,
        "followed_up": 3,
        "moved_share": 0.6667,
    }
    want_injury = {
        "alerts": 2,
        "delivered": 2,
        "self_settled": 1,
        "officer_requested": 0,
        "other_reply": 0,
        "no_reply": 1,
        "self_settled_share": 0.5,
    }
    stats = await _stats(gw, centre)
    assert stats["total"]["parking"] == want_parking
    assert stats["total"]["accidents"] == {"injury": want_injury}
    assert len(stats["periods"]) == 7
    assert stats["by"] == "day"
    assert sum(p["parking"]["notices"] for p in stats["periods"]) == 4
    weekly = await _stats(gw, centre, f"?from={stats['to']}&to={stats['to']}&by=week")
    assert weekly["total"]["parking"] == want_parking
    assert await _metric(gw, 'gateway_parking_total{measure="moved"}') == 2
    assert (
        await _metric(
            gw, 'gateway_accident_alerts_total{accident_type="injury",measure="self_settled"}'
        )
        == 1
    )

    await gw.stop_workers()
    await gw.start(api=False)
    assert (await _stats(gw, centre))["total"]["parking"] == want_parking
    # And the restarted worker counts on from there: the second reporter replies 2 (sent
    # again until the new bind takes it).
    async with asyncio.timeout(20):
        while not await gw.redis.hget(gw.keys.notice(alerts[1]), "reply"):
            with contextlib.suppress(Exception):
                await smsc.inject_mo("8613800138301", "12122", "2")
            await asyncio.sleep(0.5)
    injury = (await _stats(gw, centre))["total"]["accidents"]["injury"]
    assert (injury["officer_requested"], injury["no_reply"]) == (1, 0)

    for query, code in (("?by=month", 422), ("?from=2026-02-30", 422), ("?from=2020-01-01", 422)):
        status, body, _ = await gw.request("GET", f"/v1/stats{query}", centre)
        assert (status, body["error"]["code"] != "") == (code, True), query
    status, _, _ = await gw.request("GET", "/v1/stats", officer)
    assert status == 403

    # Who notified whom: one creation entry per notice made in this test.
    code, page, _ = await gw.request("GET", "/v1/admin/audit?limit=500", gw._admin)
    assert code == 200, page
    created = [e["notice_id"] for e in page["items"] if e["event"] == "notice_created"]
    assert sorted(created) == sorted(made + alerts)
    entry, follow_up = (e for e in page["items"][::-1] if e.get("notice_id") == made[0])
    assert (follow_up["event"], follow_up["outcome"], follow_up["officer_id"]) == (
        "follow_up",
        "moved",
        "K1",
    )
    assert (entry["key_id"], entry["key_name"], entry["officer_id"]) == (
        officer.key.id,
        officer.key.name,
        "K1234",
    )
    assert entry["to"] == "138****8001"
    assert "13800138001" not in str(page)
    status, body, _ = await gw.request("GET", "/v1/admin/audit", officer)
    assert (status, body["error"]["code"]) == (403, "forbidden")


async def test_the_audit_trail_is_paged_and_searching_a_person_is_audited(
    voice_gateway: Gateway,
) -> None:
    gw = voice_gateway
    officer = await gw.add_key("officer")
    await _bind(gw, "云E20002", "13800138001")
    ids = []
    for _ in range(3):
        _, body, _ = await gw.request("POST", "/v1/parking-notices", officer, _notice("云E20002"))
        ids.append(body["id"])
    pages: list[str] = []
    cursor = ""
    while True:
        q = f"?officer=K1234&limit=2{'&cursor=' + cursor if cursor else ''}"
        code, page, _ = await gw.request("GET", f"/v1/admin/audit{q}", gw._admin)
        assert code == 200, page
        pages += [e["notice_id"] for e in page["items"]]
        if not page["next_cursor"]:
            break
        cursor = page["next_cursor"]
    assert pages == ids[::-1]  # newest first
    code, page, _ = await gw.request("GET", "/v1/admin/audit?phone=13800138001", gw._admin)
    assert {e["notice_id"] for e in page["items"]} == set(ids)
    code, page, _ = await gw.request("GET", "/v1/admin/audit?plate=云E·20002", gw._admin)
    assert {e["notice_id"] for e in page["items"]} == set(ids)
    searches = [
        f for _, f in await gw.redis.xrange(gw.keys.audit_log(0)) if f["event"] == "audit_search"
    ]
    assert [(s["key_id"], s.get("searched_to"), s.get("searched_plate")) for s in searches] == [
        (gw._admin.key.id, "138****8001", None),
        (gw._admin.key.id, None, "云E20002"),
    ]
    code, body, _ = await gw.request("GET", "/v1/admin/audit?phone=12345", gw._admin)
    assert code == 422


async def test_reminder_rows_are_counted_per_template_and_channel_and_each_audited(
    gateway: Gateway,
) -> None:
    gw = gateway
    office = await gw.add_key("back_office")
    code, _, _ = await gw.request("POST", "/v1/admin/opt-outs", gw._admin, {"phone": "13700002222"})
    assert code == 201
    params = {"name": "李", "due_date": "明年"}
    code, body, _ = await gw.request(
        "POST",
        "/v1/reminder-jobs",
        office,
        {
            "template": "licence_review_due",
            "recipients": [
                {"to": "13700002221", "params": params},
                {"to": "13700002222", "params": params},
                {"to": "13700002223", "params": params},
            ],
            "send_window": window(-1),
        },
    )
    assert code == 202, body
    await wait_job(gw, office, body["job_id"], "finished")
    stats = await _stats(gw, gw._admin)
    assert stats["total"]["reminders"] == {
        "licence_review_due": {
            "sms": {
                "sent": 2,
                "delivered": 2,
                "failed": 0,
                "opted_out": 1,
                "capped": 0,
                "duplicate": 0,
            }
        }
    }
    entries = [f for _, f in await gw.redis.xrange(gw.keys.audit_log(0))]
    stored = [e for e in entries if e.get("job") == body["job_id"]]
    # One stream entry for the admitted slice, shown as one entry per notice.
    assert [e["event"] for e in stored] == ["notices_created"]
    rows = expand_entry(stored[0])
    assert sorted(e["to"] for e in rows) == ["137****2221", "137****2223"]
    assert {(e["event"], e["key_name"], e["template"]) for e in rows} == {
        ("notice_created", office.key.name, "licence_review_due")
    }
    code, page, _ = await gw.request("GET", "/v1/admin/audit?phone=13700002223", gw._admin)
    assert [e["notice_id"] for e in page["items"]] == [
        e["notice_id"] for e in rows if e["to"] == "137****2223"
    ]
    # A page may end inside the slice's entry: the cursor goes on from there.
    seen: list[str] = []
    cursor = ""
    while True:
        q = f"?key={office.key.id}&limit=1{'&cursor=' + cursor if cursor else ''}"
        code, page, _ = await gw.request("GET", f"/v1/admin/audit{q}", gw._admin)
        assert code == 200, page
        seen += [e["notice_id"] for e in page["items"] if e["event"] == "notice_created"]
        if not page["next_cursor"]:
            break
        cursor = page["next_cursor"]
    assert sorted(seen) == sorted(e["notice_id"] for e in rows)
