"""Voice path benchmark against a real Asterisk (Local channels run the FastAGI flow).

1. Latency: parking notices at a steady pace; time from API accept to Originate sent, from
   each notice's own history (queued.at -> dialing.at; dialing is written as Originate goes).
2. Concurrency: a burst of calls at the configured calls/s; every call must end
   acknowledged (the sink callee presses 1); prints the peak of calls in progress at once.

    .venv/bin/python -m bench.voice_calls --calls 200 --rate 100
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import aiohttp

from bench.sms_path import ROOT, add_keys, free_port, start_redis, stop_all, wait_port
from gateway.settings import Settings
from gateway.voice.asterisk_config import render


def _ts(at: str) -> float:
    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


def asterisk_command(env: dict[str, str], directory: Path) -> list[str]:
    """A private Asterisk rendered from dialplan/ with these settings (into ``directory``)."""
    os.environ.update({k: v for k, v in env.items() if k.startswith("GATEWAY_")})
    conf = render(Settings(), directory)
    return [shutil.which("asterisk") or "asterisk", "-C", str(conf), "-f", "-n"]


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--rate", type=float, default=100.0, help="GATEWAY_CALLS_PER_SECOND")
    ap.add_argument("--latency-notices", type=int, default=100)
    args = ap.parse_args()
    args.calls = min(args.calls, 1000)

    tmp = Path(tempfile.mkdtemp(prefix="gw-voice-bench-"))
    ports = {k: free_port() for k in ("redis", "smpp", "http", "ami", "agi", "sip", "trunk")}
    env = {
        **os.environ,
        "GATEWAY_REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/0",
        "GATEWAY_SMPP_PORT": str(ports["smpp"]),
        "GATEWAY_SIM_PORT": str(ports["smpp"]),
        "GATEWAY_HTTP_PORT": str(ports["http"]),
        "GATEWAY_AMI_PORT": str(ports["ami"]),
        "GATEWAY_AGI_PORT": str(ports["agi"]),
        "GATEWAY_SIP_BIND_PORT": str(ports["sip"]),
        "GATEWAY_SIP_TRUNK_PORT": str(ports["trunk"]),
        "GATEWAY_VOICE_CHANNEL": "Local/{number}@sink",
        "GATEWAY_QUIET_HOURS": "",
        "GATEWAY_CALLS_PER_SECOND": str(args.rate),
        "GATEWAY_MAX_CALLS": "400",
        "GATEWAY_AUDIO_DIR": str(tmp / "audio"),
    }
    asterisk = asterisk_command(env, tmp / "asterisk")
    gw = [str(ROOT / ".venv/bin/gateway"), "--log-level", "WARNING"]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(start_redis(ports["redis"], tmp))
        with (tmp / "asterisk.log").open("wb") as log:
            procs.append(
                subprocess.Popen(
                    asterisk,
                    stdout=log,
                    stderr=log,
                    stdin=subprocess.DEVNULL,
                )
            )
        procs.append(subprocess.Popen([*gw, "smsc-sim", "--quiet"], env=env))
        await wait_port(ports["redis"])
        await wait_port(ports["ami"], 30)
        keys = add_keys(gw, env, ("officer", "admin"))
        procs.append(subprocess.Popen([*gw, "serve"], env=env))
        await wait_port(ports["http"])
        base = f"http://127.0.0.1:{ports['http']}"
        total = args.latency_notices + args.calls
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                async with http.get(f"{base}/readyz") as r:
                    if r.status == 200:
                        break
                await asyncio.sleep(0.1)
            hdr = {"Authorization": f"Bearer {keys['admin']}"}
            for i in range(total):
                async with http.post(
                    f"{base}/v1/bindings",
                    headers=hdr,
                    json={"plate": f"云A{i:05d}", "phone": f"1380{i:06d}1"},
                ) as r:
                    assert r.status in (200, 201), await r.text()
            ohdr = {"Authorization": f"Bearer {keys['officer']}"}

            async def notice(i: int) -> str:
                async with http.post(
                    f"{base}/v1/parking-notices",
                    headers=ohdr,
                    json={
                        "plate": f"云A{i:05d}",
                        "location": "北京路",
                        "move_within_minutes": 10,
                        "officer_id": "B1",
                    },
                ) as r:
                    body = await r.json()
                    assert r.status == 202, body
                    return str(body["id"])

            latency_ids = []
            for i in range(args.latency_notices):
                latency_ids.append(await notice(i))
                await asyncio.sleep(0.05)
            t0 = time.perf_counter()
            burst_ids = await asyncio.gather(
                *(notice(args.latency_notices + i) for i in range(args.calls))
            )
            accepted = time.perf_counter() - t0

            async def final(nid: str) -> dict:  # type: ignore[type-arg]
                async with http.get(f"{base}/v1/notices/{nid}", headers=ohdr) as r:
                    return dict(await r.json())

            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                done = [await final(n) for n in burst_ids]
                if all(
                    d["status"]
                    in ("acknowledged", "disputed", "no_input", "busy", "no_answer", "failed")
                    for d in done
                ):
                    break
                await asyncio.sleep(1)
            lat = []
            for nid in latency_ids:
                h = (await final(nid))["history"]
                q = next(e for e in h if e["status"] == "queued")
                d = next(e for e in h if e["status"] == "dialing")
                lat.append((_ts(d["at"]) - _ts(q["at"])) * 1000)
            events = []
            for d in done:
                h = {e["status"]: _ts(e["at"]) for e in d["history"]}
                if "dialing" in h and d["status"] in h:
                    events += [(h["dialing"], 1), (h[d["status"]], -1)]
            peak = cur = 0
            for _, step in sorted(events):
                cur += step
                peak = max(peak, cur)
            ok = sum(d["status"] == "acknowledged" for d in done)
            span = (
                max(t for t, s in events if s < 0) - min(t for t, s in events if s > 0)
                if events
                else 0.0
            )
        print(
            f"accept -> Originate   p50 {_pct(lat, 0.5):.1f} ms, p99 {_pct(lat, 0.99):.1f} ms"
            f" ({len(lat)} notices at 20/s; history timestamps have 1 ms resolution)"
        )
        print(
            f"burst                 {args.calls} notices accepted in {accepted:.2f} s, "
            f"calls/s limit {args.rate:.0f}"
        )
        print(
            f"calls completed       {ok} acknowledged of {args.calls}, "
            f"lost {args.calls - len([d for d in done if d['status'] != 'queued'])}, "
            f"first dial to last outcome {span:.1f} s"
        )
        print(f"peak calls at once    {peak} (dialing..outcome overlapping)")
        return 0 if ok == args.calls else 1
    finally:
        stop_all(procs)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
