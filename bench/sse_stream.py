"""The event stream under load: SSE clients on one API process while notices change status.

Starts a private redis-server and one API process (``gateway serve --role api``) on loopback.
``--clients`` SSE clients (half admin keys, which see everything, half one command-centre
key, which sees its own half of the notices) connect, spread over ``--client-procs``
processes; then this process moves ``--rate`` notice statuses a second (queued -> submitted
-> delivered, through the same script the workers use) for ``--seconds``. Halfway,
``--drop`` clients close their connection, wait ``--away`` seconds and reconnect with
``Last-Event-ID``. At the end each client's events are compared with the stream's entries
it may see. Prints events/s delivered, lag (entry written -> client read) p50/p99, and lost
and duplicated events (both must be 0).

    .venv/bin/python -m bench.sse_stream --clients 200 --rate 500 --seconds 25
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil
import redis.asyncio as aioredis

from bench.sms_path import ROOT, add_key, free_port, start_redis, stop_all, wait_port
from gateway.store.keys import Keys

PREFIX = "ssebench"
# The events stream the driver's status changes write (lane 0: every notice is there).
EVENTS = Keys(PREFIX).events(0)
# Each event's own entry id (its SSE id is every lane's position when there are several).
_ID = re.compile(rb'"event_id":"(\d+)-(\d+)')
_RESUME = re.compile(rb"^id: (\S+)$", re.M)  # what a client sends back as Last-Event-ID


class Client:
    """One SSE client: reads entry ids as they come and, like a browser's EventSource,
    reconnects with Last-Event-ID whenever its connection ends."""

    def __init__(self, url: str, token: str, role: str) -> None:
        self.url, self.token, self.role = url, token, role
        self.ids: list[tuple[int, int]] = []
        self.resume = ""  # the last event's SSE id
        self.lags: list[int] = []
        self.dropped = False  # it was dropped once: its lags (catch-up included) do not count
        self.away_until = 0.0
        self.connects = 0
        self.resp: aiohttp.ClientResponse | None = None

    async def run(self, http: aiohttp.ClientSession, ready: asyncio.Event) -> None:
        """Read until cancelled."""
        while True:
            headers = {"Authorization": f"Bearer {self.token}"}
            if self.resume:
                headers["Last-Event-ID"] = self.resume
            self.resp = await http.get(self.url, headers=headers)
            assert self.resp.status == 200, self.resp.status
            self.connects += 1
            ready.set()
            tail = b""
            with contextlib.suppress(aiohttp.ClientError, ConnectionError):
                async for chunk in self.resp.content.iter_any():
                    now = int(time.time() * 1000)
                    buf = tail + chunk
                    cut = buf.rfind(b"\n\n") + 2
                    buf, tail = buf[:cut], buf[cut:]
                    if resumes := _RESUME.findall(buf):
                        self.resume = resumes[-1].decode()
                    for ms, seq in _ID.findall(buf):
                        self.ids.append((int(ms), int(seq)))
                        if not self.dropped:
                            self.lags.append(now - int(ms))
            await asyncio.sleep(max(0.0, self.away_until - time.monotonic()))

    def drop(self, away: float) -> None:
        self.dropped = True
        self.away_until = time.monotonic() + away
        if self.resp is not None:
            self.resp.close()


def visible(fields: dict[str, str], role: str, key_id: str) -> bool:
    return role == "admin" or fields.get("key") == key_id


async def client_worker(args: argparse.Namespace) -> None:
    """One process of clients: connect, say READY, drop some when told, report at the end."""
    keys = json.loads(args.keys)
    r = aioredis.Redis.from_url(args.redis, decode_responses=True)
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout()) as http:
        clients = []
        tasks = []
        for i in range(args.n):
            role = "admin" if (args.offset + i) % 2 == 0 else "command_center"
            c = Client(args.url, keys[role]["key"], role)
            ready = asyncio.Event()
            tasks.append(asyncio.create_task(c.run(http, ready)))
            await ready.wait()
            clients.append(c)
        print("READY", flush=True)
        while not await r.exists(f"{PREFIX}:drop"):
            await asyncio.sleep(0.05)
        away = clients[: args.drop]
        for c in away:
            c.drop(args.away)
        while not await r.exists(f"{PREFIX}:end"):
            await asyncio.sleep(0.1)
        start, end = await r.get(f"{PREFIX}:start"), await r.get(f"{PREFIX}:end")
        entries = await r.xrange(EVENTS, f"({start}", end)
        want = {
            role: {tuple(map(int, i.split("-"))) for i, f in entries if visible(f, role, k["id"])}
            for role, k in keys.items()
        }
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # let the last events arrive
            if all(want[c.role].issubset(c.ids) for c in clients):
                break
            await asyncio.sleep(0.2)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    report = []
    for c in clients:
        got = [i for i in c.ids if i in want[c.role]]
        report.append(
            {
                "reconnected": c.dropped,
                "connects": c.connects,
                "received": len(got),
                "lost": len(want[c.role] - set(got)),
                "duplicates": len(got) - len(set(got)),
                "lags": c.lags[:: max(1, len(c.lags) // 400)],
            }
        )
    print("REPORT " + json.dumps(report), flush=True)
    await r.aclose()


async def drive(r: aioredis.Redis, rate: float, seconds: float, key_ids: list[str]) -> int:
    """``rate`` status changes a second for ``seconds``: each notice queued -> submitted ->
    delivered through set_status.lua. Returns how many changes were made."""
    from gateway.core.statuses import NoticeStatus
    from gateway.store.notice_scripts import NoticeScripts
    from gateway.store.notices import now_iso

    keys = Keys(PREFIX)
    scripts = NoticeScripts(r, keys)
    total = int(rate * seconds)
    notices = total // 2 + 1
    pipe = r.pipeline(transaction=False)
    for n in range(notices):
        pipe.hset(
            keys.notice(f"ntc_b{n}"),
            mapping={"id": f"ntc_b{n}", "kind": "message", "channel": "sms", "status": "queued",
                     "to": f"1380000{n % 10000:04d}", "key_id": key_ids[n % 2], "parts": "1"},
        )  # fmt: skip
    await pipe.execute()
    tick = 0.01
    done = 0
    began = time.monotonic()
    while done < total:
        due = min(total, int((time.monotonic() - began + tick) * rate))
        batch = []
        while done < due and len(batch) < 50:  # at most 50 calls in flight
            n, step = divmod(done, 2)
            status = NoticeStatus.SUBMITTED if step == 0 else NoticeStatus.DELIVERED
            batch.append(
                scripts.set_status(notice_id=f"ntc_b{n}", status=status, at=now_iso(), detail={})
            )
            done += 1
        await asyncio.gather(*batch)
        await asyncio.sleep(max(0.0, began + done / rate - time.monotonic()))
    return done


def percentile(values: list[int], p: float) -> int:
    if not values:
        return 0
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


async def main(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="sse-bench-"))
    redis_port, api_port = free_port(), free_port()
    env = {
        **os.environ,
        "GATEWAY_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "GATEWAY_REDIS_PREFIX": PREFIX,
        "GATEWAY_HTTP_PORT": str(api_port),
        "GATEWAY_VOICE_ENABLED": "false",
    }
    gw = [sys.executable, "-m", "gateway.cli"]
    procs: list[subprocess.Popen[bytes]] = [start_redis(redis_port, tmp)]
    workers: list[subprocess.Popen[bytes]] = []
    try:
        await wait_port(redis_port)
        keys = {role: add_key(gw, env, role) for role in ("admin", "command_center")}
        procs.append(subprocess.Popen([*gw, "serve", "--role", "api"], env=env, cwd=ROOT))
        await wait_port(api_port)
        r = aioredis.Redis(port=redis_port, decode_responses=True)
        per = -(-args.clients // args.client_procs)
        for w in range(args.client_procs):
            n = min(per, args.clients - w * per)
            drop = min(n, -(-args.drop // args.client_procs))
            cmd = [sys.executable, "-m", "bench.sse_stream", "--worker", "--n", str(n),
                   "--offset", str(w * per), "--drop", str(drop), "--away", str(args.away),
                   "--url", f"http://127.0.0.1:{api_port}/v1/events/stream",
                   "--redis", env["GATEWAY_REDIS_URL"], "--keys", json.dumps(keys)]  # fmt: skip
            workers.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, cwd=ROOT))
        for w in workers:
            assert w.stdout is not None
            line = await asyncio.to_thread(w.stdout.readline)
            assert line.strip() == b"READY", line
        newest = await r.xrevrange(EVENTS, count=1)
        await r.set(f"{PREFIX}:start", newest[0][0] if newest else "0-0")
        api = psutil.Process(procs[1].pid)
        readers = [psutil.Process(w.pid) for w in workers]
        cpu0, t0 = api.cpu_times(), time.monotonic()
        rcpu0 = sum(p.cpu_times().user + p.cpu_times().system for p in readers)
        owners = [keys["command_center"]["id"], keys["admin"]["id"]]
        half = asyncio.create_task(_drop_halfway(r, args.seconds / 2))
        changes = await drive(r, args.rate, args.seconds, owners)
        elapsed = time.monotonic() - t0
        await half
        newest = await r.xrevrange(EVENTS, count=1)
        await r.set(f"{PREFIX}:end", newest[0][0])
        cpu1 = api.cpu_times()
        rcpu1 = sum(p.cpu_times().user + p.cpu_times().system for p in readers)
        reports = []
        for w in workers:
            out, _ = await asyncio.to_thread(w.communicate, timeout=60)
            for line in out.decode().splitlines():
                if line.startswith("REPORT "):
                    reports += json.loads(line[7:])
        await r.aclose()
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
        stop_all(procs)
    received = sum(c["received"] for c in reports)
    lags = [lag for c in reports if not c["reconnected"] for lag in c["lags"]]
    api_cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / elapsed
    print(f"clients: {len(reports)} ({sum(c['reconnected'] for c in reports)} dropped and "
          f"reconnected with Last-Event-ID after {args.away:.0f} s away)")  # fmt: skip
    print(f"status changes: {changes} in {elapsed:.1f} s = {changes / elapsed:.0f}/s")
    print(f"events delivered: {received} = {received / elapsed:.0f}/s to all clients")
    print(f"lag written -> read: p50 {percentile(lags, 0.5)} ms, p99 {percentile(lags, 0.99)} ms")
    print(
        f"CPU: API process {100 * api_cpu:.0f}% of one core, the {len(workers)} client "
        f"processes {100 * (rcpu1 - rcpu0) / elapsed:.0f}%"
    )
    lost = sum(c["lost"] for c in reports)
    dupes = sum(c["duplicates"] for c in reports)
    print(f"lost events: {lost}, duplicated: {dupes}")
    return 0 if lost == 0 and dupes == 0 and len(reports) == args.clients else 1


async def _drop_halfway(r: aioredis.Redis, after: float) -> None:
    await asyncio.sleep(after)
    await r.set(f"{PREFIX}:drop", "1")


def cli() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--client-procs", type=int, default=2)
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--seconds", type=float, default=25)
    ap.add_argument("--drop", type=int, default=20)
    ap.add_argument("--away", type=float, default=3)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--offset", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--url", default="", help=argparse.SUPPRESS)
    ap.add_argument("--redis", default="", help=argparse.SUPPRESS)
    ap.add_argument("--keys", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    # Every loop here is bounded: at most 1000 clients, 2000 changes/s, two minutes.
    args.clients = max(1, min(args.clients, 1000))
    args.rate = max(1.0, min(args.rate, 2000.0))
    args.seconds = max(2.0, min(args.seconds, 120.0))
    if args.worker:
        asyncio.run(client_worker(args))
        return 0
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(main(args))
    return 1


if __name__ == "__main__":
    sys.exit(cli())
