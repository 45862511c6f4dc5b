"""Kannel and the gateway side by side: the same N UCS-2 messages with receipts through each.

Installs Debian's ``kannel`` if missing (its system service is left stopped), then starts on
loopback, each on an ephemeral port: one SMSC simulator (``gateway smsc-sim``, receipts at
once, every ``--undeliverable-every``-th destination undeliverable), Kannel (bearerbox + smsbox
from a private configuration, one SMPP transceiver bind), and the gateway (a private Redis and
``gateway serve``, one bind). This process is the load driver and the receipt receiver for
both: a closed loop of ``--concurrency`` requests at once, then it waits (at most ``--grace``
seconds) for every accepted message's final receipt.

- Kannel: ``GET /cgi-bin/sendsms`` with ``coding=2``, ``dlr-mask=3`` (delivered +
  undeliverable) and a ``dlr-url`` that names the message;
- gateway: ``POST /v1/messages`` with a ``callback_url`` (and ``status_events``
  ``["delivered", "undeliverable"]`` if the gateway takes it, the same selection as dlr-mask=3).

Rounds alternate the order (Kannel first, then the gateway first, ...). Each round prints per
side accepted/s, receipts/s end to end (first submit to last final receipt), receipts lost,
the CPU seconds of each process over the leg, and the ratio gateway/Kannel.

    .venv/bin/python -m bench.vs_kannel [--messages 5000] [--rounds 3] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp import web

from bench.host_speed import host_line
from bench.sms_path import ROOT, add_key, free_port, redis_command, wait_port
from bench.vs_kannel_parts import (
    BEARERBOX,
    SMSBOX,
    KannelAccount,
    KannelPorts,
    Leg,
    LegResult,
    ReceiptCounter,
    destination,
    ensure_kannel,
    leg_line,
    ratio,
    render_config,
    sendsms_url,
    table,
    undeliverable,
)
from bench.vs_kannel_stack import Stack

TEXT = "【交警提示】您的车辆年检即将到期，请及时办理。"
SELECTED = ["delivered", "undeliverable"]  # what dlr-mask=3 selects
SIDE_PROCS = {
    "kannel": ("bearerbox", "smsbox"),
    "gateway": ("redis", "gateway"),
}
SHARED = ("smsc-sim", "driver+receiver")


def receiver(counter: ReceiptCounter) -> web.Application:
    """One receiver for both: Kannel fetches /dlr/<leg>?id=..&type=%d, the gateway posts JSON
    to /hook/<leg>."""

    async def dlr(request: web.Request) -> web.Response:
        q = request.query
        counter.kannel(request.match_info["leg"], q.get("id", ""), q.get("type", ""))
        return web.Response(text="ok")

    async def hook(request: web.Request) -> web.Response:
        counter.gateway(request.match_info["leg"], await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/dlr/{leg}", dlr)
    app.router.add_post("/hook/{leg}", hook)
    return app


Sender = Callable[[int, Leg], Awaitable[None]]


async def closed_loop(n: int, concurrency: int, send: Sender, leg: Leg) -> None:
    """The load driver of both sides: ``concurrency`` requests at once until ``n`` are sent."""
    counter = iter(range(n))

    async def one() -> None:
        for i in counter:
            await send(i, leg)

    await asyncio.gather(*(one() for _ in range(concurrency)))


async def run_leg(
    stack: Stack,
    counter: ReceiptCounter,
    side: str,
    round_no: int,
    send: Sender,
    args: argparse.Namespace,
    n: int,
) -> LegResult:
    name = f"{side}-{round_no}"
    leg = counter.leg(name, side)
    before = stack.cpu()
    start = time.perf_counter()
    await closed_loop(n, args.concurrency, send, leg)
    accepted_at = time.perf_counter()
    deadline = accepted_at + args.grace
    while leg.lost() and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    after = stack.cpu()
    stack.check()
    finals = [t for k, t in leg.finals.items() if k in leg.expected]
    last = max(finals) if finals else accepted_at
    mine = (*SIDE_PROCS[side], *SHARED)
    result = LegResult(
        side=side,
        round=round_no,
        sent=n,
        accepted=len(leg.expected),
        accept_seconds=accepted_at - start,
        e2e_seconds=last - start,
        receipts=len(finals),
        lost=leg.lost(),
        cpu={p: after[p] - before[p] for p in mine if p in after},
        duplicates=leg.duplicates,
        other_callbacks=leg.other,
    )
    await asyncio.sleep(args.settle)  # stragglers land before the next leg's CPU count
    result.duplicates, result.other_callbacks = leg.duplicates, leg.other
    return result


async def bench(args: argparse.Namespace, stack: Stack, version: str) -> int:
    tmp = stack.tmp
    kp = KannelPorts(free_port(), free_port(), free_port(), free_port())
    redis_port, http_port, hook_port = free_port(), free_port(), free_port()
    account = KannelAccount()
    conf = tmp / "kannel.conf"
    conf.write_text(render_config(kp, args.window, account), encoding="utf-8")
    env = {
        **os.environ,
        "GATEWAY_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "GATEWAY_HTTP_PORT": str(http_port),
        "GATEWAY_SMPP_PORT": str(kp.smsc),
        "GATEWAY_SMPP_TPS": "100000",
        "GATEWAY_SMPP_WINDOW": str(args.window),
        "GATEWAY_VOICE_ENABLED": "false",
        **dict(kv.split("=", 1) for kv in args.gateway_env),
    }
    gw = [str(ROOT / ".venv/bin/gateway"), "--log-level", "WARNING"]
    sim = [*gw, "smsc-sim", "--quiet", "--port", str(kp.smsc)]
    sim += ["--receipt-delay", str(args.receipt_delay)]
    for number in undeliverable(args.messages, args.undeliverable_every):
        sim += ["--undeliverable", number]
    stack.start("smsc-sim", sim, env)
    stack.start("redis", redis_command(redis_port, tmp))
    await wait_port(kp.smsc)
    await wait_port(redis_port)
    key = add_key(gw, env, "command_center", (f"127.0.0.1:{hook_port}",))
    serve = [*gw, "serve"]
    if args.profile_gateway:  # cProfile writes the file when the process ends (SIGTERM)
        profile = ["-m", "cProfile", "-o", str(args.profile_gateway.resolve()), "-m", "gateway"]
        serve = [sys.executable, *profile, *serve[1:]]
    stack.start("gateway", serve, env)
    stack.start("bearerbox", [BEARERBOX, "-v", "3", str(conf)])
    await wait_port(kp.smsbox)
    stack.start("smsbox", [SMSBOX, "-v", "3", str(conf)])
    await wait_port(kp.sendsms)
    await wait_port(http_port, within=30)

    counter = ReceiptCounter()
    runner = web.AppRunner(receiver(counter), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", hook_port, backlog=4096).start()
    hook = f"http://127.0.0.1:{hook_port}"
    headers = {"Authorization": f"Bearer {key['key']}"}
    api = f"http://127.0.0.1:{http_port}/v1/messages"
    events: list[str] | None = SELECTED
    errors: dict[str, int] = {"kannel": 0, "gateway": 0}
    conn = aiohttp.TCPConnector(limit=args.concurrency * 2)
    try:
        async with aiohttp.ClientSession(connector=conn) as http:

            async def kannel(i: int, leg: Leg) -> None:
                dlr = f"{hook}/dlr/{leg.name}?id={i}&type=%d"
                url = sendsms_url(kp.sendsms, account, destination(i), args.text, dlr)
                async with http.get(url) as r:
                    body = await r.text()
                if r.status == 202 and body.startswith("0:"):
                    leg.expected.add(str(i))
                else:
                    errors["kannel"] += 1

            async def gateway(i: int, leg: Leg) -> None:
                body: dict[str, object] = {
                    "to": destination(i),
                    "text": args.text,
                    "callback_url": f"{hook}/hook/{leg.name}",
                }
                if events is not None:
                    body["status_events"] = events
                async with http.post(api, json=body, headers=headers) as r:
                    answer = await r.json()
                if r.status == 202:
                    leg.expected.add(str(answer["id"]))
                else:
                    errors["gateway"] += 1

            # Does the gateway take status_events? One request tells.
            async with http.post(
                api,
                json={"to": destination(0), "text": args.text, "status_events": SELECTED},
                headers=headers,
            ) as r:
                if r.status != 202:
                    events = None
                    print(
                        f"note: the gateway refused status_events ({r.status}); its requests "
                        "go without it, so it posts every status (submitted and the final one)"
                    )
            sides: dict[str, Sender] = {"kannel": kannel, "gateway": gateway}
            for side, send in sides.items():  # binds up, caches warm; not measured
                warm = await run_leg(stack, counter, side, 0, send, args, args.warmup)
                if warm.lost or warm.accepted < args.warmup:
                    missing = sorted(counter.legs[f"{side}-0"].missing())[:10]
                    raise RuntimeError(f"warm-up failed: {leg_line(warm)}; no receipt: {missing}")
            print(
                f"Kannel {version} and the gateway; {args.messages} UCS-2 messages per leg, "
                f"concurrency {args.concurrency}, SMPP window {args.window}, "
                f"1 in {args.undeliverable_every} undeliverable; status_events "
                f"{'sent' if events else 'not taken'}"
            )
            results: list[LegResult] = []
            for n in range(1, args.rounds + 1):
                order = ["kannel", "gateway"] if n % 2 else ["gateway", "kannel"]
                for side in order:
                    load = os.getloadavg()[0]  # a hint of what else ran on the machine
                    res = await run_leg(stack, counter, side, n, sides[side], args, args.messages)
                    results.append(res)
                    print(f"{leg_line(res)}; load average before {load:.1f}", flush=True)
                legs = {r.side: r for r in results if r.round == n}
                print(
                    f"round {n} ratio gateway/Kannel: receipts/s "
                    f"{ratio(legs['gateway'].receipts_per_s, legs['kannel'].receipts_per_s):.2f},"
                    f" accepted/s "
                    f"{ratio(legs['gateway'].accepted_per_s, legs['kannel'].accepted_per_s):.2f}",
                    flush=True,
                )
    finally:
        await runner.cleanup()
    print()
    print(table(results))
    print(f"request errors: {errors}; callbacks for no leg: {counter.unknown}")
    lost = sum(r.lost for r in results if r.side == "gateway")
    return 0 if lost == 0 and not errors["gateway"] else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--messages", type=int, default=5000, help="messages per side per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=64, help="requests at once, both sides")
    ap.add_argument("--window", type=int, default=256, help="SMPP window, both sides")
    ap.add_argument("--undeliverable-every", type=int, default=10)
    ap.add_argument(
        "--receipt-delay",
        type=float,
        default=0.05,
        help="seconds from submit_sm_resp to the receipt (at 0 Kannel drops some DLRs)",
    )
    ap.add_argument("--warmup", type=int, default=200, help="unmeasured messages per side")
    ap.add_argument("--grace", type=float, default=60.0, help="seconds to wait for receipts")
    ap.add_argument("--settle", type=float, default=1.0, help="seconds between legs")
    ap.add_argument("--text", default=TEXT)
    ap.add_argument(
        "--gateway-env",
        action="append",
        default=[],
        metavar="GATEWAY_X=V",
        help="a setting for the gateway's processes (repeatable); the defaults otherwise",
    )
    ap.add_argument(
        "--profile-gateway", type=Path, metavar="FILE", help="run gateway serve under cProfile"
    )
    args = ap.parse_args()
    args.messages = max(1, min(args.messages, 50_000))  # every loop here is bounded
    args.rounds = max(1, min(args.rounds, 10))
    args.warmup = max(1, min(args.warmup, args.messages))
    if any(not kv.startswith("GATEWAY_") or "=" not in kv for kv in args.gateway_env):
        ap.error("--gateway-env takes GATEWAY_NAME=VALUE")
    version = ensure_kannel()
    print(host_line("before"), flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="vs-kannel-"))
    stack = Stack(tmp)

    async def run() -> int:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await bench(args, stack, version)

    code = 1
    try:
        code = asyncio.run(run())
        return code
    finally:
        stack.stop()
        print(host_line("after"))
        if code == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"logs and configuration kept in {tmp}")


if __name__ == "__main__":
    sys.exit(main())
