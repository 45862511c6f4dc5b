"""Bulk reminder benchmark: a 1,000,000-recipient CSV job through the simulator.

Starts a private redis-server (``--redis cluster``: a Redis Cluster of three primaries and
three replicas, tests/redis_cluster.py), the SMSC simulator and the gateway (one
``serve --role api`` process and ``--workers`` worker processes) on loopback. It measures:

- intake: the time to upload the CSV and get the 202 (rows checked, stored in Redis);
- sustained messages/s: recipients whose SMS was submitted *and* receipted (``delivered``),
  over the measuring window (after a warm-up, bounded by ``--measure`` seconds; the job is
  then cancelled, so the run always ends);
- peak RSS of every gateway process (sampled every 0.2 s over the whole run);
- an accident alert's latency to the SMSC (created -> submitted, from the notice history)
  with no job running, then while the job runs: the difference is what the job adds.

    .venv/bin/python -m bench.bulk_jobs --rows 1000000 [--layout split|shared] [--workers 1]
        [--redis single|cluster]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import aiohttp
import psutil

from bench.bulk_redis import BenchRedis, node_lines, primaries_calls
from bench.host_speed import host_line
from bench.sms_path import ROOT, add_keys, cpu_report, free_port, stop_all, wait_port


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as f:
        f.write("to,road,period,detour\n")
        for i in range(rows):
            f.write(f"13{(i % 7) + 3}{i:08d},人民路,明天8时至18时,北京路\n")


async def chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            yield chunk


def _ms(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


class RssSampler:
    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peak: dict[str, int] = dict.fromkeys(pids, 0)

    async def run(self) -> None:
        procs = {n: psutil.Process(p) for n, p in self.pids.items()}
        while True:
            for name, proc in procs.items():
                with contextlib.suppress(psutil.NoSuchProcess):
                    self.peak[name] = max(self.peak[name], proc.memory_info().rss)
            await asyncio.sleep(0.2)


async def alert_latencies(
    http: aiohttp.ClientSession, base: str, admin: str, cc: str, count: int, rate: float
) -> list[float]:
    """``count`` accident alerts at ``rate``/s; ms from creation to submit_sm_resp each."""
    ids = []
    for i in range(count):
        async with http.post(
            f"{base}/v1/accident-alerts",
            headers={"Authorization": f"Bearer {cc}"},
            json={
                "accident_type": "injury",
                "reporter_phone": f"1590000{i:04d}",
                "location": "环城路",
                "case_id": f"B-{time.time_ns()}",
            },
        ) as r:
            assert r.status == 202, await r.text()
            ids.append((await r.json())["id"])
        await asyncio.sleep(1 / rate)
    await asyncio.sleep(2)
    out = []
    for nid in ids:
        async with http.get(
            f"{base}/v1/notices/{nid}", headers={"Authorization": f"Bearer {admin}"}
        ) as r:
            notice = await r.json()
        created = _ms(notice["created_at"])
        sub = next((h["at"] for h in notice["history"] if h["status"] == "submitted"), None)
        if sub is not None:
            out.append(_ms(sub) - created)
    return out


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def cpu_now(
    procs: list[subprocess.Popen[bytes]], names: list[str], store: BenchRedis
) -> dict[str, float]:
    """CPU seconds so far by process; ``redis`` is every redis-server of the run together."""
    return {"redis": sum(store.cpu_seconds().values()), **dict(cpu_report(procs, names))}


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=1, help="bulk worker processes")
    ap.add_argument(
        "--layout",
        choices=["split", "shared"],
        default="split",
        help="split: one priority worker plus --workers bulk workers at a lower CPU priority; "
        "shared: --workers processes serving both lanes",
    )
    ap.add_argument("--measure", type=float, default=60.0, help="seconds of sending measured")
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--alerts", type=int, default=200)
    ap.add_argument("--window", type=int, default=256, help="SMPP window")
    ap.add_argument(
        "--bulk-cpu",
        choices=["idle", "nice"],
        default="idle",
        help="split layout: bulk workers and the bulk SMSC under SCHED_IDLE, or at nice 10",
    )
    ap.add_argument(
        "--redis",
        choices=["single", "cluster"],
        default="single",
        help="one redis-server, or a Redis Cluster (3 primaries + 3 replicas, redis+cluster://)",
    )
    args = ap.parse_args()
    args.rows = min(args.rows, 2_000_000)

    print(host_line("before"))
    tmp = Path(tempfile.mkdtemp(prefix="gw-bulk-"))
    csv_path = tmp / "reminders.csv"
    t0 = time.perf_counter()
    write_csv(csv_path, args.rows)
    print(
        f"CSV: {args.rows} rows, {csv_path.stat().st_size / 1e6:.1f} MB "
        f"(written in {time.perf_counter() - t0:.1f} s)"
    )
    store = BenchRedis(args.redis, tmp)
    print(store.describe())
    smpp_port, http_port = free_port(), free_port()
    env = {
        **os.environ,
        # This checkout's gateway, whichever checkout the virtualenv was installed from.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "GATEWAY_REDIS_URL": store.url,
        "GATEWAY_HTTP_PORT": str(http_port),
        "GATEWAY_SMPP_PORT": str(smpp_port),
        "GATEWAY_SIM_PORT": str(smpp_port),
        "GATEWAY_SMPP_TPS": "100000",
        "GATEWAY_SMPP_WINDOW": str(args.window),
        "GATEWAY_SIM_RECEIPT_DELAY": "0",
        "GATEWAY_VOICE_ENABLED": "false",
        "GATEWAY_JOB_BACKLOG": "20000",
        "GATEWAY_REMINDER_DEDUP_HOURS": "0",
        "GATEWAY_REMINDER_DAILY_CAP": "0",
    }
    gw = [str(ROOT / ".venv/bin/gateway"), "--log-level", "WARNING"]
    procs: list[subprocess.Popen[bytes]] = []
    lanes: list[dict[str, str]] = [{}] * args.workers
    bulk_port = free_port()
    lower = ["chrt", "--idle", "0"] if args.bulk_cpu == "idle" else ["nice", "-n", "10"]
    if args.layout == "split":
        bulk = {
            "GATEWAY_WORKER_LANES": "bulk",
            "GATEWAY_WORKER_NICE": "10",
            "GATEWAY_WORKER_SCHED_IDLE": "true" if args.bulk_cpu == "idle" else "false",
            "GATEWAY_SMPP_LINKS": "main,bulk",
            "GATEWAY_SMPP_BULK_PORT": str(bulk_port),
        }
        lanes = [{"GATEWAY_WORKER_LANES": "priority"}] + [bulk] * args.workers
    names = ["smsc-sim", "api"] + [
        f"worker{i + 1} ({lane.get('GATEWAY_WORKER_LANES', 'priority,bulk')})"
        for i, lane in enumerate(lanes)
    ]
    sampler_task: asyncio.Task[None] | None = None
    try:
        await store.start()
        procs.append(subprocess.Popen([*gw, "smsc-sim", "--quiet"], env=env))
        if args.layout == "split":
            # The carrier's bulk channel: another SMSC (another machine in life; here it runs
            # at the bulk workers' CPU priority, so that it too stands aside for priority work).
            procs.append(
                subprocess.Popen(
                    [*lower, *gw, "smsc-sim", "--quiet", "--port", str(bulk_port)], env=env
                )
            )
            names.insert(1, "smsc-sim (bulk)")
        keys = add_keys(gw, env, ("back_office", "command_center", "admin"))
        procs.append(subprocess.Popen([*gw, "serve", "--role", "api"], env=env))
        for lane in lanes:
            procs.append(subprocess.Popen([*gw, "serve", "--role", "worker"], env={**env, **lane}))
        await wait_port(http_port)
        sampler = RssSampler(
            {n: p.pid for n, p in zip(names, procs, strict=True) if not n.startswith("smsc")}
        )
        sampler_task = asyncio.create_task(sampler.run())
        base = f"http://127.0.0.1:{http_port}"
        timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            for _ in range(300):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{base}/readyz") as r:
                        if r.status == 200:
                            break
                await asyncio.sleep(0.1)
            baseline = await alert_latencies(
                http, base, keys["admin"], keys["command_center"], args.alerts, 50
            )

            t0 = time.perf_counter()
            async with http.post(
                f"{base}/v1/reminder-jobs",
                params={
                    "template": "traffic_conditions",
                    "rate": "100000",
                    "send_window": "00:00-23:59",
                },
                data=chunks(csv_path),
                headers={
                    "Authorization": f"Bearer {keys['back_office']}",
                    "Content-Type": "text/csv",
                },
            ) as r:
                job = await r.json()
                assert r.status == 202, job
            intake = time.perf_counter() - t0
            job_id = job["job_id"]
            print(
                f"intake: {job['total']} recipients accepted in {intake:.1f} s "
                f"({job['total'] / intake:,.0f} rows/s), {job['bad_rows']} bad"
            )

            counts: dict[str, int] = {}

            async def done_now() -> tuple[float, int, str]:
                async with http.get(
                    f"{base}/v1/reminder-jobs/{job_id}",
                    headers={"Authorization": f"Bearer {keys['back_office']}"},
                ) as r:
                    body = await r.json()
                counts.clear()
                counts.update(body["counts"])
                return time.perf_counter(), int(body["counts"].get("delivered", 0)), body["status"]

            await asyncio.sleep(args.warmup)
            during_task = asyncio.create_task(
                alert_latencies(http, base, keys["admin"], keys["command_center"], args.alerts, 20)
            )
            start = await done_now()
            cpu_start = cpu_now(procs, names, store)
            store_cpu_start = store.cpu_seconds()
            nodes_start = await store.stats()
            end = start
            while end[0] - start[0] < args.measure and end[2] == "running":
                await asyncio.sleep(1)
                end = await done_now()
            cpu_end = cpu_now(procs, names, store)
            store_cpu_end = store.cpu_seconds()
            nodes_end = await store.stats()
            during = await during_task
            rate = (end[1] - start[1]) / (end[0] - start[0])
            per_msg = {
                n: (cpu_end[n] - cpu_start.get(n, 0.0)) * 1000 / max(1, end[1] - start[1])
                for n in cpu_end
            }
            print("job at the end of the window:", end[2], {k: v for k, v in counts.items() if v})
            async with http.post(
                f"{base}/v1/reminder-jobs/{job_id}/cancel",
                headers={"Authorization": f"Bearer {keys['back_office']}"},
            ):
                pass
        print(
            f"sustained: {rate:,.0f} messages/s submitted and receipted "
            f"(over {end[0] - start[0]:.0f} s; {end[1]} delivered in all)"
        )
        print(
            f"CPU per message over that window: {sum(per_msg.values()):.2f} ms ("
            + ", ".join(f"{n} {ms:.3f}" for n, ms in per_msg.items() if ms >= 0.005)
            + ")"
        )
        delivered = max(1, end[1] - start[1])
        calls_start, calls_end = primaries_calls(nodes_start), primaries_calls(nodes_end)
        per_cmd = {c: (n - calls_start.get(c, 0)) / delivered for c, n in calls_end.items()}
        print(
            f"Redis calls per message: {sum(per_cmd.values()):.1f} ("
            + ", ".join(
                f"{c} {v:.2f}" for c, v in sorted(per_cmd.items(), key=lambda x: -x[1]) if v >= 0.05
            )
            + ")"
        )
        print(await store.lane_owner())
        node_cpu = {p: s - store_cpu_start.get(p, 0.0) for p, s in store_cpu_end.items()}
        for line in node_lines(nodes_start, nodes_end, node_cpu, delivered):
            print(line)
        for name, peak in sampler.peak.items():
            print(f"peak RSS {name}: {peak / 2**20:.0f} MB")
        print(
            f"accident alert, created -> submitted: no job p50 {pct(baseline, 0.5):.1f} ms "
            f"p99 {pct(baseline, 0.99):.1f} ms; during the job p50 {pct(during, 0.5):.1f} ms "
            f"p99 {pct(during, 0.99):.1f} ms; added at p99 "
            f"{pct(during, 0.99) - pct(baseline, 0.99):.1f} ms "
            f"({len(baseline)}/{len(during)} alerts)"
        )
        for name, secs in cpu_now(procs, names, store).items():
            print(f"cpu {name}: {secs:.1f} s")
        return 0
    finally:
        if sampler_task is not None:
            sampler_task.cancel()
        stop_all(procs)
        store.stop()
        with contextlib.suppress(OSError):
            csv_path.unlink()
        print(host_line("after"))


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
