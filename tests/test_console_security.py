"""The console's session: who may log in, the cookie's flags, CSRF on every change, logout
and the idle timeout, and the API key kept out of the browser."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from typing import Any

import aiohttp
import pytest

from gateway.store.apikeys import NewKey
from tests.conftest import Gateway, close_or_dump, free_port, make_settings
from tests.sse import open_stream

ALERT = {
    "accident_type": "injury",
    "reporter_phone": "13800138000",
    "location": "北京路",
    "case_id": "A-1",
}


async def _api(redis_server: str, prefix: str, **extra: str) -> Gateway:
    gw = Gateway(make_settings(redis_server, prefix, free_port(), **extra))
    await gw.start(workers=False)
    gw._admin = await gw.add_key("admin")
    return gw


@pytest.fixture
async def api(redis_server: str, prefix: str) -> AsyncIterator[Gateway]:
    gw = await _api(redis_server, prefix, GATEWAY_EVENTS_HEARTBEAT_SECONDS="0.2")
    yield gw
    await close_or_dump(gw)


class Browser:
    """A cookie-keeping client, as the console's page is."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""
        self.set_cookie: list[str] = []

    async def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        async with self.http.request(
            method, self.gw.base + path, json=body, headers=headers or {}
        ) as resp:
            self.set_cookie += resp.headers.getall("Set-Cookie", [])
            return resp.status, await resp.json()

    async def login(self, key: NewKey | str, headers: dict[str, str] | None = None) -> Any:
        code, session = await self.call("GET", "/console/session")
        assert (code, session["logged_in"]) == (200, False)
        token = key.token if isinstance(key, NewKey) else key
        h = {"X-CSRF-Token": session["login_csrf_token"], **(headers or {})}
        code, body = await self.call("POST", "/console/login", {"key": token}, h)
        if code == 200:
            self.csrf = body["csrf_token"]
        return code, body

    def session_cookie(self) -> str:
        for c in self.http.cookie_jar:
            if c.key == "gw_console":
                return c.value
        return ""

    async def close(self) -> None:
        await self.http.close()


@pytest.fixture
async def browser(api: Gateway) -> AsyncIterator[Browser]:
    b = Browser(api)
    yield b
    await b.close()


def _cookie(set_cookie: list[str], name: str) -> Any:
    for header in set_cookie:
        parsed: SimpleCookie = SimpleCookie()
        parsed.load(header)
        if name in parsed and parsed[name].value:
            return parsed[name]
    raise AssertionError(f"no {name} cookie in {set_cookie}")


async def test_only_command_centre_and_admin_keys_may_log_in(
    api: Gateway, browser: Browser
) -> None:
    for role in ("officer", "back_office", "binding_agent"):
        code, body = await browser.login(await api.add_key(role))
        assert (code, body["error"]["code"]) == (403, "role_not_allowed"), role
    code, body = await browser.login("gwk_nope_" + "x" * 40)
    assert (code, body["error"]["code"]) == (401, "unauthorized")
    assert not browser.session_cookie()
    for role in ("command_center", "admin"):
        b = Browser(api)
        try:
            code, body = await b.login(await api.add_key(role))
            assert (code, body["role"]) == (200, role)
        finally:
            await b.close()


async def test_the_login_itself_needs_the_forms_token(api: Gateway, browser: Browser) -> None:
    cc = await api.add_key("command_center")
    code, body = await browser.call("POST", "/console/login", {"key": cc.token})
    assert (code, body["error"]["code"]) == (403, "csrf_required")
    await browser.call("GET", "/console/session")  # the form's token is now a cookie
    code, body = await browser.call(
        "POST", "/console/login", {"key": cc.token}, {"X-CSRF-Token": "guessed"}
    )
    assert (code, body["error"]["code"]) == (403, "csrf_required")
    assert not browser.session_cookie()


async def test_the_session_cookie_is_httponly_strict_and_never_the_key(
    api: Gateway, browser: Browser
) -> None:
    cc = await api.add_key("command_center")
    code, body = await browser.login(cc)
    assert code == 200
    cookie = _cookie(browser.set_cookie, "gw_console")
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/"
    assert not cookie["secure"]  # plain HTTP, no trusted proxy
    assert cc.token not in str(body)
    assert cc.token not in cookie.value
    # Redis keeps only the session token's hash.
    assert not await api.redis.exists(api.keys.console_session(cookie.value))
    # Behind an untrusted proxy the header is ignored.
    other = Browser(api)
    try:
        await other.login(cc, {"X-Forwarded-Proto": "https"})
        assert not _cookie(other.set_cookie, "gw_console")["secure"]
    finally:
        await other.close()


