"""The console in a real browser on the real stack (Redis, SMSC simulator, Asterisk, a SIPp
phone): log in, post an injury alert with the keyboard, see it reach ``delivered`` without a
reload, see a suspected cloned plate appear when the phone presses 2, cancel a running job,
log out and be refused. Screenshots of each step: tests/console_browser.py says where."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from gateway.core.statuses import NoticeStatus
from gateway.sms.simulator import SmscSimulator
from gateway.store.apikeys import NewKey
from gateway.store.notice_scripts import NoticeScripts
from gateway.store.notices import now_iso
from tests.conftest import Gateway, close_or_dump, free_port, make_settings, running_voice_gateway
from tests.console_browser import VIEWPORT, Shots, artifacts, chromium
from tests.sipp_phone import SippPhone
from tests.test_reminder_jobs import NOW, window

PLATE = "云E10002"


@pytest.fixture
async def stack(
    redis_server: str, prefix: str, smsc: SmscSimulator, asterisk: Any, tmp_path: Path
) -> AsyncIterator[Gateway]:
    """Calls leave through the PJSIP trunk to a SIPp phone."""
    async with running_voice_gateway(
        redis_server, prefix, smsc, asterisk, tmp_path, GATEWAY_RING_SECONDS="5"
    ) as gw:
        yield gw


async def _login(page: Page, token: str) -> None:
    await expect(page.locator("#login-key")).to_be_focused()
    await page.keyboard.type(token)
    await page.keyboard.press("Enter")
    await expect(page.locator("#app-view")).to_be_visible()


async def _fits_the_screen(page: Page) -> None:
    """Readable at 1366×768: no sideways scrolling, the whole alert form on screen."""
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= VIEWPORT["width"]
    box = await page.locator("#alert-submit").bounding_box()
    assert box is not None
    assert box["y"] + box["height"] <= VIEWPORT["height"]


async def _alert_by_keyboard(gw: Gateway, page: Page, shots: Shots) -> None:
    """Type, phone, location, case id and Enter, keyboard only; then watch it arrive."""
    await expect(page.locator("#f-type")).to_be_focused()
    await expect(page.locator("#f-type option")).to_have_count(5)
    await page.keyboard.press("ArrowDown")  # 轻微财产损失 -> 有人员受伤
    await expect(page.locator("#f-type")).to_have_value("injury")
    await expect(page.locator("#preview")).to_contain_text("拨打120")
    await page.keyboard.press("Tab")
    await page.keyboard.type("1380013")
    await expect(page.locator("#phone-check")).to_have_class("hint bad")  # checked as typed
    await page.keyboard.type("8000")
    await expect(page.locator("#phone-check")).to_contain_text("138****8000")
    await page.keyboard.press("Tab")
    await page.keyboard.type("北京路")
    await expect(page.locator("#sms-parts")).to_have_attribute("data-segments", "3")
    await page.keyboard.press("Tab")
    await page.keyboard.type("A-1")
    await shots.take("alert-typed")
    await page.keyboard.press("Enter")
    sent = page.locator("#sent li").first
    await expect(sent.locator(".badge")).to_have_attribute(
        "data-status", "delivered", timeout=20_000
    )
    notice_id = await sent.get_attribute("data-id")
    assert notice_id
    assert (await gw.wait_status(notice_id, "delivered"))["kind"] == "accident_alert"
    feed = page.locator(f'#feed tr[data-id="{notice_id}"]')
    await expect(feed).to_have_count(3)  # queued, submitted, delivered: all live
    await shots.take("alert-delivered")


async def _cloned_plate(
    gw: Gateway, page: Page, shots: Shots, admin: NewKey, officer: NewKey
) -> None:
    """A parking call to the SIPp phone, which presses 2: the plate shows up as cloned."""
    code, _, _ = await gw.request(
        "POST", "/v1/bindings", admin, {"plate": PLATE, "phone": "13800138000"}
    )
    assert code == 201
    call = {"plate": PLATE, "location": "青年路", "move_within_minutes": 15, "officer_id": "K7"}
    code, body, _ = await gw.request("POST", "/v1/parking-notices", officer, call)
    assert code == 202, body
    clone = page.locator(f'#clones li[data-plate="{PLATE}"]')
    await expect(clone).to_be_visible(timeout=40_000)
    await expect(clone).to_contain_text(body["id"])  # the notice behind the report
    cloned_rows = page.locator('#feed tr[data-kind="suspected_cloned_plate"]')
    await expect(cloned_rows).to_have_count(1)
    await shots.take("cloned-plate")


async def _cancel_job(gw: Gateway, page: Page, shots: Shots, office: NewKey) -> None:
    """A job that sends slowly is running; the admin cancels it (Enter twice)."""
    recipients = [
        {"to": f"1370000{n:04d}", "params": {"name": "李", "due_date": "明年"}} for n in range(40)
    ]
    job_in = {
        "template": "licence_review_due",
        "recipients": recipients,
        "send_window": window(NOW),
        "rate": 0.5,
        "name": "换证提醒",
    }
    code, body, _ = await gw.request("POST", "/v1/reminder-jobs", office, job_in)
    assert code == 202, body
    job = page.locator(f'#jobs li[data-job="{body["job_id"]}"]')
    await expect(job).to_contain_text("进行中", timeout=10_000)
    await shots.take("job-running")
    cancel = job.locator("button[data-cancel]")
    await cancel.focus()
    await page.keyboard.press("Enter")
    await expect(cancel).to_contain_text("确定取消")
    await page.keyboard.press("Enter")
    await expect(job).to_contain_text("已取消", timeout=10_000)
    await expect(cancel).to_be_hidden()
    code, state, _ = await gw.request("GET", f"/v1/reminder-jobs/{body['job_id']}", office)
    assert state["status"] == "cancelled"
    assert state["done"] < len(recipients)
    await shots.take("job-cancelled")


async def _panels_show_the_stack(page: Page) -> None:
    for check in ("redis", "smpp", "ami"):
        light = page.locator(f'#system li[data-check="{check}"]')
        await expect(light).to_have_attribute("data-up", "true")
    await expect(page.locator("#charts svg")).to_have_count(3)
    # Today's delivery rate: the alert (and the one reminder sent) were delivered.
    delivery = page.locator('#charts .chart[data-chart="delivery"]')
    await expect(delivery).to_have_attribute("data-last", "1", timeout=10_000)


async def test_the_console_end_to_end(
    stack: Gateway, smsc: SmscSimulator, asterisk: Any, tmp_path: Path
) -> None:
    gw = stack
    admin, officer = await gw.add_key("admin"), await gw.add_key("officer")
    office = await gw.add_key("back_office")
    phone = SippPhone(
        "answer_dtmf",
        int(asterisk.env["GATEWAY_SIP_TRUNK_PORT"]),
        f"127.0.0.1:{asterisk.env['GATEWAY_SIP_BIND_PORT']}",
        1,
        tmp_path,
        "2",
    )
    try:
        async with chromium() as browser:
            context = await browser.new_context(viewport=VIEWPORT, locale="zh-CN")
            page = await context.new_page()
            shots = Shots(page, artifacts("end_to_end"))
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(gw.base + "/console/")
            await shots.take("login")
            await _login(page, admin.token)
            await page.evaluate("window.__sameDocument = true")
            await expect(page.locator("#who")).to_contain_text("admin")
            await _fits_the_screen(page)
            await page.locator("#lang").click()  # English, and back to 中文
            await expect(page.locator("h1")).to_have_text("Command centre console")
            await expect(page.locator("#alert-h")).to_have_text("Accident alert SMS")
            await shots.take("english")
            await page.locator("#lang").click()
            await expect(page.locator("h1")).to_have_text("指挥中心控制台")
            await page.locator("#f-type").focus()

            await _alert_by_keyboard(gw, page, shots)
            await _cloned_plate(gw, page, shots, admin, officer)
            assert await asyncio.to_thread(phone.finish, 30) == 0
            await _cancel_job(gw, page, shots, office)
            await _panels_show_the_stack(page)
            assert await page.evaluate("window.__sameDocument") is True  # never reloaded

            # Log out: the page is back at the login, and the old cookie is refused.
            cookie = next(c for c in await context.cookies() if c["name"] == "gw_console")
            await page.locator("#logout").click()
            await expect(page.locator("#login-view")).to_be_visible()
            status = await page.evaluate("fetch('/v1/templates').then((r) => r.status)")
            assert status == 401
            assert gw.http is not None
            async with gw.http.get(
                gw.base + "/v1/templates", headers={"Cookie": f"gw_console={cookie['value']}"}
            ) as resp:
                assert resp.status == 401
            await shots.take("logged-out")
            # An officer's key is refused at the login.
            await page.locator("#login-key").focus()
            await page.keyboard.type(officer.token)
            await page.keyboard.press("Enter")
            await expect(page.locator("#login-error")).to_contain_text("officer")
            await expect(page.locator("#app-view")).to_be_hidden()
            await shots.take("officer-refused")
            assert not errors, errors
            await context.close()
    finally:
        phone.stop()


async def test_the_feed_keeps_200_rows_and_does_not_move_under_the_reader(
    redis_server: str, prefix: str
) -> None:
    gw = Gateway(make_settings(redis_server, prefix, free_port()))
    await gw.start(workers=False)
    try:
        cc = await gw.add_key("command_center")

        async def post(n: int) -> str:
            for i in range(n):
                code, body, _ = await gw.request(
                    "POST", "/v1/messages", cc, {"to": f"1380000{i:04d}", "text": "测试"}
                )
                assert code == 202
            return str(body["id"])

        async with chromium() as browser:
            page = await browser.new_page(viewport=VIEWPORT)
            shots = Shots(page, artifacts("feed"))
            await page.goto(gw.base + "/console/")
            await _login(page, cc.token)
            await post(60)
            rows = page.locator("#feed tr")
            await expect(rows).to_have_count(60)
            form_before = await page.locator("#alert-form").bounding_box()
            box = page.locator("#feed-box")
            await box.evaluate("(b) => { b.scrollTop = 260; }")  # the reader scrolled 10 rows
            top = await page.evaluate(
                "(() => { const b = document.getElementById('feed-box').getBoundingClientRect();"
                " return document.elementFromPoint(b.left + 200, b.top + 40)"
                ".closest('tr').dataset.id; })()"
            )
            await post(150)
            await expect(rows).to_have_count(200)  # the last 200 only
            seen_now = await page.evaluate(
                "(() => { const b = document.getElementById('feed-box').getBoundingClientRect();"
                " return document.elementFromPoint(b.left + 200, b.top + 40)"
                ".closest('tr').dataset.id; })()"
            )
            assert seen_now == top  # the row under the reader's eyes stayed put
            heights = await rows.evaluate_all("(rs) => [...new Set(rs.map((r) => r.offsetHeight))]")
            assert len(heights) == 1  # every row the same height: no jump as rows come
            assert await page.locator("#alert-form").bounding_box() == form_before
            # The filters: only the status picked, without reloading the rows.
            await page.locator("#filter-status").select_option("queued")
            await expect(page.locator("#feed tr:not(.hidden)")).to_have_count(200)
            newest = await post(1)
            await NoticeScripts(gw.redis, gw.keys).set_status(
                notice_id=newest,
                status=NoticeStatus.SUBMITTED,
                at=now_iso(),
                detail={},
            )
            await expect(page.locator("#feed tr.hidden")).to_have_count(1)  # not queued
            await expect(rows).to_have_count(200)
            await page.locator("#filter-kind").select_option("message")
            await expect(page.locator("#feed tr:not(.hidden)")).to_have_count(199)
            await page.locator("#filter-status").select_option("")
            await expect(page.locator("#feed tr:not(.hidden)")).to_have_count(200)
            await shots.take("feed-200")
            # Keyboard: the form's fields in order, then the send button.
            await page.locator("#f-type").focus()
            order = []
            for _ in range(4):
                await page.keyboard.press("Tab")
                order.append(await page.evaluate("document.activeElement.id"))
            assert order == ["f-phone", "f-location", "f-case", "alert-submit"]
    finally:
        await close_or_dump(gw)
