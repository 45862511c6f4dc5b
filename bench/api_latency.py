"""Open-loop API latency: accident alerts and parking notices at fixed arrival rates.

Starts a private redis-server, the SMSC simulator, a webhook receiver process and ONE
``gateway serve`` process (API and workers: the SMS it accepts go out over SMPP and come back
as receipts and signed webhooks while it is measured). Requests are sent on a fixed schedule
(request i at start + i/rate, whatever the answers before it), half accident alerts and half
parking notices, each with a ``callback_url``. A request's latency counts from the moment it
was due, so a stalled server is not hidden by a client that waits for it (no coordinated
omission). Quiet hours cover the whole day, so parking notices go out as SMS (the stack has no
Asterisk); the parking route still does its binding look-up and plate counting.

    .venv/bin/python -m bench.api_latency [--rates 250,500,1000] [--seconds 10]
        [--layout all|split] [--status-events delivered,undeliverable,...]

``--layout split`` runs ``serve --role api`` beside ``serve --role worker`` instead (where the
API's time goes when it shares its process with the workers); ``--status-events`` sends that
selection with every request (fewer webhooks per message).

Prints p50/p99/p99.9 (ms), errors (non-2xx, timeouts, requests the bounded client could not
start), the connections Redis accepted meanwhile and the CPU seconds of each process per rate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis.asyncio as aioredis

from bench.sms_path import ROOT, add_key, free_port, start_redis, stop_all, wait_port

PLATES = 500
MAX_CONNECTIONS = 512  # the client's bound: a request due with all of them busy is an error
TIMEOUT_S = 5.0


def _request(port: int, path: str, token: str, body: dict[str, object]) -> bytes:
    raw = json.dumps(body, ensure_ascii=False).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n\r\n"
    )
    return head.encode() + raw


class Client:
    """A lean keep-alive HTTP/1.1 client (one request per connection at a time), so the
    driver's own cost stays small beside the server's on a 2-core machine."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.open = 0

    async def send(self, raw: bytes) -> int:
        if self.idle:
            conn = self.idle.pop()
        elif self.open < MAX_CONNECTIONS:
            self.open += 1
            try:
                conn = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                self.open -= 1
                raise
        else:
            return -1
        reader, writer = conn
        try:
            writer.write(raw)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
        except BaseException:
            self.open -= 1
            writer.close()
            raise
        self.idle.append(conn)
        return status

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"alert": [], "park": []})
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] * 1000


