"""Operational routes: health, readiness, metrics, OpenAPI, and admin views."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.api.context import FIGURES, KEYS, METRICS, OPENAPI, READINESS, REDIS
from gateway.api.errors import ApiError
from gateway.api.responses import json_response
from gateway.store.lane_merge import newest_of_lanes
from gateway.store.outage import STORE_DOWN
from gateway.store.unmatched_receipts import UnmatchedReceipts


async def healthz(request: web.Request) -> web.Response:
    """The process is up."""
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Redis reachable, an SMPP link bound (by this or any worker process), and the AMI link
    up when this process places calls. ``detail.smpp_binds`` names the bound SMPP links'
    consumers (each worker's link says so in Redis while it is bound)."""
    checks: dict[str, bool] = {}
    binds: list[str] = []
    redis = request.app[REDIS]
    try:
        checks["redis"] = bool(await redis.ping())
    except (OSError, ConnectionError, TimeoutError) as exc:
        checks["redis"] = False
        del exc
    except Exception:  # redis.exceptions.* derive from Exception
        checks["redis"] = False
    local = request.app[READINESS]
    smpp = any(f() for name, f in local.items() if name == "smpp")
    if checks["redis"]:
        now_ms = int(time.time() * 1000)
        binds = await redis.zrangebyscore(request.app[KEYS].smpp_bound, now_ms, "+inf", 0, 50)
    checks["smpp"] = smpp or bool(binds)
    # Components that run in this process report themselves (the AMI link of a voice worker).
    for name, probe in local.items():
        if name != "smpp":
            checks[name] = probe()
    ok = all(checks.values())
    return json_response(
        {
            "status": "ready" if ok else "not_ready",
            "checks": checks,
            "detail": {"smpp_binds": sorted(binds)},
        },
        status=200 if ok else 503,
    )


async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI document of every route."""
    return json_response(request.app[OPENAPI])


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format; the figures' totals are read from Redis for each scrape (the
    last values read stay while Redis is away)."""
    metrics = request.app[METRICS]
    with contextlib.suppress(*STORE_DOWN):
        metrics.figures.totals = await request.app[FIGURES].totals()
    data = generate_latest(metrics.registry)
    return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _limit(request: web.Request) -> int:
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        raise ApiError(400, "invalid_query", "limit must be an integer") from None
    if not 1 <= limit <= 1000:
        raise ApiError(400, "invalid_query", "limit must be between 1 and 1000")
    return limit


async def unmatched_receipts(request: web.Request) -> web.Response:
    """Delivery receipts whose carrier id matched no sent part, newest first (a sign that a
    link's GATEWAY_SMPP_<LINK>_RECEIPT_ID does not fit its carrier)."""
    store = UnmatchedReceipts(request.app[REDIS], request.app[KEYS])
    out = await store.newest(_limit(request))
    return web.json_response({"items": out, "count": len(out)})


async def webhook_dead_letters(request: web.Request) -> web.Response:
    """Callbacks given up after retrying for hours, newest first."""
    limit = _limit(request)
    keys, redis = request.app[KEYS], request.app[REDIS]

    async def dead(lane: int) -> list[dict[str, Any]]:
        return [
            json.loads(raw) for raw in await redis.lrange(keys.webhook_dead(lane), 0, limit - 1)
        ]

    out = await newest_of_lanes(keys.each_lane(), dead, lambda i: str(i.get("dead_at", "")), limit)
    for item in out:
        item["body"] = json.loads(item.get("body", "{}"))
    return json_response({"items": out, "count": len(out)})
