"""The console's own routes: its static page, the session (login, who am I, logout).

Login exchanges an API key of role ``command_center`` or ``admin`` for a server-side session
(``gateway.store.console_sessions``): an HttpOnly, SameSite=Strict cookie (Secure over TLS)
and a CSRF token the page keeps in memory only. The login form itself is protected by a
double-submit token: ``GET /console/session`` sets it as a cookie and returns it, and the
login POST must send it back in ``X-CSRF-Token``.
"""

from __future__ import annotations

import hmac
import math
import secrets
from functools import cache
from importlib import resources

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.auth import CSRF_HEADER, SESSION, SESSION_COOKIE
from gateway.api.body import read_model
from gateway.api.context import API_KEYS, CONSOLE_SESSIONS, GCRA, KEYS, SETTINGS
from gateway.api.errors import ApiError
from gateway.api.responses import json_response
from gateway.store.apikeys import hash_token

CONSOLE_ROLES = ("command_center", "admin")
LOGIN_COOKIE = "gw_console_login"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Nothing from elsewhere: no CDN, no inline script, not framed.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    key: str = Field(min_length=1, max_length=200, description="an API key (gwk_...)")


@cache
def _asset(name: str) -> bytes | None:
    base = resources.files("gateway.console") / "static"
    entry = base / name
    if not entry.is_file():
        return None
    return entry.read_bytes()


def _file_response(name: str) -> web.Response:
    suffix = name[name.rfind(".") :] if "." in name else ""
    body = _asset(name) if suffix in _TYPES and "/" not in name else None
    if body is None:
        raise ApiError(404, "not_found", "no such console file")
    return web.Response(body=body, headers={**_HEADERS, "Content-Type": _TYPES[suffix]})


async def console_redirect(request: web.Request) -> web.Response:
    """``/console`` is the page at ``/console/``."""
    raise web.HTTPFound("/console/")


async def console_page(request: web.Request) -> web.Response:
    """The console's page (zh-CN; 中文/English switch on the page)."""
    return _file_response("index.html")


async def console_asset(request: web.Request) -> web.Response:
    """The page's script, style sheet and texts, from the package (no CDN)."""
    return _file_response(request.path.rsplit("/", 1)[1])


def _secure(request: web.Request) -> bool:
    if request.secure:
        return True
    trust = request.app[SETTINGS].console.console_trust_forwarded_proto
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return trust and proto == "https"


def _set_cookie(request: web.Request, resp: web.Response, name: str, value: str) -> None:
    resp.set_cookie(
        name,
        value,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=_secure(request),
    )


async def get_session(request: web.Request) -> web.Response:
    """Who is logged in here, with the session's CSRF token; or, when nobody is, the token
    the login form must send (also set as a cookie)."""
    token = request.cookies.get(SESSION_COOKIE, "")
    sessions = request.app[CONSOLE_SESSIONS]
    renew = request.headers.get("X-Console-Background") != "1"
    session = await sessions.get(token, renew=renew) if token else None
    key = await request.app[API_KEYS].by_hash(session.key_hash) if session else None
    if session is not None and key is not None:
        minutes = request.app[SETTINGS].console.console_session_minutes
        return json_response(
            {
                "logged_in": True,
                "role": key.role,
                "key_id": key.id,
                "key_name": key.name,
                "csrf_token": session.csrf,
                "idle_minutes": minutes,
            },
            headers={"Cache-Control": "no-store"},
        )
    login_csrf = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    resp = json_response(
        {"logged_in": False, "login_csrf_token": login_csrf},
        headers={"Cache-Control": "no-store"},
    )
    _set_cookie(request, resp, LOGIN_COOKIE, login_csrf)
    if token:
        resp.del_cookie(SESSION_COOKIE, path="/")
    return resp


async def login(request: web.Request) -> web.Response:
    """Exchange an API key (command_center or admin) for a console session."""
    expected = request.cookies.get(LOGIN_COOKIE, "")
    sent = request.headers.get(CSRF_HEADER, "")
    if not (expected and sent and hmac.compare_digest(sent.encode(), expected.encode())):
        raise ApiError(
            403, "csrf_required", f"log in from the console page: {CSRF_HEADER} is missing"
        )
    granted, wait = await request.app[GCRA].take(
        request.app[KEYS].rate(f"console-login:{request.remote}"), 1.0, 10
    )
    if not granted:
        raise ApiError(
            429,
            "rate_limited",
            "too many login attempts; wait a moment",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    body, _ = await read_model(request, LoginIn)
    token = body.key.strip()
    key = await request.app[API_KEYS].authenticate(token)
    if key is None:
        raise ApiError(401, "unauthorized", "unknown or revoked API key")
    if key.role not in CONSOLE_ROLES:
        raise ApiError(
            403,
            "role_not_allowed",
            f"role {key.role} may not use the console; needs command_center or admin",
        )
    sessions = request.app[CONSOLE_SESSIONS]
    old = request.cookies.get(SESSION_COOKIE)
    if old:  # a new login never keeps an old session id (no fixation)
        await sessions.end(sessions.hash_of(old))
    cookie, session = await sessions.create(hash_token(token), key)
    resp = json_response(
        {
            "logged_in": True,
            "role": key.role,
            "key_id": key.id,
            "key_name": key.name,
            "csrf_token": session.csrf,
            "idle_minutes": request.app[SETTINGS].console.console_session_minutes,
        },
        headers={"Cache-Control": "no-store"},
    )
    _set_cookie(request, resp, SESSION_COOKIE, cookie)
    resp.del_cookie(LOGIN_COOKIE, path="/")
    return resp


async def logout(request: web.Request) -> web.Response:
    """End the console session (in Redis: its cookie is refused from now on). A Bearer
    caller has no session: nothing to end."""
    session = request.get(SESSION)
    ended = session is not None and await request.app[CONSOLE_SESSIONS].end(session.session_hash)
    resp = json_response({"logged_out": ended})
    resp.del_cookie(SESSION_COOKIE, path="/")
    return resp