async def open_loop(
    client: Client, requests: list[tuple[str, bytes]], rate: float, tally: Tally | None
) -> None:
    """Each request at its due time, in its own task; latency from the due time."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    async def one(kind: str, raw: bytes, due: float) -> None:
        try:
            async with asyncio.timeout(TIMEOUT_S):
                status = await client.send(raw)
        except TimeoutError:
            status = -2
        except OSError:
            status = -3
        if tally is None:
            return
        if status in (200, 202):
            tally.latencies[kind].append(loop.time() - due)
        else:
            tally.error({-1: "client_bound", -2: "timeout", -3: "connect"}.get(status, str(status)))

    start = loop.time() + 0.05
    for i, (kind, raw) in enumerate(requests):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(kind, raw, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks)


def workload(
    port: int, tokens: dict[str, str], hook: str, count: int, seq: int, events: list[str]
) -> list[tuple[str, bytes]]:
    extra: dict[str, object] = {"status_events": events} if events else {}
    out = []
    for i in range(seq, seq + count):
        if i % 2:
            body: dict[str, object] = {
                "accident_type": "minor_property_damage",
                "reporter_phone": f"139{i % 10**8:08d}",
                "location": "人民路与北京路口",
                "case_id": f"L-{i}",
                "callback_url": hook,
                **extra,
            }
            out.append(("alert", _request(port, "/v1/accident-alerts", tokens["cc"], body)))
        else:
            body = {
                "plate": f"云A{(i // 2) % PLATES:05d}",
                "location": "人民路12号",
                "move_within_minutes": 10,
                "officer_id": "bench-1",
                "callback_url": hook,
                **extra,
            }
            out.append(("park", _request(port, "/v1/parking-notices", tokens["officer"], body)))
    return out


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    out = {}
    for name, pid in pids.items():
        with contextlib.suppress(psutil.NoSuchProcess):
            t = psutil.Process(pid).cpu_times()
            out[name] = t.user + t.system
    t = psutil.Process().cpu_times()
    out["driver"] = t.user + t.system
    return out


async def connections(port: int) -> int:
    """How many connections Redis has accepted so far (new ones cost the gateway a setup)."""
    r = aioredis.Redis(port=port)
    try:
        return int((await r.info("stats"))["total_connections_received"])
    finally:
        await r.aclose()


async def bind_plates(port: int, admin: str) -> None:
    client = Client(port)
    for n in range(PLATES):
        raw = _request(
            port, "/v1/bindings", admin, {"plate": f"云A{n:05d}", "phone": f"138{n:08d}"}
        )
        status = await client.send(raw)
        if status != 201:
            raise RuntimeError(f"binding {n}: HTTP {status}")
    client.close()


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="250,500,1000", help="requests/s, comma separated")
    ap.add_argument("--seconds", type=float, default=10.0, help="measured time per rate")
    ap.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds per rate")
    ap.add_argument("--settle", type=float, default=3.0, help="idle seconds between rates")
    ap.add_argument(
        "--layout",
        choices=["all", "split"],
        default="all",
        help="all: one serve (API and workers); split: serve --role api beside --role worker",
    )
    ap.add_argument(
        "--status-events",
        default="",
        help="the requests' status_events (comma separated; default: none given, every status)",
    )
    args = ap.parse_args()
    rates = [min(float(r), 5000.0) for r in args.rates.split(",")]  # bounded
    seconds = min(args.seconds, 120.0)
    events = [e for e in args.status_events.split(",") if e]

    tmp = Path(tempfile.mkdtemp(prefix="gw-api-bench-"))
    ports = {k: free_port() for k in ("redis", "smpp", "http", "hook")}
    env = {
        **os.environ,
        "GATEWAY_REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/0",
        "GATEWAY_SMPP_PORT": str(ports["smpp"]),
        "GATEWAY_SIM_PORT": str(ports["smpp"]),
        "GATEWAY_HTTP_PORT": str(ports["http"]),
        "GATEWAY_SMPP_TPS": "100000",
        "GATEWAY_SIM_RECEIPT_DELAY": "0",
        "GATEWAY_VOICE_ENABLED": "false",
        "GATEWAY_QUIET_HOURS": "00:00-23:59",
        "GATEWAY_PLATE_CALLS_PER_HOUR": "0",
    }
    gw = [str(ROOT / ".venv/bin/gateway"), "--log-level", "WARNING"]
    py = str(ROOT / ".venv/bin/python")
    hook = f"http://127.0.0.1:{ports['hook']}/hook"
    procs: list[subprocess.Popen[bytes]] = []
    names = ["redis", "smsc-sim", "webhook-sink", "gateway"]
    if args.layout == "split":
        names.append("worker")
    try:
        procs.append(start_redis(ports["redis"], tmp))
        await wait_port(ports["redis"])
        procs.append(subprocess.Popen([*gw, "smsc-sim", "--quiet"], env=env))
        hosts = (f"127.0.0.1:{ports['hook']}",)
        tokens = {
            "cc": add_key(gw, env, "command_center", hosts)["key"],
            "officer": add_key(gw, env, "officer", hosts)["key"],
            "admin": add_key(gw, env, "admin")["key"],
        }
        sink = [py, "-m", "bench.webhook_sink", "--port", str(ports["hook"])]
        procs.append(subprocess.Popen([*sink, "--out", str(tmp / "hooks.jsonl")], env=env))
        if args.layout == "all":
            procs.append(subprocess.Popen([*gw, "serve"], env=env))
        else:
            procs.append(subprocess.Popen([*gw, "serve", "--role", "api"], env=env))
            worker_env = {**env, "GATEWAY_HTTP_PORT": str(free_port())}  # its health port
            procs.append(subprocess.Popen([*gw, "serve", "--role", "worker"], env=worker_env))
        for name in ("smpp", "hook", "http"):
            await wait_port(ports[name], within=30)
        await asyncio.sleep(1.0)  # the SMPP bind
        await bind_plates(ports["http"], tokens["admin"])
        pids = dict(zip(names, (p.pid for p in procs), strict=True))
        client = Client(ports["http"])
        seq = 0
        layout = (
            "one gateway serve (API + workers)"
            if args.layout == "all"
            else "serve --role api + serve --role worker"
        )
        print(f"{layout}, {os.cpu_count()} CPUs, open loop, 50/50 mix")
        print(
            f"{'rate/s':>7} {'sent':>6} {'p50 ms':>7} {'p99 ms':>7} {'p99.9 ms':>8} "
            f"{'alert p99':>9} {'park p99':>8} {'errors':>6} {'conns':>6}  "
            "CPU s (gateway, redis, sim, sink, driver[, worker])"
        )
        for rate in rates:
            warm = workload(ports["http"], tokens, hook, int(rate * args.warmup), seq, events)
            seq += len(warm)
            await open_loop(client, warm, rate, None)
            measured = workload(ports["http"], tokens, hook, int(rate * seconds), seq, events)
            seq += len(measured)
            tally = Tally()
            before = cpu_seconds(pids)
            conns = await connections(ports["redis"])
            await open_loop(client, measured, rate, tally)
            after = cpu_seconds(pids)
            conns = await connections(ports["redis"]) - conns
            cpu = {k: after[k] - before.get(k, 0.0) for k in after}
            every = tally.latencies["alert"] + tally.latencies["park"]
            errors = sum(tally.errors.values())
            print(
                f"{rate:>7.0f} {len(measured):>6} {_pct(every, 0.5):>7.1f} "
                f"{_pct(every, 0.99):>7.1f} {_pct(every, 0.999):>8.1f} "
                f"{_pct(tally.latencies['alert'], 0.99):>9.1f} "
                f"{_pct(tally.latencies['park'], 0.99):>8.1f} {errors:>6} {conns:>6}  "
                + ", ".join(
                    f"{cpu.get(n, 0.0):.1f}"
                    for n in ("gateway", "redis", "smsc-sim", "webhook-sink", "driver", "worker")
                    if n in cpu
                )
                + (f"  {tally.errors}" if errors else "")
            )
            await asyncio.sleep(args.settle)
        client.close()
        return 0
    finally:
        stop_all(procs)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
