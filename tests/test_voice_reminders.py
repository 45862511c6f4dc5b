"""Voice reminders from a job, through real Asterisk (Local channels whose callee answers)."""

from __future__ import annotations

from tests.conftest import Gateway
from tests.test_reminder_jobs import NOW, wait_job, window


async def test_voice_reminder_job_calls_and_counts_listened(voice_gateway: Gateway) -> None:
    gw = voice_gateway
    office = await gw.add_key("back_office")
    params = {"road": "滇池路", "period": "今晚", "detour": "环湖路"}
    code, body, _ = await gw.request(
        "POST",
        "/v1/reminder-jobs",
        office,
        {
            "template": "traffic_conditions",
            "channel": "voice",
            "recipients": [
                {"to": "13800000011", "params": params},
                {"to": "13800000022", "params": params},
            ],
            "send_window": window(NOW),
        },
    )
    assert code == 202, body
    job = await wait_job(gw, office, body["job_id"], "finished", within=90)
    assert job["counts"] == {"listened": 2}
    # Each call ran the reminder flow: dialing -> answered -> listened.
    start = gw.keys.notice("")
    ids = [k.removeprefix(start) for k in await gw.redis.keys(gw.keys.notice("*"))]
    notices = [i for i in ids if ":" not in i]
    assert len(notices) == 2
    for notice_id in notices:
        statuses = [h["status"] for h in (await gw.wait_status(notice_id, "listened"))["history"]]
        assert statuses == ["queued", "dialing", "answered", "listened"]
