"""Slow and hostile HTTP clients, replayed against the real API server (issue 15, 5 and 7).

Slowloris heads and bodies, idle keep-alive connections, a 40 MB CSV on one line, an upload
past the total cap, JSON nested 30,000 deep, a cursor Redis would refuse, and aiohttp's own
answers (405, 404, a bad request line): each is bounded in time and answered in the JSON
error shape, never a 500.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator

import pytest

from tests.conftest import Gateway, close_or_dump, make_settings

ALERT = {
    "accident_type": "injury",
    "reporter_phone": "13800138000",
    "location": "北京路",
    "case_id": "A-1",
}


@pytest.fixture
async def api(redis_server: str, prefix: str) -> AsyncIterator[Gateway]:
    """The API alone: one second for a request's head or body, three idle on keep-alive, and
    a 2 MB upload cap."""
    gw = Gateway(
        make_settings(
            redis_server,
            prefix,
            1,
            GATEWAY_HTTP_HEADER_TIMEOUT="1",
            GATEWAY_HTTP_BODY_TIMEOUT="1",
            GATEWAY_HTTP_KEEPALIVE_TIMEOUT="3",
            GATEWAY_JOB_MAX_BYTES=str(2 * 1024 * 1024),
        )
    )
    await gw.start(workers=False)
    gw._admin = await gw.add_key("admin")
    yield gw
    await close_or_dump(gw)


async def _open(gw: Gateway) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = gw.base.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def _closed_after(reader: asyncio.StreamReader, within: float) -> tuple[float, bytes]:
    """Seconds until the server closed the connection, and what it sent before."""
    start = time.monotonic()
    async with asyncio.timeout(within):
        data = await reader.read()
    return time.monotonic() - start, data


async def test_a_slowloris_head_is_cut_off(api: Gateway) -> None:
    reader, writer = await _open(api)
    start = time.monotonic()

    async def drip() -> None:
        writer.write(b"GET /healthz HTTP/1.1\r\n")
        for _ in range(40):  # a header byte every 0.25 s: never a whole head
            await asyncio.sleep(0.25)
            writer.write(b"X")
            await writer.drain()

    dripping = asyncio.create_task(drip())
    try:
        await _closed_after(reader, 5)
    finally:
        dripping.cancel()
        writer.close()
    assert time.monotonic() - start < 2  # the head's budget, before the idle timeout


async def test_a_slowloris_body_gets_408_and_the_connection_closes(api: Gateway) -> None:
    key = await api.add_key("command_center")
    reader, writer = await _open(api)
    writer.write(
        b"POST /v1/accident-alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + key.token.encode() + b"\r\nContent-Length: 400\r\n\r\n{"
    )

    async def drip() -> None:
        for _ in range(40):
            await asyncio.sleep(0.25)
            writer.write(b" ")
            await writer.drain()

    dripping = asyncio.create_task(drip())
    try:
        took, data = await _closed_after(reader, 15)
    finally:
        dripping.cancel()
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), data
    assert json.loads(body)["error"]["code"] == "body_timeout"
    assert took < 1 + 2 + 1  # the body budget, then the lingering read at most


async def test_idle_connections_are_closed(api: Gateway) -> None:
    reader, writer = await _open(api)  # connected, nothing sent: the head's budget
    took, data = await _closed_after(reader, 5)
    writer.close()
    assert data == b""
    assert took < 2
    reader, writer = await _open(api)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    took, data = await _closed_after(reader, 5)  # answered, then idle on keep-alive
    assert data.startswith(b"HTTP/1.1 200")
    assert 2.5 < took < 4
    writer.close()


async def test_a_40_mb_csv_on_one_line_is_refused_quickly(api: Gateway) -> None:
    office = await api.add_key("back_office")
    line = b"to,road,period,detour" + b",13800138000" * (40 * 1024 * 1024 // 12)
    start = time.monotonic()
    code, body, _ = await api.request(
        "POST",
        "/v1/reminder-jobs?template=traffic_conditions",
        office,
        data=io.BytesIO(line),  # type: ignore[arg-type]
        headers={"Content-Type": "text/csv"},
    )
    took = time.monotonic() - start
    assert (code, body["error"]["code"]) == (400, "invalid_csv"), body
    assert "longer than 1024 KiB" in body["error"]["message"]
    assert took < 2, took  # read up to the line cap, not to the end
    assert await api.redis.zcard(api.keys.jobs_active(0)) == 0


async def test_an_upload_past_the_total_cap_is_refused_and_no_job_is_left(api: Gateway) -> None:
    office = await api.add_key("back_office")
    rows = b"".join(b"1390%07d,r,p,d\n" % i for i in range(150_000))  # about 3 MB
    code, body, _ = await api.request(
        "POST",
        "/v1/reminder-jobs?template=traffic_conditions",
        office,
        data=io.BytesIO(b"to,road,period,detour\n" + rows),  # type: ignore[arg-type]
        headers={"Content-Type": "text/csv"},
    )
    assert (code, body["error"]["code"]) == (413, "body_too_large"), body
    assert body["error"]["details"] == {"max_bytes": 2 * 1024 * 1024}
    assert await api.redis.zcard(api.keys.jobs_active(0)) == 0


@pytest.mark.parametrize("path", ["/v1/accident-alerts", "/v1/reminder-jobs"])
async def test_json_nested_30000_deep_is_400(api: Gateway, path: str) -> None:
    key = await api.add_key("command_center")
    deep = '{"a":' + "[" * 30_000 + "]" * 30_000 + "}"  # 60 KB: under the body limit
    code, body, _ = await api.request("POST", path, key, data=deep)
    assert (code, body["error"]["code"]) == (400, "json_too_deep"), body
    shallow_but_over = '{"x":' + "[" * 40 + "]" * 40 + "}"
    code, body, _ = await api.request("POST", path, key, data=shallow_but_over)
    assert (code, body["error"]["code"]) == (400, "json_too_deep"), body


@pytest.mark.parametrize("cursor", [str(2**64), "9" * 5000, "-1", "1e3"])
async def test_opt_out_cursors_redis_would_refuse_are_400(api: Gateway, cursor: str) -> None:
    code, body, _ = await api.request("GET", f"/v1/admin/opt-outs?cursor={cursor}", api._admin)
    assert (code, body["error"]["code"]) == (400, "invalid_cursor"), body
    code, body, _ = await api.request("GET", f"/v1/admin/opt-outs?cursor={2**64 - 1}", api._admin)
    assert code == 200


async def test_aiohttp_own_answers_are_json_and_405_says_allow(api: Gateway) -> None:
    code, body, headers = await api.request("DELETE", "/v1/accident-alerts", api._admin)
    assert (code, body["error"]["code"]) == (405, "method_not_allowed")
    assert headers["Allow"] == "POST"
    code, body, headers = await api.request("GET", "/v1/nothing-here")
    assert (code, body["error"]["code"]) == (404, "not_found")
    assert headers["Content-Type"].startswith("application/json")
    reader, writer = await _open(api)
    writer.write(b"GET /v1/notices/\x00 HTTP/1.1\r\nHost: x\r\n\r\n")
    _, data = await _closed_after(reader, 5)
    head, _, raw = data.partition(b"\r\n\r\n")
    assert head.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400")), head
    assert b"application/json" in head
    assert json.loads(raw)["error"]["code"] == "invalid_url"
    writer.close()
