"""Every route of the route table, walked with no key, a revoked key and each role: the table
is the only place roles are declared, so what it says is what the API does."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gateway.api.app import create_app
from gateway.api.route_table import ROUTES
from gateway.api.routing import Route
from gateway.store.apikeys import ROLES, ApiKeyStore, NewKey
from tests.conftest import Gateway, close_or_dump, free_port, make_settings

# Path values that name nothing: the handler answers 404/422, never 401/403.
MISSING = {
    "id": "missing",
    "ref": "missing",
    "plate": "云Z99999",
    "phone": "13900000000",
    "name": "missing",
}
LATER = "03:00-03:01"  # a job that waits for its window sends nothing during the test


def _path(route: Route, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], route.path)


def _admits(route: Route, role: str) -> bool:
    assert route.roles is not None
    return role == "admin" or not route.roles or role in route.roles


@pytest.fixture
async def api(redis_server: str, prefix: str) -> AsyncIterator[Gateway]:
    """The API alone: the role check needs no worker and no SMSC."""
    gw = Gateway(make_settings(redis_server, prefix, free_port()))
    await gw.start(workers=False)
    gw._admin = await gw.add_key("admin")
    yield gw
    await close_or_dump(gw)


async def test_the_table_is_every_route_the_app_serves() -> None:
    app = create_app(make_settings("redis://127.0.0.1:1/0", "unused", free_port()))
    served = {
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.resource is not None and r.method != "HEAD"
    }
    assert served == {(r.method, r.path) for r in ROUTES}
    assert len(ROUTES) == len(served)  # no route declared twice
    for route in ROUTES:
        assert route.roles is None or set(route.roles) <= set(ROLES), route.path


async def test_every_route_refuses_a_missing_or_revoked_key(api: Gateway) -> None:
    revoked = await api.add_key("admin")
    assert await ApiKeyStore(api.redis, api.keys).revoke(revoked.key.id)
    wrong: list[str] = []
    for route in ROUTES:
        path = _path(route, MISSING)
        for label, key in (("no key", None), ("revoked key", revoked)):
            status, body, headers = await api.request(route.method, path, key)
            if route.roles is None:
                if status == 401:
                    wrong.append(f"{route.method} {route.path} is public but gave 401")
                continue
            if status != 401 or body["error"]["code"] != "unauthorized":
                wrong.append(f"{route.method} {route.path} with {label}: {status}")
            elif headers.get("WWW-Authenticate") != "Bearer":
                wrong.append(f"{route.method} {route.path}: 401 without WWW-Authenticate")
    assert not wrong, "\n".join(wrong)


async def test_every_route_admits_exactly_the_roles_the_table_names(api: Gateway) -> None:
    keys = {role: await api.add_key(role) for role in ROLES}
    wrong: list[str] = []
    for route in ROUTES:
        if route.roles is None:
            continue
        path = _path(route, MISSING)
        for role, key in keys.items():
            status, body, _ = await api.request(route.method, path, key)
            if _admits(route, role):
                if status in (401, 403):
                    wrong.append(f"{route.method} {route.path} refused {role}: {status} {body}")
            elif status != 403 or body["error"]["code"] != "forbidden":
                wrong.append(f"{route.method} {route.path} let {role} through: {status}")
    assert not wrong, "\n".join(wrong)


async def _notice(gw: Gateway, owner: NewKey) -> str:
    code, body, _ = await gw.request(
        "POST", "/v1/messages", owner, {"to": "13800138000", "text": "路面结冰，注意安全"}
    )
    assert code == 202, body
    return str(body["id"])


async def _job(gw: Gateway, owner: NewKey) -> str:
    recipient = {"to": "13700001111", "params": {"name": "李", "due_date": "明年"}}
    code, body, _ = await gw.request(
        "POST",
        "/v1/reminder-jobs",
        owner,
        {"template": "licence_review_due", "recipients": [recipient], "send_window": LATER},
    )
    assert code == 202, body
    return str(body["job_id"])


async def _binding_request(gw: Gateway, owner: NewKey) -> str:
    code, body, _ = await gw.request(
        "POST",
        "/v1/binding-requests",
        owner,
        {"plate": "云A1B234", "phone": "13812345678", "agent_id": "seat-07"},
    )
    assert code == 201, body
    return str(body["ref"])


# The path prefix of each kind of object a caller owns, its maker and the role that makes it.
Maker = Callable[[Gateway, NewKey], Awaitable[str]]
OBJECTS: dict[str, tuple[str, str, Maker]] = {
    "/v1/notices/": ("id", "command_center", _notice),
    "/v1/reminder-jobs/": ("id", "command_center", _job),
    "/v1/binding-requests/": ("ref", "binding_agent", _binding_request),
}


def _kind(route: Route) -> tuple[str, str, Maker]:
    found = [v for prefix, v in OBJECTS.items() if route.path.startswith(prefix)]
    assert found, f"{route.path}: add its object's maker to OBJECTS"
    return found[0]


@pytest.mark.parametrize(
    "route",
    [r for r in ROUTES if r.own_object],
    ids=lambda r: f"{r.method} {r.path}",
)
async def test_another_key_of_the_same_role_cannot_see_a_callers_object(
    api: Gateway, route: Route
) -> None:
    param, _, make = _kind(route)
    assert route.roles is not None
    role = route.roles[0] if route.roles else "command_center"
    owner, other = await api.add_key(role), await api.add_key(role)
    path = _path(route, {**MISSING, param: await make(api, owner)})
    # Not even that it exists: the same answer as for an object that does not.
    _, nothing, _ = await api.request(route.method, _path(route, MISSING), owner)
    status, body, _ = await api.request(route.method, path, other)
    assert (status, body["error"]["code"]) == (404, nothing["error"]["code"])
    # The owner and admins get past the check (409: cancelled or finished already; 422: the
    # empty body the walk sends where a route takes one).
    for key in (owner, api._admin):
        status, body, _ = await api.request(route.method, path, key, {} if route.body else None)
        assert status in (200, 409, 422), body


async def test_binding_requests_are_the_business_of_the_key_that_opened_them(
    api: Gateway,
) -> None:
    routes = [r for r in ROUTES if r.path.startswith("/v1/binding-requests/")]
    assert routes
    assert all(r.own_object for r in routes)
    opener, other = await api.add_key("binding_agent"), await api.add_key("binding_agent")
    ref = await _binding_request(api, opener)
    for method, path, body in (
        ("GET", f"/v1/binding-requests/{ref}", None),
        ("POST", f"/v1/binding-requests/{ref}/verify", {"code": "123456"}),
        ("POST", f"/v1/binding-requests/{ref}/cancel", None),
    ):
        status, answer, _ = await api.request(method, path, other, body)
        assert (status, answer["error"]["code"]) == (404, "unknown_reference"), path
    status, answer, _ = await api.request("GET", f"/v1/binding-requests/{ref}", opener)
    assert (status, answer["status"], answer["attempts"]) == (200, "pending", 0)


async def test_the_openapi_document_states_each_routes_roles(api: Gateway) -> None:
    status, spec, _ = await api.request("GET", "/openapi.json")
    assert status == 200
    for route in ROUTES:
        op = spec["paths"][route.path][route.method.lower()]
        if route.roles is None:
            assert "security" not in op, route.path
        else:
            assert op["x-roles"] == (list(route.roles) or ["any"]), route.path
        params = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert params == set(re.findall(r"\{(\w+)\}", route.path)), route.path
