"""``gateway jobs``: submit a CSV reminder job with a live progress bar, read a job's state.

It talks to the gateway's HTTP API like any other client, with a back-office key from
``--key`` or ``GATEWAY_API_KEY``. The upload is streamed from the file; the bar follows the
job's outcomes (``done`` of ``total``) until it finishes or is cancelled.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from tqdm import tqdm

ENDED = ("finished", "cancelled", "aborted")
# Outcomes of a recipient that nothing was sent to: skipped, refused or given up.
NOT_SENT = frozenset(
    {"opted_out", "capped", "duplicate", "cancelled", "failed", "rejected", "unreachable"}
)


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """``gateway jobs``; ``--url`` and ``--key`` go before or after the subcommand."""
    conn = argparse.ArgumentParser(add_help=False, parents=[common])
    conn.add_argument("--url", default=argparse.SUPPRESS, help="the gateway's base URL")
    conn.add_argument("--key", default=argparse.SUPPRESS, help="API key (or GATEWAY_API_KEY)")
    j = sub.add_parser("jobs", help="reminder jobs through the HTTP API", parents=[conn])
    js = j.add_subparsers(dest="jobs_cmd", required=True)
    submit = js.add_parser(
        "submit", help="upload a CSV (header: to + the template's params)", parents=[conn]
    )
    submit.add_argument("file", type=Path)
    submit.add_argument("--template", required=True)
    submit.add_argument("--channel", default="sms", choices=["sms", "email", "voice"])
    submit.add_argument("--rate", type=float, help="messages per second for this job")
    submit.add_argument("--window", help="send window, e.g. 08:00-21:00 (local time)")
    submit.add_argument("--callback-url")
    submit.add_argument("--name")
    submit.add_argument("--no-wait", action="store_true", help="print the job id and return")
    status = js.add_parser("status", help="a job's counts per status", parents=[conn])
    status.add_argument("job_id")
    status.add_argument("--json", action="store_true")
    cancel = js.add_parser("cancel", help="stop a job", parents=[conn])
    cancel.add_argument("job_id")


async def _file_chunks(path: Path, bar: tqdm[Any]) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while chunk := await asyncio.to_thread(f.read, 1 << 20):
            bar.update(len(chunk))
            yield chunk


def _summary(job: dict[str, Any]) -> str:
    counts = ", ".join(f"{k} {v}" for k, v in sorted(job["counts"].items())) or "nothing yet"
    return (
        f"{job['job_id']}: {job['status']}; {job['done']}/{job['total']} done "
        f"({counts}); {job['bad_rows']} bad row(s)"
    )


async def _follow(http: aiohttp.ClientSession, base: str, job_id: str) -> dict[str, Any]:
    bar: tqdm[Any] | None = None
    try:
        while True:
            async with http.get(f"{base}/v1/reminder-jobs/{job_id}") as r:
                job: dict[str, Any] = await r.json()
                if r.status != 200:
                    raise RuntimeError(json.dumps(job, ensure_ascii=False))
            if bar is None:
                bar = tqdm(total=job["total"], unit="msg", desc="sending", file=sys.stderr)
            bar.n = job["done"]
            bar.set_postfix_str(job["status"], refresh=False)
            bar.refresh()
            if job["status"] in ENDED:
                return job
            await asyncio.sleep(0.5)
    finally:
        if bar is not None:
            bar.close()


async def run(args: argparse.Namespace, default_base: str) -> int:
    key = getattr(args, "key", "") or os.environ.get("GATEWAY_API_KEY", "")
    if not key:
        print("gateway jobs: give --key or set GATEWAY_API_KEY", file=sys.stderr)
        return 2
    base = (getattr(args, "url", "") or default_base).rstrip("/")
    headers = {"Authorization": f"Bearer {key}"}
    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as http:
        if args.jobs_cmd == "submit":
            return await _submit(http, base, args)
        path = f"{base}/v1/reminder-jobs/{args.job_id}"
        if args.jobs_cmd == "cancel":
            path += "/cancel"
        async with http.request("POST" if args.jobs_cmd == "cancel" else "GET", path) as r:
            body = await r.json()
        if r.status != 200:
            print(f"gateway jobs: {body['error']['message']}", file=sys.stderr)
            return 1
        if getattr(args, "json", False):
            print(json.dumps(body, ensure_ascii=False, indent=2))
        else:
            print(_summary(body))
            for bad in body["bad_rows_sample"][:20]:
                print(f"  line {bad.get('line', bad.get('index'))}: {bad['error']}")
        return 0


async def _submit(http: aiohttp.ClientSession, base: str, args: argparse.Namespace) -> int:
    if not args.file.is_file():
        print(f"gateway jobs: no such file {args.file}", file=sys.stderr)
        return 2
    query = {"template": args.template, "channel": args.channel}
    for name, value in (
        ("rate", args.rate),
        ("send_window", args.window),
        ("callback_url", args.callback_url),
        ("name", args.name),
    ):
        if value is not None:
            query[name] = str(value)
    size = args.file.stat().st_size
    with tqdm(total=size, unit="B", unit_scale=True, desc="uploading", file=sys.stderr) as bar:
        async with http.post(
            f"{base}/v1/reminder-jobs",
            params=query,
            data=_file_chunks(args.file, bar),
            headers={"Content-Type": "text/csv"},
        ) as r:
            body = await r.json()
    if r.status != 202:
        print(f"gateway jobs: {r.status} {body['error']['message']}", file=sys.stderr)
        details = body["error"].get("details")
        for bad in details if isinstance(details, list) else []:
            print(f"  line {bad.get('line', bad.get('index'))}: {bad['error']}", file=sys.stderr)
        return 1
    print(f"job {body['job_id']}: {body['total']} recipients, {body['bad_rows']} bad row(s)")
    for bad in body["bad_rows_sample"][:20]:
        print(f"  line {bad['line']}: {bad['error']}")
    if args.no_wait:
        return 0
    job = await _follow(http, base, body["job_id"])
    print(_summary(job))
    if job["status"] != "finished":
        return 1
    if not any(n for status, n in job["counts"].items() if status not in NOT_SENT):
        print("gateway jobs: the job ended with nothing sent", file=sys.stderr)
        return 1
    return 0