async def test_behind_a_trusted_tls_proxy_the_cookie_is_secure(
    redis_server: str, prefix: str
) -> None:
    gw = await _api(redis_server, prefix, GATEWAY_CONSOLE_TRUST_FORWARDED_PROTO="true")
    b = Browser(gw)
    try:
        code, _ = await b.login(await gw.add_key("admin"), {"X-Forwarded-Proto": "https"})
        assert code == 200
        assert _cookie(b.set_cookie, "gw_console")["secure"]
    finally:
        await b.close()
        await close_or_dump(gw)


async def test_every_console_post_without_the_csrf_token_is_403(
    api: Gateway, browser: Browser
) -> None:
    admin = await api.add_key("admin")
    assert (await browser.login(admin))[0] == 200
    code, body = await browser.call("GET", "/v1/templates")
    assert code == 200  # reads need no token
    posts = [
        ("/v1/accident-alerts", ALERT),
        ("/v1/accident-alerts/preview", {"accident_type": "injury"}),
        ("/v1/messages", {"to": "13800138000", "text": "测试"}),
        ("/v1/reminder-jobs/job_missing/cancel", {}),
        ("/v1/admin/opt-outs", {"phone": "13800138000"}),
        ("/console/logout", {}),
    ]
    for path, payload in posts:
        for headers in ({}, {"X-CSRF-Token": "wrong"}):
            code, body = await browser.call("POST", path, payload, headers)
            assert (code, body["error"]["code"]) == (403, "csrf_required"), (path, headers)
    assert not await api.redis.xlen(api.keys.events(0))  # nothing was made
    code, body = await browser.call(
        "POST", "/v1/accident-alerts", ALERT, {"X-CSRF-Token": browser.csrf}
    )
    assert (code, body["status"]) == (202, "queued")


async def test_after_logout_the_cookie_is_refused(api: Gateway, browser: Browser) -> None:
    assert (await browser.login(await api.add_key("command_center")))[0] == 200
    stolen = browser.session_cookie()
    code, body = await browser.call("POST", "/console/logout", {}, {"X-CSRF-Token": browser.csrf})
    assert (code, body["logged_out"]) == (200, True)
    assert not await api.redis.keys(api.keys.console_session("*"))
    assert api.http is not None
    async with api.http.get(
        api.base + "/v1/templates", headers={"Cookie": f"gw_console={stolen}"}
    ) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "unauthorized"
    code, session = await browser.call("GET", "/console/session")
    assert session["logged_in"] is False


async def test_the_session_ends_after_the_idle_timeout_and_use_renews_it(
    redis_server: str, prefix: str
) -> None:
    # 0.02 minutes: 1.2 s of idleness ends the session.
    gw = await _api(redis_server, prefix, GATEWAY_CONSOLE_SESSION_MINUTES="0.02")
    b = Browser(gw)
    try:
        assert (await b.login(await gw.add_key("command_center")))[0] == 200
        for _ in range(3):  # 2.1 s in all, each request within the timeout of the one before
            await asyncio.sleep(0.7)
            assert (await b.call("GET", "/v1/templates"))[0] == 200
        # The page's background refreshes do not count as use.
        background = {"X-Console-Background": "1"}
        for _ in range(3):
            await asyncio.sleep(0.5)
            code, _ = await b.call("GET", "/v1/templates", headers=background)
        assert code == 401
        code, body = await b.call("GET", "/v1/templates")
        assert (code, body["error"]["code"]) == (401, "unauthorized")
    finally:
        await b.close()
        await close_or_dump(gw)


async def test_a_console_stream_ends_with_its_session(api: Gateway, browser: Browser) -> None:
    assert (await browser.login(await api.add_key("command_center")))[0] == 200
    resp, reader = await open_stream(browser.http, api.base + "/v1/events/stream")
    assert resp.status == 200
    code, _ = await browser.call("POST", "/console/logout", {}, {"X-CSRF-Token": browser.csrf})
    assert code == 200
    event = await reader.next(within=5)
    assert event is not None
    assert event.event == "session_ended"
    assert await reader.next(within=5) is None
    resp.close()


async def test_the_page_and_its_files_come_from_the_gateway_with_a_strict_policy(
    api: Gateway,
) -> None:
    assert api.http is not None
    for path, ctype in (
        ("/console/", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/panels.js", "text/javascript"),
        ("/console/i18n.js", "text/javascript"),
        ("/console/app.css", "text/css"),
    ):
        async with api.http.get(api.base + path) as resp:
            assert resp.status == 200, path
            assert resp.content_type == ctype, path
            csp = resp.headers["Content-Security-Policy"]
            assert "default-src 'self'" in csp
            assert "frame-ancestors 'none'" in csp
            text = await resp.text()
            assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
            assert "https://" not in text, path  # nothing from a CDN
            assert "localStorage" not in text, path
    async with api.http.get(api.base + "/console", allow_redirects=False) as resp:
        assert (resp.status, resp.headers["Location"]) == (302, "/console/")
