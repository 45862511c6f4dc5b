"""Fault suite: routine failures with traffic flowing, counted from three sides.

    .venv/bin/python -m bench.faults [--short] [--recipients N] [--only FAULT]

Starts the real processes on loopback under the restart supervisor (``bench/fault_stack.py``:
a dead process is started again after 1 s, as compose's ``restart: unless-stopped`` does).
Each row runs a reminder job of N recipients at 2,000/s with a ``callback_url`` and accident
alerts at 20/s (each with an ``Idempotency-Key``, tried again on a refused connection or a
5xx, as a caller should), does its fault about 40% into the job, then waits a bounded time
for everything to settle. Every row has numbers of its own, so rows are counted apart:

- accepted: recipients the SMSC accepted a submit_sm for (its accept log);
- delivered: notices ``delivered`` in Redis (voice: ``acknowledged``);
- duplicates: submit_sm the SMSC accepted again for a recipient and part it already had;
- stuck: notices not in a final status when the row settled (Redis);
- webhooks missing: final notices whose signed callback with that status never reached the
  receiver, plus the job's own end callback when it did not come;
- job end: whether the job's signed ``finished`` callback arrived;
- recovery s: from the fault (for a process taken down: from it answering again) to the first
  sign of work again on the path it hit: a submit_sm accepted for the job or for an alert
  made after the fault, a 202 from a restarted API, a callback at a restarted receiver, a
  call acknowledged after Asterisk is back.

Exit code 1 when any row has stuck > 0, webhooks missing > 0 or more duplicates than the SMPP
window (``GATEWAY_SMPP_WINDOW``) per fault event (a row of several kills: the window for each),
so it can gate CI. Settling is bounded (30 s after the
traffic in ``--short``, 90 s in a full run, less when the run's time budget of about 4 or 14
minutes runs short; the row's notes say so): a row that needs longer counts as stuck.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.fault_counts import Ledger, Row, Tail, Tally, statuses, table
from bench.fault_stack import Stack
from bench.fault_traffic import JOB_RATE, Callers, create_job, dispatched, job_ids
from bench.sms_path import wait_port

ALERT_RATE = 20.0
PARKING_NOTICES = 150
SMS_FAULTS = (
    "control",
    "worker-kill",
    "rebind-kill",
    "bulk-worker-kill",
    "redis-restart",
    "smsc-restart",
    "smpp-reset",
    "webhook-down",
    "api-kill",
)
FAULTS = (*SMS_FAULTS, "asterisk-restart")


@dataclass
class Ctx:
    stack: Stack
    http: aiohttp.ClientSession
    ledger: Ledger
    row: int
    job_id: str
    callers: Callers
    short: bool
    rnd: random.Random
    faults: int = 1  # fault events the row's fault made (set by the fault)

    def job_number(self, n: str) -> bool:
        return n.startswith(f"139{self.row:02d}")

    def alert_after(self, t: float) -> Callable[[str], bool]:
        at = self.callers.accepted_at
        return lambda n: n.startswith(f"158{self.row:02d}") and at.get(n, 0) >= t


Probe = Callable[[], float | None]


async def _exited(stack: Stack, name: str, count: int, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while len(stack.sup[name].exits) <= count and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


async def _kill(ctx: Ctx, name: str, sig: int = signal.SIGKILL) -> None:
    exits = len(ctx.stack.sup[name].exits)
    ctx.stack.sup[name].send(sig)
    await _exited(ctx.stack, name, exits)


async def f_control(ctx: Ctx) -> tuple[float, Probe | None]:
    return time.time(), None


async def f_worker_kill(ctx: Ctx) -> tuple[float, Probe | None]:
    await _kill(ctx, "worker-priority")
    t0 = time.time()  # once it is gone: what is accepted later went through its successor
    return t0, lambda: ctx.ledger.first_accept(t0, ctx.alert_after(t0))


async def f_bulk_kill(ctx: Ctx) -> tuple[float, Probe | None]:
    t0 = time.time()
    await _kill(ctx, "worker-bulk")
    # Nothing else sends bulk parts: an accept 0.5 s on comes from the restarted worker.
    return t0, lambda: ctx.ledger.first_accept(t0 + 0.5, ctx.job_number)


async def f_rebind_kill(ctx: Ctx) -> tuple[float, Probe | None]:
    """Kill the bulk worker, then again 20-200 ms after each re-bind (the SMSC is pushing
    its backlog of receipts then)."""
    proxy = ctx.stack.proxies["worker-bulk"]
    await _kill(ctx, "worker-bulk")
    kills = 1 if ctx.short else 5
    ctx.faults = kills + 1
    t0 = time.time()
    for _ in range(kills):
        seen = proxy.connections
        deadline = time.monotonic() + 20
        while proxy.connections == seen and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        await asyncio.sleep(ctx.rnd.uniform(0.02, 0.2))
        t0 = time.time()
        await _kill(ctx, "worker-bulk")
    return t0, lambda: ctx.ledger.first_accept(t0 + 0.5, ctx.job_number)


async def _restart(ctx: Ctx, name: str, port: int, sig: int) -> float:
    """Take a process down with ``sig``; the supervisor starts it again. Returns the time
    it answered on its port again."""
    await _kill(ctx, name, sig)
    with contextlib.suppress(TimeoutError):
        await wait_port(port, 60)
    return time.time()


async def f_redis_restart(ctx: Ctx) -> tuple[float, Probe | None]:
    back = await _restart(ctx, "redis", ctx.stack.ports["redis"], signal.SIGTERM)
    return back, lambda: ctx.ledger.first_accept(back, ctx.job_number)


async def f_smsc_restart(ctx: Ctx) -> tuple[float, Probe | None]:
    back = await _restart(ctx, "smsc", ctx.stack.ports["smsc"], signal.SIGKILL)
    return back, lambda: ctx.ledger.first_accept(back, lambda n: True)


async def f_smpp_reset(ctx: Ctx) -> tuple[float, Probe | None]:
    t0 = time.time()
    # Every link is cut, each with a window of submits in flight: one fault event per link.
    ctx.faults = len(ctx.stack.proxies)
    for proxy in ctx.stack.proxies.values():
        proxy.cut()
    return t0, lambda: ctx.ledger.first_accept(t0 + 0.05, ctx.job_number)


async def f_webhook_down(ctx: Ctx) -> tuple[float, Probe | None]:
    hooks = ctx.stack.sup["hooks"]
    await hooks.stop()
    await asyncio.sleep(15 if ctx.short else 60)
    hooks.start()
    await wait_port(ctx.stack.ports["hooks"], 30)
    up = time.time()
    return up, lambda: next((float(h["t"]) for h in ctx.ledger.hooks if float(h["t"]) >= up), None)  # type: ignore[arg-type]


async def f_api_kill(ctx: Ctx) -> tuple[float, Probe | None]:
    # More requests in flight for this one: a burst beside the steady alerts.
    stop = asyncio.Event()
    burst = asyncio.create_task(ctx.callers.run(lambda i: ctx.callers.alert(50_000 + i), 300, stop))
    await asyncio.sleep(0.5)
    await _kill(ctx, "api")
    t0 = time.time()
    await asyncio.sleep(2)
    stop.set()
    await burst
    at = ctx.callers.accepted_at
    return t0, lambda: min((t for t in at.values() if t >= t0), default=None)


async def f_asterisk_restart(ctx: Ctx) -> tuple[float, Probe | None]:
    back = await _restart(ctx, "asterisk", ctx.stack.ports["ami"], signal.SIGTERM)

    def probe() -> float | None:
        for h in ctx.ledger.hooks:
            if h["status"] == "acknowledged" and float(h["t"]) >= back:  # type: ignore[arg-type]
                return float(h["t"])  # type: ignore[arg-type]
        return None

    return back, probe


RUNS: dict[str, Callable[[Ctx], Awaitable[tuple[float, Probe | None]]]] = {
    "control": f_control,
    "worker-kill": f_worker_kill,
    "rebind-kill": f_rebind_kill,
    "bulk-worker-kill": f_bulk_kill,
    "redis-restart": f_redis_restart,
    "smsc-restart": f_smsc_restart,
    "smpp-reset": f_smpp_reset,
    "webhook-down": f_webhook_down,
    "api-kill": f_api_kill,
    "asterisk-restart": f_asterisk_restart,
}


async def wait_dispatched(ctx: Ctx, count: int, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and await dispatched(ctx.http, ctx.stack, ctx.job_id) < count:
        await asyncio.sleep(0.1)


async def look(ctx: Ctx, kinds: dict[str, str]) -> Tally | None:
    ctx.ledger.update()
    state = await statuses(ctx.stack, list(kinds))
    if state is None:
        return None
    signed = {(str(h["id"]), str(h["status"])) for h in ctx.ledger.hooks if h["ok"]}
    return Tally(kinds, state, signed)


async def run_row(ctx: Ctx, fault: str, n: int, settle_s: float) -> Row:
    row = Row(fault)
    stack, callers = ctx.stack, ctx.callers
    t_row = time.monotonic()
    ctx.job_id = await create_job(ctx.http, stack, ctx.row, n)
    stop = asyncio.Event()
    senders = [asyncio.create_task(callers.run(callers.alert, ALERT_RATE, stop))]
    if fault == "asterisk-restart":
        await callers.bind(PARKING_NOTICES)
        senders.append(asyncio.create_task(callers.run(callers.parking, 5, stop, PARKING_NOTICES)))
        await asyncio.sleep(4)  # calls in progress: the sink callee holds each for ~30 s
    await wait_dispatched(ctx, int(n * 0.4), 60)
    ctx.faults = 1
    t0, probe = await RUNS[fault](ctx)
    row.faults = ctx.faults
    # Traffic goes on until the job is dispatched and for 5 s after the fault at least.
    await asyncio.sleep(5)
    await wait_dispatched(ctx, n, 30)
    stop.set()
    await asyncio.gather(*senders)
    numbers = {**job_ids(ctx.job_id, ctx.row, n), **callers.ids}
    kinds = {nid: "job" for nid in job_ids(ctx.job_id, ctx.row, n)} | callers.kinds
    deadline = time.monotonic() + settle_s
    tally: Tally | None = None
    job_end = False
    while True:
        tally = await look(ctx, kinds)
        job_end = any(
            h["id"] == ctx.job_id and h["status"] == "finished" and h["ok"]
            for h in ctx.ledger.hooks
        )
        if tally is not None and not tally.stuck() and not tally.missing() and job_end:
            break
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    parts: collections.Counter[tuple[str, str]] = collections.Counter()
    wanted = {num for nid, num in numbers.items() if kinds[nid] != "voice"}
    for _, number, part in ctx.ledger.accepts:
        if number in wanted:
            parts[(number, part)] += 1
    row.accepted = len({number for number, _ in parts})
    row.duplicates = sum(c - 1 for c in parts.values())
    row.job_end = job_end
    if tally is None:
        row.stuck = len(kinds)
        row.notes.append("Redis did not answer when the row was counted")
    else:
        row.delivered = sum(
            1 for nid, (st, _) in tally.state.items() if st in ("delivered", "acknowledged")
        )
        stuck = tally.stuck()
        row.stuck = len(stuck)
        row.missing = len(tally.missing()) + (0 if job_end else 1)
        if stuck:
            by = collections.Counter(tally.state.get(nid, ("?", False))[0] for nid in stuck)
            row.notes.append("stuck by status: " + ", ".join(f"{k} {v}" for k, v in by.items()))
    if probe is not None:
        seen = probe()
        row.recovery = seen - t0 if seen is not None else None
        if seen is None:
            row.notes.append("no sign of work again after the fault")
    unsigned = sum(1 for h in ctx.ledger.hooks if not h["ok"])
    if unsigned:
        row.notes.append(f"{unsigned} callbacks with a bad signature (so far in the run)")
    if callers.never:
        row.notes.append(f"{callers.never} requests never got a 2xx in 60 s")
    bad = {k: v for k, v in callers.answers.items() if k != "no answer"}
    if bad or callers.answers["no answer"]:
        row.notes.append(
            "API answers besides 2xx: "
            + ", ".join(
                f"{k} x{v}"
                for k, v in {**bad, "no answer": callers.answers["no answer"]}.items()
                if v
            )
        )
    exits = stack.exits(t_row)
    if exits:
        row.notes.append("exits: " + ", ".join(f"{name} ({code})" for name, code in exits))
    return row


def plan(args: argparse.Namespace) -> list[str]:
    if args.only:
        return [args.only]
    if args.short:
        return list(SMS_FAULTS)
    return [
        "control",
        "worker-kill",
        "worker-kill",
        "worker-kill",
        *SMS_FAULTS[2:],
        "asterisk-restart",
    ]


async def main() -> int:
    ap = argparse.ArgumentParser(description="fault suite (see the module's docstring)")
    ap.add_argument("--short", action="store_true", help="one run of each SMS fault (CI)")
    ap.add_argument("--recipients", type=int, help="per job (default 30,000; 5,000 --short)")
    ap.add_argument("--only", choices=FAULTS, help="this fault alone")
    ap.add_argument("--window", type=int, default=64, help="GATEWAY_SMPP_WINDOW")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--keep", action="store_true", help="keep the processes' logs")
    args = ap.parse_args()
    n = min(args.recipients or (5000 if args.short else 30_000), 100_000)
    faults = plan(args)
    settle_s = 30.0 if args.short or args.only else 90.0
    budget = 225.0 if args.short else 840.0  # seconds for all rows: ~4 and 14 minutes
    voice = "asterisk-restart" in faults
    if voice and not shutil.which("asterisk"):
        print("asterisk is missing: run scripts/setup.sh", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="gw-faults-"))
    stack = Stack(tmp, args.window, voice)
    rows: list[Row] = []
    started = time.monotonic()
    try:
        await stack.start()
        async with aiohttp.ClientSession() as http:
            ledger = Ledger(_smsc=Tail(stack.accept_log), _hooks=Tail(stack.hooks_log))
            for index, fault in enumerate(faults):
                if not await stack.healthy(http, 60):
                    print(f"stack not healthy before {fault}", file=sys.stderr)
                ctx = Ctx(
                    stack,
                    http,
                    ledger,
                    index,
                    "",
                    Callers(http, stack, index),
                    args.short,
                    random.Random(args.seed + index),
                )
                print(
                    f"[{time.monotonic() - started:5.0f} s] {fault} ...",
                    file=sys.stderr,
                    flush=True,
                )
                # The whole run stays within its budget: a late row waits less to settle.
                traffic = n / JOB_RATE + 15
                left = budget - (time.monotonic() - started) - (len(faults) - index) * traffic
                settle = max(10.0, min(settle_s, left))
                try:
                    row = await run_row(ctx, fault, n, settle)
                    if settle < settle_s:
                        row.notes.append(f"settling cut to {settle:.0f} s by the time budget")
                except (RuntimeError, aiohttp.ClientError, TimeoutError, OSError) as exc:
                    row = Row(fault, error=repr(exc)[:200])
                    row.notes.append(f"the row broke off: {row.error}")
                rows.append(row)
                verdict = "ok" if row.ok(args.window) else "FAIL"
                elapsed = time.monotonic() - started
                print(f"[{elapsed:5.0f} s] {fault}: {verdict}", file=sys.stderr, flush=True)
    finally:
        await stack.close()
    failed = any(not r.ok(args.window) for r in rows) or len(rows) < len(faults)
    print(
        f"\nfault suite: {len(rows)} rows, {n} recipients a job at {JOB_RATE}/s plus alerts at "
        f"{ALERT_RATE:.0f}/s, SMPP window {args.window}, {time.monotonic() - started:.0f} s\n"
    )
    print(table(rows, args.window))
    for r in rows:
        for note in r.notes:
            print(f"  {r.fault}: {note}")
    if args.keep or failed:
        print(f"\nprocess logs: {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
