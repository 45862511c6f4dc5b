"""The FastAGI server's own budgets, against the real server on an ephemeral port: only
allowed addresses get a session, and a peer that trickles bytes is cut at the deadline."""

from __future__ import annotations

import asyncio
import time
from ipaddress import ip_network
from typing import Any

from gateway.ivr_flows.agi_env import AgiRequest
from gateway.ivr_flows.agi_server import HEADER_SECONDS, FastAgi, FastAgiServer, FlowResult
from gateway.ivr_flows.parking import call_identity


def _reads_identity_then_plays(agi: FastAgi, req: AgiRequest) -> dict[str, Any]:
    call_identity(agi)
    agi.stream_file("notice", escape_digits="12")
    return {"outcome": "acknowledged"}


async def _serve(**kw: Any) -> tuple[FastAgiServer, list[FlowResult], asyncio.Task[None]]:
    results: list[FlowResult] = []

    async def on_result(result: FlowResult) -> None:
        results.append(result)

    flows = {"parking": lambda agi, req: {}, "broken": _reads_identity_then_plays}
    server = FastAgiServer("127.0.0.1", 0, flows, on_result, **kw)
    server.bind()
    return server, results, asyncio.create_task(server.serve())


async def test_a_peer_outside_the_allow_list_is_closed_before_it_is_read() -> None:
    server, results, task = await _serve(allow=[ip_network("10.0.0.0/8")])
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"agi_request: agi://127.0.0.1/parking\n\n")
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        async with asyncio.timeout(5):
            while not results:
                await asyncio.sleep(0.02)
        assert server.refused == 1
        assert results[0].outcome == {"error": "address_not_allowed", "peer": "127.0.0.1"}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.shutdown(1)


async def test_a_peer_trickling_its_header_is_cut_at_the_header_deadline() -> None:
    server, _, task = await _serve(session_timeout=60)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        started = time.monotonic()
        closed_at = None
        for byte in b"agi_network: yes\n" * 10:  # one byte every 0.25 s: 40 s if allowed
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                break
            if reader.at_eof() or await _closed(reader):
                closed_at = time.monotonic()
                break
        assert closed_at is not None, "the trickling peer was never cut"
        assert closed_at - started < HEADER_SECONDS + 2
        writer.close()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.shutdown(1)


async def _closed(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), 0.25) == b""
    except TimeoutError:
        return False


async def test_a_flow_broken_off_by_asterisk_still_names_its_call() -> None:
    """Asterisk answers an error mid-flow (as when it is restarted): the result carries the
    notice and token the flow had read, so the gateway can end that call's attempt."""
    server, results, task = await _serve()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"agi_request: agi://127.0.0.1/broken\nagi_channel: Local/x\n\n")
        for answer in (b"200 result=1 (ntc_b1)\n", b"200 result=1 (tok1)\n", b"510 Invalid\n"):
            assert (await asyncio.wait_for(reader.readline(), 5)).strip()  # the command
            writer.write(answer)
        async with asyncio.timeout(5):
            while not results:
                await asyncio.sleep(0.02)
        outcome = results[0].outcome
        assert (outcome["notice_id"], outcome["token"]) == ("ntc_b1", "tok1")
        assert outcome["error"]
        assert "outcome" not in outcome
        writer.close()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.shutdown(1)


async def test_a_flow_broken_off_before_its_first_command_is_named_by_its_header() -> None:
    """The dialplan passes the notice and token as the session's arguments: even a session
    whose very first command fails (Asterisk shutting down) names its call."""
    server, results, task = await _serve()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"agi_request: agi://127.0.0.1/broken\nagi_arg_1: ntc_b2\nagi_arg_2: tok2\n\n")
        assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"STREAM FILE")
        writer.write(b"511 Command Not Permitted on a dead channel\n")
        async with asyncio.timeout(5):
            while not results:
                await asyncio.sleep(0.02)
        outcome = results[0].outcome
        assert (outcome["notice_id"], outcome["token"]) == ("ntc_b2", "tok2")
        assert outcome["error"]
        writer.close()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.shutdown(1)
