"""The CPU cost of the bare operations one message needs, with the libraries the design names
and with leaner ways of doing the same, on this machine: what is left for the gateway's own
work under a throughput target (docs/performance.md, "What 1.5x would take").

A message sent with a receipt callback is, at the least: one HTTP request served, one signed
webhook posted, a Redis call of its own and four SMPP PDUs over a socket (submit_sm out, its
response in, the receipt in, its response out). Each is measured here alone, with nothing of
the gateway's around it:

- ``http-server``: an aiohttp application (uvloop) whose handler reads the JSON body, parses
  it and answers 202 with a small JSON body, in a child process; a lean raw-socket client here
  keeps ``--concurrency`` keep-alive connections busy. The child's CPU per request.
- ``http-client``: ``aiohttp.ClientSession.post`` of a 300-byte JSON body with two headers to a
  raw-socket child that answers 204. This process's CPU per request.
- ``lean-client``: the same POSTs from that raw keep-alive client (asyncio streams): what a
  sender leaner than ``ClientSession.post`` could cost.
- ``redis-script``: ``EVALSHA`` of a script that writes a 10-field hash and a stream entry,
  ``--concurrency`` tasks at once, one call each; this process's CPU and Redis's per call.
- ``redis-pipelined``: the same calls, 64 to a pipeline (a group commit of many requests).
- ``redis-get``: a plain ``GET``, one call each.
- ``socket-frame``: a 60-byte frame written and its 20-byte answer read on one uvloop
  connection, a window of 64 frames in flight (the shape of SMPP submits with a window); this
  process's CPU per frame and answer (two PDUs).

Each is run three times; the median is printed, in microseconds of CPU (user + system).

    .venv/bin/python -m bench.floor [--ops 20000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import psutil
import uvloop

from bench.host_speed import host_line
from bench.sms_path import ROOT, free_port, redis_command, wait_port

BODY = json.dumps(
    {
        "to": "+8613800138000",
        "text": "【交警提示】您的车辆年检即将到期，请及时办理。",
        "callback_url": "http://127.0.0.1:9/hook/leg",
        "status_events": ["delivered", "undeliverable"],
    },
    ensure_ascii=False,
).encode()
WEBHOOK = json.dumps(
    {
        "id": "n_0123456789abcdef0123456789abcdef",
        "kind": "message",
        "channel": "sms",
        "status": "delivered",
        "at": "2026-12-02T23:00:00.000Z",
        "detail": {"parts": 1, "stat": "DELIVRD", "err": "000", "message_id": "1a2b3c4d"},
        "event_id": "e_0123456789abcdef",
        "attempt": 1,
    }
).encode()
PIPELINED = 64
SCRIPT = """
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'kind', 'message', 'channel', 'sms', 'status',
           'queued', 'to', ARGV[2], 'parts', '1', 'key_id', 'k1', 'created_at', ARGV[3],
           'stats_hour', '1', 'callback_url', ARGV[4])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', '10000', '*', 'id', ARGV[1], 'to', ARGV[2])
