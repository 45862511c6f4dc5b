"""Reminder jobs end to end: CSV and JSON intake, delivery through the simulator, opt-out,
email over a real SMTP server (aiosmtpd), send windows, cancel, caps and duplicates."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller

from gateway.sms.simulator import SmscSimulator
from tests.conftest import (
    Gateway,
    Receiver,
    close_or_dump,
    free_port,
    make_settings,
)
from tests.redis_sentinel import RedisBackend

TZ = ZoneInfo("Asia/Shanghai")


def window(offset_hours: int) -> str:
    """A three-hour send window from the hour ``offset_hours`` from now (local time): with
    ``NOW`` it stays open at least an hour more, whatever minute a test starts in (a
    two-hour one started at 21:58 closed two minutes later, mid-job)."""
    start = datetime.now(TZ) + timedelta(hours=offset_hours)
    return f"{start:%H:00}-{start + timedelta(hours=3):%H:00}"


NOW = -1  # a window that started an hour ago: open now
LATER = 3  # opens in three hours: closed now


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, email.message.EmailMessage)
        self.messages.append(msg)
        return "250 OK"


@pytest.fixture
def smtp_server() -> Any:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    inbox.port = port  # type: ignore[attr-defined]
    yield inbox
    controller.stop()


@pytest.fixture
async def jobs_gateway(
    redis_backend: RedisBackend, prefix: str, smsc: SmscSimulator, smtp_server: Inbox
) -> AsyncIterator[Gateway]:
    gw = Gateway(
        make_settings(
            redis_backend.url,
            prefix,
            smsc.port,
            GATEWAY_SMTP_PORT=str(smtp_server.port),  # type: ignore[attr-defined]
            GATEWAY_SMTP_FROM="notices@jj.example.cn",
            **redis_backend.env,
        )
    )
    await gw.start()
    gw._admin = await gw.add_key("admin")
    try:
        async with asyncio.timeout(10):
            await smsc.wait_bound()
        yield gw
    finally:
        await close_or_dump(gw)


async def wait_job(
    gw: Gateway, key: Any, job_id: str, status: str, within: float = 60
) -> dict[str, Any]:
    async with asyncio.timeout(within):
        while True:
            code, body, _ = await gw.request("GET", f"/v1/reminder-jobs/{job_id}", key)
            assert code == 200, body
            if body["status"] == status:
                return dict(body)
            await asyncio.sleep(0.1)


def csv_body(rows: list[str], header: str = "to,road,period,detour") -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


async def post_csv(gw: Gateway, key: Any, body: bytes, **query: str) -> tuple[int, dict[str, Any]]:
    qs = "&".join(f"{k}={v}" for k, v in {"template": "traffic_conditions", **query}.items())
    code, resp, _ = await gw.request(
        "POST", f"/v1/reminder-jobs?{qs}", key, data=body, headers={"Content-Type": "text/csv"}
    )
    return code, resp


async def test_csv_job_of_10000_rows_with_3_bad_rows(
    jobs_gateway: Gateway, smsc: SmscSimulator, receiver: Receiver
) -> None:
    gw = jobs_gateway
    office = await gw.add_key("back_office", hosts=[receiver.allow])
    rows = [f"1390{i:07d},人民路,明天8时至18时,北京路" for i in range(10_000)]
    rows[99] = "1390000abcd,人民路,明天,北京路"  # line 101: not a phone number
    rows[4999] = "13900004999,,明天,北京路"  # line 5001: empty parameter
    rows[9998] = "13900009998,人民路,明天"  # line 10000: a field short
    code, body = await post_csv(
        gw,
        office,
        csv_body(rows),
        channel="sms",
        rate="5000",
        send_window=window(NOW),
        callback_url=receiver.url,
    )
    assert code == 202, body
    assert (body["total"], body["bad_rows"]) == (9997, 3)
    assert [b["line"] for b in body["bad_rows_sample"]] == [101, 5001, 10000]
    assert body["segments"] == {"total": 9997, "max_per_message": 1}
    job = await wait_job(gw, office, body["job_id"], "finished", within=120)
    assert job["counts"] == {"delivered": 9997}
    assert len(smsc.messages) == 9997
    assert "人民路将于明天8时至18时实施交通管制" in smsc.messages[0].text
    done = await receiver.wait_for(body["job_id"], "finished")
    assert done["body"]["kind"] == "reminder_job"
    assert done["body"]["detail"]["counts"] == {"delivered": 9997}


async def test_opted_out_number_gets_no_reminder_but_still_gets_accident_procedures(
    jobs_gateway: Gateway, smsc: SmscSimulator
) -> None:
    gw = jobs_gateway
    cc = await gw.add_key("command_center")
    assert await smsc.inject_mo("8613700001111", "12122", " 退订 ")
    async with asyncio.timeout(10):
        while not await gw.redis.sismember(gw.keys.opt_outs(0), "13700001111"):
            await asyncio.sleep(0.05)
    code, listed, _ = await gw.request("GET", "/v1/admin/opt-outs", gw._admin)
    assert listed["opt_outs"][0]["phone"] == "137****1111"  # masked unless asked
    assert listed["opt_outs"][0]["via"] == "mo"
    code, listed, _ = await gw.request("GET", "/v1/admin/opt-outs?unmasked=true", gw._admin)
    assert listed["opt_outs"][0]["phone"] == "13700001111"
    read = [f for _, f in await gw.redis.xrange(gw.keys.audit_log(0))]
    assert [f["key_id"] for f in read if f["event"] == "opt_outs_read_unmasked"] == [
        gw._admin.key.id
    ]
    recipients = [
        {"to": n, "params": {"plate": "云A12345", "due_date": "2026年12月31日"}}
        for n in ("13700001111", "13700002222")
    ]
    code, body, _ = await gw.request(
        "POST",
        "/v1/reminder-jobs",
        cc,
        {
            "template": "vehicle_inspection_due",
            "recipients": recipients,
            "send_window": window(NOW),
        },
    )
    assert code == 202, body
    job = await wait_job(gw, cc, body["job_id"], "finished")
    assert job["counts"] == {"opted_out": 1, "delivered": 1}
    assert len(smsc.to(["13700001111"])) == 0
    assert len(smsc.to(["13700002222"])) == 1
    code, alert, _ = await gw.request(
        "POST",
        "/v1/accident-alerts",
        cc,
        {
            "accident_type": "injury",
            "reporter_phone": "13700001111",
            "location": "环城路",
            "case_id": "A-1",
        },
    )
    assert code == 202
    await gw.wait_status(alert["id"], "delivered")
    # Reversible by an admin: the next reminder goes out.
    code, _, _ = await gw.request("DELETE", "/v1/admin/opt-outs/13700001111", gw._admin)
    assert code == 204
    code, body, _ = await gw.request(
        "POST",
        "/v1/reminder-jobs",
        cc,
        {
            "template": "licence_review_due",
            "recipients": [{"to": "13700001111", "params": {"name": "李", "due_date": "明年"}}],
            "send_window": window(NOW),
        },
    )
    assert (await wait_job(gw, cc, body["job_id"], "finished"))["counts"] == {"delivered": 1}
    for word in ("td", "STOP", "ＴＤ"):
        assert await smsc.inject_mo("8613700003333", "12122", word)
    async with asyncio.timeout(10):
        while not await gw.redis.sismember(gw.keys.opt_outs(0), "13700003333"):
            await asyncio.sleep(0.05)


async def test_email_reminder_arrives_with_text_and_html(
    jobs_gateway: Gateway, smtp_server: Inbox
) -> None:
    gw = jobs_gateway
    office = await gw.add_key("back_office")
    params = {
        "plate": "云A1B2C3",
        "time": "2026-11-20 08:15",
        "place": "二环北路<立交>",
        "violation_code": "1345",
        "settle_url": "https://jj.example.cn/pay",
    }
    code, body, _ = await gw.request(
        "POST",
        "/v1/reminder-jobs",
        office,
        {
            "template": "camera_violation",
            "channel": "email",
            "recipients": [
                {"to": "zhang@example.cn", "params": params},
                {"to": "not-an-address", "params": params},
            ],
            "send_window": window(NOW),
        },
    )
    assert code == 202, body
    assert body["bad_rows_sample"] == [
        {"index": 1, "error": "to: 'not-an-address' is not an email address"}
    ]
    job = await wait_job(gw, office, body["job_id"], "finished")
    assert job["counts"] == {"sent": 1}
    (msg,) = smtp_server.messages
    assert smtp_server.envelopes[0].rcpt_tos == ["zhang@example.cn"]
    assert msg["Subject"] == "交通违法记录提醒"
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None
    assert html is not None
    assert "二环北路<立交>" in plain.get_content()
    assert "二环北路&lt;立交&gt;" in html.get_content()


@pytest.mark.sentinel
@pytest.mark.cluster
async def test_job_outside_its_window_waits_and_a_cancelled_job_stops(
    jobs_gateway: Gateway, smsc: SmscSimulator, receiver: Receiver
) -> None:
    gw = jobs_gateway
    office = await gw.add_key("back_office", hosts=[receiver.allow])
    rows = [f"1360{i:07d},人民路,明天,北京路" for i in range(2000)]
    code, waiting = await post_csv(gw, office, csv_body(rows[:10]), send_window=window(LATER))
    assert code == 202
    job = await wait_job(gw, office, waiting["job_id"], "waiting_window", within=10)
    await asyncio.sleep(1.0)
    assert (await wait_job(gw, office, waiting["job_id"], "waiting_window"))["dispatched"] == 0
    assert len(smsc.messages) == 0

    # 2,000 rows at 100/s: cancelled after about a second, most are never sent.
    code, slow = await post_csv(
        gw, office, csv_body(rows), rate="100", send_window=window(NOW), callback_url=receiver.url
    )
    assert code == 202
    async with asyncio.timeout(10):
        while len(smsc.messages) < 50:
            await asyncio.sleep(0.05)
    code, job, _ = await gw.request("POST", f"/v1/reminder-jobs/{slow['job_id']}/cancel", office)
    assert (code, job["status"]) == (200, "cancelled")
    cancelled = await receiver.wait_for(slow["job_id"], "cancelled")
    assert cancelled["body"]["kind"] == "reminder_job"
    await asyncio.sleep(1.5)
    sent = len(smsc.messages)
    await asyncio.sleep(1.5)
    assert len(smsc.messages) == sent < 400
    job = await wait_job(gw, office, slow["job_id"], "cancelled")
    assert job["dispatched"] < 400
    code, _, _ = await gw.request("POST", f"/v1/reminder-jobs/{slow['job_id']}/cancel", office)
    assert code == 409
    # The waiting job can be cancelled too.
    code, job, _ = await gw.request("POST", f"/v1/reminder-jobs/{waiting['job_id']}/cancel", office)
    assert job["status"] == "cancelled"


async def test_daily_cap_and_no_duplicate_reminders(
    redis_server: str, prefix: str, smsc: SmscSimulator
) -> None:
    gw = Gateway(make_settings(redis_server, prefix, smsc.port, GATEWAY_REMINDER_DAILY_CAP="2"))
    await gw.start()
    try:
        office = await gw.add_key("back_office")
        same = {"to": "13500001111", "params": {"road": "A路", "period": "今天", "detour": "B路"}}
        _, body, _ = await gw.request(
            "POST",
            "/v1/reminder-jobs",
            office,
            {
                "template": "traffic_conditions",
                "recipients": [same, same],
                "send_window": window(NOW),
            },
        )
        job = await wait_job(gw, office, body["job_id"], "finished")
        assert job["counts"] == {"delivered": 1, "duplicate": 1}
        for template, params in [
            ("licence_review_due", {"name": "王", "due_date": "明年"}),
            ("vehicle_inspection_due", {"plate": "云A12345", "due_date": "明年"}),
        ]:
            _code, body, _ = await gw.request(
                "POST",
                "/v1/reminder-jobs",
                office,
                {
                    "template": template,
                    "recipients": [{"to": "13500001111", "params": params}],
                    "send_window": window(NOW),
                },
            )
            last = await wait_job(gw, office, body["job_id"], "finished")
        assert last["counts"] == {"capped": 1}
        assert len(smsc.to(["13500001111"])) == 2
    finally:
        await close_or_dump(gw)


@pytest.mark.parametrize(
    ("query", "body", "status", "error", "names"),
    [
        ({"template": "nope"}, b"to\n1", 422, "unknown_template", "nope"),
        ({}, b"to,road,period\n13800138000,a,b\n", 422, "missing_params", "detour"),
        ({}, b"to,road,period,detour,x\n", 422, "unknown_params", "x"),
        ({}, b"road,period,detour\n", 422, "missing_params", "to"),
        ({}, b"", 400, "invalid_csv", "header"),
        ({}, b"\x80\xff,\x00\n", 400, "invalid_csv", "UTF-8"),
        ({"channel": "voice"}, b"to,road,period,detour\n", 422, "channel_unavailable", "voice"),
        ({"channel": "fax"}, b"to\n", 422, "validation_error", "channel"),
        ({"rate": "-1"}, b"to\n", 422, "validation_error", "rate"),
        ({"send_window": "8-21"}, b"to\n", 422, "validation_error", "send_window"),
        (
            {"callback_url": "http://169.254.169.254/x"},
            b"to\n",
            422,
            "callback_host_not_allowed",
            "",
        ),
    ],
)
async def test_bad_jobs_are_refused_with_a_reason(
    gateway: Gateway,
    query: dict[str, str],
    body: bytes,
    status: int,
    error: str,
    names: str,
) -> None:
    office = await gateway.add_key("back_office")
    code, resp = await post_csv(gateway, office, body, **query)
    assert (code, resp["error"]["code"]) == (status, error), resp
    assert names in resp["error"]["message"]
    assert await gateway.redis.zcard(gateway.keys.jobs_active(0)) == 0


async def test_bad_json_jobs(gateway: Gateway) -> None:
    office = await gateway.add_key("back_office")
    for data, status, error in [
        (b"{nope", 400, "malformed_json"),
        (b"[]", 400, "invalid_body"),
        (b'{"template": "traffic_conditions", "recipients": []}', 422, "validation_error"),
        (b'{"template": "traffic_conditions", "recipients": [1], "x": 1}', 422, "validation_error"),
    ]:
        code, resp, _ = await gateway.request("POST", "/v1/reminder-jobs", office, data=data)
        assert (code, resp["error"]["code"]) == (status, error), resp
    code, resp, _ = await gateway.request(
        "POST", "/v1/reminder-jobs", office, data=b"x", headers={"Content-Type": "image/png"}
    )
    assert code == 415
    officer = await gateway.add_key("officer")
    code, _, _ = await gateway.request(
        "POST", "/v1/reminder-jobs", officer, {"template": "traffic_conditions", "recipients": [1]}
    )
    assert code == 403
    code, _, _ = await gateway.request("GET", "/v1/reminder-jobs/job_nope", office)
    assert code == 404


async def test_jobs_cli_submits_a_csv_and_follows_it(
    jobs_gateway: Gateway, smsc: SmscSimulator, tmp_path: Any
) -> None:
    import sys

    gw = jobs_gateway
    office = await gw.add_key("back_office")
    csv_file = tmp_path / "reminders.csv"
    rows = [f"1330{i:07d},人民路,周六,北京路" for i in range(300)] + ["12,人民路,周六,北京路"]
    csv_file.write_bytes(csv_body(rows))
    env = {"GATEWAY_API_KEY": office.token, "PATH": "/usr/bin:/bin"}

    async def cli(*argv: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.cli",
            "jobs",
            "--url",
            gw.base,
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode or 0, out.decode(), err.decode()

    rc, out, err = await cli(
        "submit", str(csv_file), "--template", "traffic_conditions", "--window", window(NOW)
    )
    assert rc == 0, err
    assert "300 recipients, 1 bad row(s)" in out
    assert "line 302: to:" in out
    assert "sending" in err  # the progress bar
    job_id = out.split()[1].rstrip(":")
    assert f"{job_id}: finished; 300/300 done (delivered 300)" in out
    rc, out, _ = await cli("status", job_id)
    assert (rc, out.splitlines()[0]) == (
        0,
        f"{job_id}: finished; 300/300 done (delivered 300); 1 bad row(s)",
    )
    rc, _, err = await cli("status", "job_missing")
    assert rc == 1
    assert "no such reminder job" in err


async def test_a_job_cancelled_while_its_csv_arrives_stays_cancelled(
    jobs_gateway: Gateway, smsc: SmscSimulator
) -> None:
    gw = jobs_gateway
    office = await gw.add_key("back_office")
    first_half = asyncio.Event()

    async def slow_upload() -> Any:
        yield b"to,road,period,detour\n"
        yield "".join(f"1370{i:07d},人民路,明天,北京路\n" for i in range(100)).encode()
        first_half.set()
        await asyncio.sleep(1.0)
        yield "".join(f"1371{i:07d},人民路,明天,北京路\n" for i in range(100)).encode()

    assert gw.http is not None
    upload = asyncio.create_task(
        gw.http.post(
            f"{gw.base}/v1/reminder-jobs",
            params={"template": "traffic_conditions", "send_window": window(NOW)},
            data=slow_upload(),
            headers={"Authorization": f"Bearer {office.token}", "Content-Type": "text/csv"},
        )
    )
    await first_half.wait()
    async with asyncio.timeout(5):
        # KEYS, not SCAN: one round trip, however many keys the session's Redis holds.
        while not (jobs := await gw.redis.keys(gw.keys.job("job_*"))):
            await asyncio.sleep(0.02)
    # The job's hash, not its rows/bad/counts keys.
    job_id = jobs[0].removeprefix(gw.keys.job(""))
    code, job, _ = await gw.request("POST", f"/v1/reminder-jobs/{job_id}/cancel", office)
    assert code == 200, (job_id, job)
    assert job["status"] == "cancelled"
    async with await upload as resp:
        body = await resp.json()
    assert resp.status == 202
    assert (body["status"], body["total"]) == ("cancelled", 200)
    await asyncio.sleep(1.0)
    assert (await wait_job(gw, office, job_id, "cancelled"))["dispatched"] == 0
    assert len(smsc.messages) == 0


async def test_an_email_job_cancelled_mid_way_stops_sending(
    redis_server: str, prefix: str, smsc: SmscSimulator
) -> None:
    """The relay takes 20 ms a message and the job is admitted far faster, so hundreds of its
    emails are already queued when it is cancelled: none of those may go out."""
    inbox = SlowInbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    gw = Gateway(
        make_settings(
            redis_server,
            prefix,
            smsc.port,
            GATEWAY_SMTP_PORT=str(port),
            GATEWAY_SMTP_CONCURRENCY="2",
            GATEWAY_REMINDER_DEDUP_HOURS="0",
            GATEWAY_REMINDER_DAILY_CAP="0",
        )
    )
    await gw.start()
    gw._admin = await gw.add_key("admin")
    try:
        office = await gw.add_key("back_office")
        recipients = [
            {"to": f"owner{i}@example.cn", "params": {"name": "张三", "due_date": "2027-01-01"}}
            for i in range(600)
        ]
        code, body, _ = await gw.request(
            "POST",
            "/v1/reminder-jobs",
            office,
            {
                "template": "licence_review_due",
                "channel": "email",
                "recipients": recipients,
                "send_window": window(NOW),
                "rate": 1000,
            },
        )
        assert code == 202, body
        async with asyncio.timeout(20):
            while len(inbox.messages) < 10:
                await asyncio.sleep(0.02)
        code, job, _ = await gw.request(
            "POST", f"/v1/reminder-jobs/{body['job_id']}/cancel", office
        )
        assert (code, job["status"]) == (200, "cancelled")
        at_cancel = len(inbox.messages)
        await asyncio.sleep(2.0)
        # What the channel held or took within the worker's cancel lag (0.2 s, about 20 at this
        # relay's pace) may still arrive; nothing more.
        assert len(inbox.messages) <= at_cancel + 30
        job = await wait_job(gw, office, body["job_id"], "cancelled")
        assert job["dispatched"] > at_cancel + 100  # queued but never sent
        async with asyncio.timeout(10):
            while (await wait_job(gw, office, body["job_id"], "cancelled"))["counts"].get(
                "cancelled", 0
            ) < job["dispatched"] - len(inbox.messages) - 4:
                await asyncio.sleep(0.1)
    finally:
        await close_or_dump(gw)
        controller.stop()


class SlowInbox(Inbox):
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(0.02)
        return await super().handle_DATA(server, session, envelope)


async def test_a_receipt_that_never_comes_expires_the_notice_and_the_job_still_finishes(
    redis_server: str, prefix: str, smsc: SmscSimulator, receiver: Receiver
) -> None:
    """The SMSC accepts every part and never sends a receipt: after
    GATEWAY_SMPP_RECEIPT_TTL_HOURS each notice ends ``expired`` (no_receipt) with its webhook,
    and the job ends with its callback instead of staying ``running`` for good."""
    smsc.script.send_receipts = False
    gw = Gateway(
        make_settings(
            redis_server,
            prefix,
            smsc.port,
            GATEWAY_SMPP_RECEIPT_TTL_HOURS="0.0005",  # 1.8 s
            GATEWAY_REMINDER_DEDUP_HOURS="0",
        )
    )
    await gw.start()
    gw._admin = await gw.add_key("admin")
    try:
        office = await gw.add_key("back_office", hosts=[receiver.allow])
        rows = [f"1371{i:07d},人民路,明天,北京路" for i in range(20)]
        code, job = await post_csv(
            gw, office, csv_body(rows), send_window=window(NOW), callback_url=receiver.url
        )
        assert code == 202, job
        finished = await wait_job(gw, office, job["job_id"], "finished", within=20)
        assert finished["counts"] == {"expired": 20}
        end = await receiver.wait_for(job["job_id"], "finished")
        assert end["body"]["detail"]["counts"] == {"expired": 20}
        async for key in gw.redis.scan_iter(match=gw.keys.notice("*"), _type="hash"):
            notice = await gw.wait_status(await gw.redis.hget(key, "id"), "expired")
            assert [h["status"] for h in notice["history"]] == ["queued", "submitted", "expired"]
            assert notice["history"][-1]["detail"] == {"reason": "no_receipt"}
            break
        else:
            raise AssertionError("no notice found")
        assert len(smsc.messages) == 20
    finally:
        await close_or_dump(gw)
