"""Per-message SMS path benchmark: N API requests -> submit_sm -> receipt -> signed webhook.

Starts a private redis-server, the SMSC simulator and the gateway (``--gateways`` processes
with API and workers, sharing Redis) as separate processes on loopback; this process
drives the API with bounded concurrency and receives the webhooks. It prints messages/s end to
end (first request to last ``delivered`` webhook) and how many receipts never arrived.

    .venv/bin/python -m bench.sms_path --messages 20000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent


def cpu_report(procs: list[subprocess.Popen[bytes]], names: list[str]) -> list[tuple[str, float]]:
    """User+system CPU seconds of each child and of this driver, so the split is visible."""
    out = []
    for p, name in zip(procs, names, strict=True):
        try:
            t = psutil.Process(p.pid).cpu_times()
            out.append((name, t.user + t.system))
        except psutil.NoSuchProcess:
            continue
    me = psutil.Process().cpu_times()
    out.append(("driver+receiver", me.user + me.system))
    return out


UNTHROTTLED = ("--rate", "100000", "--burst", "100000")


def add_key(
    gw: list[str], env: dict[str, str], role: str, callback_hosts: tuple[str, ...] = ()
) -> dict[str, str]:
    """An unthrottled API key made with ``gateway keys add``: its token and callback secret."""
    hosts = [a for h in callback_hosts for a in ("--callback-host", h)]
    out = subprocess.check_output(
        [*gw, "keys", "add", "--name", role, "--role", role, *hosts, *UNTHROTTLED, "--json"],
        env=env,
    )
    return dict(json.loads(out))


def add_keys(gw: list[str], env: dict[str, str], roles: tuple[str, ...]) -> dict[str, str]:
    """One API key per role, unthrottled."""
    return {role: add_key(gw, env, role)["key"] for role in roles}


def redis_command(port: int, directory: Path, aof: bool = False) -> list[str]:
    """A private redis-server on loopback: non-persistent, or with an append-only file
    fsynced every second (what a deployment runs)."""
    persistence = ["--appendonly", "yes", "--appendfsync", "everysec"] if aof else []
    return [
        shutil.which("redis-server") or "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        *(persistence or ["--appendonly", "no"]),
        "--dir",
        str(directory),
    ]


def start_redis(port: int, directory: Path) -> subprocess.Popen[bytes]:
    """A private, non-persistent redis-server on loopback."""
    return subprocess.Popen(redis_command(port, directory), stdout=subprocess.DEVNULL)


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """Stop the stack in reverse start order, so nothing outlives what it depends on."""
    for p in reversed(procs):
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_port(port: int, within: float = 15) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--gateways", type=int, default=1)
    ap.add_argument("--tps", type=float, default=100000)
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--text", default="【交警提示】您的车辆年检即将到期，请及时办理。")
    ap.add_argument("--grace", type=float, default=60.0, help="seconds to wait for stragglers")
    args = ap.parse_args()
    args.messages = min(args.messages, 1_000_000)  # every loop here is bounded

    tmp = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    redis_port, smpp_port, hook_port = free_port(), free_port(), free_port()
    http_ports = [free_port() for _ in range(args.gateways)]
    env = {
        **os.environ,
        "GATEWAY_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "GATEWAY_SMPP_PORT": str(smpp_port),
        "GATEWAY_SIM_PORT": str(smpp_port),
        "GATEWAY_SMPP_TPS": str(args.tps),
        "GATEWAY_SMPP_WINDOW": str(args.window),
        "GATEWAY_SIM_RECEIPT_DELAY": "0",
        "GATEWAY_VOICE_ENABLED": "false",  # SMS only: no Asterisk here, no FastAGI port
    }
    procs: list[subprocess.Popen[bytes]] = []
    names = ["redis", "smsc-sim"] + [f"gateway{i + 1}" for i in range(args.gateways)]
    gw = [str(ROOT / ".venv/bin/gateway"), "--log-level", "WARNING"]
    received: dict[str, float] = {}
    bad_signatures = 0
    done = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        if "X-Gateway-Signature" not in request.headers:
            nonlocal bad_signatures
            bad_signatures += 1
        if body["status"] in ("delivered", "undeliverable", "expired", "rejected", "failed"):
            received.setdefault(body["id"], time.perf_counter())
            if len(received) >= args.messages:
                done.set()
        return web.Response(status=204)

    runner: web.AppRunner | None = None
    try:
        procs.append(start_redis(redis_port, tmp))
        await wait_port(redis_port)
        procs.append(subprocess.Popen([*gw, "smsc-sim", "--quiet"], env=env))
        await wait_port(smpp_port)
        key = add_key(gw, env, "command_center", (f"127.0.0.1:{hook_port}",))
        for port in http_ports:
            procs.append(
                subprocess.Popen([*gw, "serve"], env={**env, "GATEWAY_HTTP_PORT": str(port)})
            )
        for port in http_ports:
            await wait_port(port)

        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", hook_port, backlog=4096).start()

        headers = {"Authorization": f"Bearer {key['key']}"}
        counter = iter(range(args.messages))
        errors = 0
        latencies: list[float] = []
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=args.concurrency * 2)
        ) as http:
            async with http.get(f"http://127.0.0.1:{http_ports[0]}/readyz") as r:
                for _ in range(100):
                    if r.status == 200:
                        break
                    await asyncio.sleep(0.1)

            async def driver(n: int) -> None:
                nonlocal errors
                base = f"http://127.0.0.1:{http_ports[n % len(http_ports)]}/v1/messages"
                for i in counter:
                    body = {
                        "to": f"139{i:08d}",
                        "text": args.text,
                        "callback_url": f"http://127.0.0.1:{hook_port}/hook",
                    }
                    t = time.perf_counter()
                    async with http.post(base, json=body, headers=headers) as resp:
                        await resp.read()
                        if resp.status != 202:
                            errors += 1
                    latencies.append(time.perf_counter() - t)

            start = time.perf_counter()
            await asyncio.gather(*(driver(n) for n in range(args.concurrency)))
            accepted_at = time.perf_counter()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), args.grace + args.messages / 500)
            end = max(received.values()) if received else time.perf_counter()
        latencies.sort()
        accepted = args.messages - errors
        lost = accepted - len(received)
        elapsed = end - start
        print(f"messages            {args.messages} (UCS-2, 1 part each)")
        print(f"gateway processes   {args.gateways} (API + workers each)")
        print(
            f"API accepted        {accepted} in {accepted_at - start:.2f} s "
            f"({accepted / (accepted_at - start):.0f}/s), errors {errors}"
        )
        print(
            f"API latency         p50 {latencies[len(latencies) // 2] * 1000:.1f} ms, "
            f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms (under load)"
        )
        print(
            f"end to end          {len(received)} final webhooks in {elapsed:.2f} s "
            f"= {len(received) / elapsed:.0f} messages/s"
        )
        print(f"receipts lost       {lost}")
        print(f"unsigned webhooks   {bad_signatures}")
        print(
            "CPU seconds         "
            + ", ".join(f"{name} {cpu:.1f}" for name, cpu in cpu_report(procs, names))
        )
        return 0 if lost == 0 and errors == 0 else 1
    finally:
        if runner is not None:
            await runner.cleanup()
        stop_all(procs)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