return 1
"""


def _cpu(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


# -- child processes -------------------------------------------------------------------------
def serve_aiohttp(port: int) -> None:
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        return web.Response(
            status=202,
            body=json.dumps({"id": "n_0123", "to": body["to"]}).encode(),
            content_type="application/json",
        )

    app = web.Application()
    app.router.add_post("/v1/messages", handle)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


class _Answer(asyncio.Protocol):
    """Answers each HTTP request (headers, then Content-Length bytes) with 204, or each
    frame (its 4-byte length first, as SMPP) with a 20-byte frame."""

    def __init__(self, frames: bool) -> None:
        self.frames = frames
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        out = []
        while True:
            if self.frames:
                if len(self.buf) < 4:
                    break
                n = int.from_bytes(self.buf[:4], "big")
                if len(self.buf) < n:
                    break
                self.buf = self.buf[n:]
                out.append(b"\x00\x00\x00\x14" + b"\x80\x00\x00\x04" + bytes(12))
                continue
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = self.buf[:end].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if len(self.buf) < end + 4 + length:
                break
            self.buf = self.buf[end + 4 + length :]
            out.append(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        if out:
            self.t.write(b"".join(out))


def serve_raw(port: int, frames: bool) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Answer(frames), "127.0.0.1", port)
        await server.serve_forever()

    uvloop.run(main())


# -- measurements ----------------------------------------------------------------------------
async def _raw_http_client(
    port: int, ops: int, concurrency: int, expect: bytes = b"HTTP/1.1 202"
) -> None:
    """Keep-alive POSTs, one at a time per connection, with as little work as can be."""
    request = (
        b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer x\r\nContent-Length: " + str(len(BODY)).encode() + b"\r\n\r\n"
    ) + BODY
    left = [ops]

    async def conn() -> None:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        while left[0] > 0:
            left[0] -= 1
            w.write(request)
            head = await r.readuntil(b"\r\n\r\n")
            if not head.startswith(expect):
                raise RuntimeError(f"unexpected answer {head[:40]!r}")
            at = head.lower().find(b"content-length:")
            length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if length:
                await r.readexactly(length)
        w.close()

    await asyncio.gather(*(conn() for _ in range(concurrency)))


async def m_http_server(ports: dict[str, int], ops: int, conc: int, pids: dict[str, int]) -> float:
    before = _cpu(pids["aiohttp"])
    await _raw_http_client(ports["aiohttp"], ops, conc)
    return (_cpu(pids["aiohttp"]) - before) / ops


async def m_lean_client(ports: dict[str, int], ops: int, conc: int, pids: dict[str, int]) -> float:
    """The raw keep-alive client above, its own CPU: what a sender leaner than
    ``ClientSession.post`` could cost (against the raw answering child)."""
    before = _own_cpu()
    await _raw_http_client(ports["raw-http"], ops, conc, expect=b"HTTP/1.1 204")
    return (_own_cpu() - before) / ops


async def m_http_client(ports: dict[str, int], ops: int, conc: int, pids: dict[str, int]) -> float:
    import aiohttp

    url = f"http://127.0.0.1:{ports['raw-http']}/hook/leg"
    headers = {"X-Gateway-Signature": "t=1,v1=" + "0" * 64, "Content-Type": "application/json"}
    left = [ops]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conc)) as http:

        async def worker() -> None:
            while left[0] > 0:
                left[0] -= 1
                async with http.post(url, data=WEBHOOK, headers=headers) as r:
                    await r.read()
                    if r.status != 204:
                        raise RuntimeError(f"unexpected status {r.status}")

        await worker()  # one connection up before the count
        left[0] = ops
        before = _own_cpu()
        await asyncio.gather(*(worker() for _ in range(conc)))
        return (_own_cpu() - before) / ops


async def _redis_calls(
    ports: dict[str, int], ops: int, conc: int, pids: dict[str, int], call: str
) -> tuple[float, float]:
    import redis.asyncio as aioredis

    r = aioredis.Redis(port=ports["redis"], max_connections=conc)
    try:
        sha = await r.script_load(SCRIPT)
        await r.set("floor:get", "x" * 40)
        left = [ops]

        async def worker() -> None:
            while left[0] > 0:
                i = left[0] = left[0] - 1
                if call == "script":
                    await r.evalsha(sha, 2, f"floor:n:{i}", "floor:q", f"n_{i}", "+86138", "t", "u")
                elif call == "pipelined":  # a group commit: one round trip for many calls
                    pipe = r.pipeline(transaction=False)
                    for j in range(i, max(i - PIPELINED, -1), -1):
                        pipe.evalsha(sha, 2, f"floor:n:{j}", "floor:q", f"n_{j}", "+86", "t", "u")
                    left[0] = max(i - PIPELINED + 1, 0)
                    await pipe.execute()
                else:
                    await r.get("floor:get")

        own, server = _own_cpu(), _cpu(pids["redis"])
        await asyncio.gather(*(worker() for _ in range(conc)))
        return (_own_cpu() - own) / ops, (_cpu(pids["redis"]) - server) / ops
    finally:
        await r.flushall()
        await r.aclose()


async def m_socket_frame(ports: dict[str, int], ops: int, conc: int, pids: dict[str, int]) -> float:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    frame = (60).to_bytes(4, "big") + b"\x00\x00\x00\x04" + bytes(52)
    window = 64

    class Client(asyncio.Protocol):
        def __init__(self) -> None:
            self.buf = b""
            self.sent = self.got = 0

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.t: asyncio.Transport = transport  # type: ignore[assignment]
            for _ in range(min(window, ops)):
                self.t.write(frame)
                self.sent += 1

        def data_received(self, data: bytes) -> None:
            self.buf += data
            while len(self.buf) >= 4:
                n = int.from_bytes(self.buf[:4], "big")
                if len(self.buf) < n:
                    break
                self.buf = self.buf[n:]
                self.got += 1
                if self.sent < ops:
                    self.t.write(frame)
                    self.sent += 1
            if self.got >= ops and not done.done():
                done.set_result(None)

    before = _own_cpu()
    transport, _ = await loop.create_connection(Client, "127.0.0.1", ports["raw-frames"])
    await done
    transport.close()
    return (_own_cpu() - before) / ops


Measure = Callable[[dict[str, int], int, int, dict[str, int]], Awaitable[float]]


async def run(args: argparse.Namespace, ports: dict[str, int], pids: dict[str, int]) -> None:
    for p in ports.values():
        await wait_port(p)
    rows: list[tuple[str, str]] = []

    async def median_of(m: Callable[[], Awaitable[float]]) -> float:
        await m()  # warm-up, not counted
        return statistics.median([await m() for _ in range(3)]) * 1e6

    ops, conc = args.ops, args.concurrency
    server = await median_of(lambda: m_http_server(ports, ops, conc, pids))
    rows.append(("http-server (aiohttp, child's CPU)", f"{server:.0f}"))
    client = await median_of(lambda: m_http_client(ports, ops, conc, pids))
    rows.append(("http-client (aiohttp ClientSession.post)", f"{client:.0f}"))
    lean = await median_of(lambda: m_lean_client(ports, ops, conc, pids))
    rows.append(("lean-client (asyncio streams, keep-alive POST)", f"{lean:.0f}"))
    for call in ("script", "pipelined", "get"):
        runs = [await _redis_calls(ports, ops, conc, pids, call) for _ in range(4)][1:]
        own = statistics.median(r[0] for r in runs) * 1e6
        srv = statistics.median(r[1] for r in runs) * 1e6
        what = f"{PIPELINED} scripts per pipeline, " if call == "pipelined" else ""
        rows.append((f"redis-{call} ({what}redis-py client / Redis)", f"{own:.0f} / {srv:.0f}"))
    frame = await median_of(lambda: m_socket_frame(ports, ops * 5, conc, pids))
    rows.append(("socket-frame (uvloop, frame out + answer in)", f"{frame:.1f}"))
    width = max(len(r[0]) for r in rows)
    print(f"{ops} operations a run, concurrency {conc}, median of 3 runs; CPU microseconds each")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--ops", type=int, default=20_000, help="operations per run")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument(
        "--serve", choices=("aiohttp", "raw-http", "raw-frames"), help=argparse.SUPPRESS
    )
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve == "aiohttp":
        serve_aiohttp(args.port)
        return 0
    if args.serve:
        serve_raw(args.port, frames=args.serve == "raw-frames")
        return 0
    if not shutil.which("redis-server"):
        print("redis-server is missing: run scripts/setup.sh", file=sys.stderr)
        return 2
    ports = {name: free_port() for name in ("aiohttp", "raw-http", "raw-frames", "redis")}
    procs: list[subprocess.Popen[bytes]] = []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    print(host_line("before"))
    with tempfile.TemporaryDirectory(prefix="gw-floor-") as tmp:
        try:
            for name in ("aiohttp", "raw-http", "raw-frames"):
                cmd = [sys.executable, "-m", "bench.floor", "--serve", name]
                procs.append(subprocess.Popen([*cmd, "--port", str(ports[name])], env=env))
            redis = redis_command(ports["redis"], Path(tmp))
            procs.append(subprocess.Popen(redis, stdout=subprocess.DEVNULL))
            names = ("aiohttp", "raw-http", "raw-frames", "redis")
            pids = dict(zip(names, (p.pid for p in procs), strict=True))
            started = time.monotonic()
            uvloop.run(run(args, ports, pids))
            print(f"{time.monotonic() - started:.0f} s")
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
    print(host_line("after"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
