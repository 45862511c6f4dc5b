"""A webhook receiver process for the fault suite: checks each callback's signature and writes
one line per callback to a file before it answers 204, so what it acknowledged is on record
even when it is killed.

    python -m bench.webhook_sink --port P --out FILE    (secrets: FAULTS_HOOK_SECRETS=a,b)
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.receipts.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify


def app(out: Path, secrets: list[str]) -> web.Application:
    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    async def hook(request: web.Request) -> web.Response:
        raw = await request.read()
        ts = request.headers.get(TIMESTAMP_HEADER, "")
        sig = request.headers.get(SIGNATURE_HEADER, "")
        signed = any(verify(s, ts, raw, sig) for s in secrets)
        body = json.loads(raw)
        line = {
            "id": body["id"],
            "status": body["status"],
            "kind": body["kind"],
            "ok": signed,
            "t": time.time(),
        }
        os.write(fd, (json.dumps(line) + "\n").encode())
        return web.Response(status=204)

    a = web.Application()
    a.router.add_post("/hook", hook)
    return a


def read_hooks(path: Path) -> list[dict[str, Any]]:
    """The callbacks recorded so far (a line cut by a kill is skipped)."""
    out = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    secrets = [s for s in os.environ.get("FAULTS_HOOK_SECRETS", "").split(",") if s]
    web.run_app(
        app(args.out, secrets), host="127.0.0.1", port=args.port, access_log=None, print=None
    )


if __name__ == "__main__":
    main()
