"""The aiohttp application factory."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from gateway.api.context import (
    API_KEYS,
    AUDIT,
    BINDING_REQUESTS,
    BINDINGS,
    CATALOGUE,
    CONSOLE_SESSIONS,
    EVENT_HUB,
    FIGURES,
    FOLLOW_UPS,
    GCRA,
    JOBS,
    KEYS,
    METRICS,
    NOTICES,
    OPENAPI,
    OPT_OUTS,
    PLATE_CALLS,
    QUEUES,
    READINESS,
    REDIS,
    SETTINGS,
)
from gateway.api.errors import HTTP_CODES, ApiError
from gateway.api.event_hub import EventHub
from gateway.api.openapi import build
from gateway.api.route_table import ROUTES
from gateway.api.routing import register
from gateway.channels.queues import ChannelQueues
from gateway.core.templates import Catalogue
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.store.apikeys import ApiKeyStore
from gateway.store.audit_log import AuditLog
from gateway.store.binding_requests import BindingRequestStore
from gateway.store.bindings import BindingStore
from gateway.store.console_sessions import ConsoleSessions
from gateway.store.figures import FigureStore
from gateway.store.follow_ups import FollowUpStore
from gateway.store.jobs import JobStore
from gateway.store.notices import NoticeStore
from gateway.store.optouts import OptOutStore
from gateway.store.outage import STORE_DOWN, NotReplicated
from gateway.store.plate_calls import PlateCalls
from gateway.store.ratelimit import Gcra
from gateway.store.redis_conn import connect
from gateway.store.replicas import ReplicaWait

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = (
        request.match_info.route.resource.canonical
        if request.match_info.route.resource
        else "unmatched"
    )
    metrics = request.app[METRICS]
    start = time.perf_counter()
    try:
        resp = await handler(request)
    except ApiError as exc:
        resp = exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = HTTP_CODES.get(exc.status, "http_error")
        allowed = getattr(exc, "allowed_methods", None)  # 405 names the methods that work
        details = {"allowed": sorted(allowed)} if allowed else None
        headers = {"Allow": ", ".join(sorted(allowed))} if allowed else None
        resp = ApiError(
            exc.status, code, exc.reason or code, details=details, headers=headers
        ).response()
    except NotReplicated as exc:
        # Stored on the primary, but a failover now could lose it: not acknowledged.
        log.warning("write not replicated on %s %s: %r", request.method, route, exc)
        resp = ApiError(
            503,
            "store_unavailable",
            "the store has the write but no replica confirmed it in time, so it may exist: "
            "retry shortly with the same Idempotency-Key (without one a notice may be sent "
            "twice; a reminder job is listed at GET /v1/reminder-jobs)",
            headers={"Retry-After": "1"},
        ).response()
    except STORE_DOWN as exc:
        # Redis restarting or failing over: nothing was stored, the caller should try again.
        log.warning("store unavailable on %s %s: %r", request.method, route, exc)
        resp = ApiError(
            503,
            "store_unavailable",
            "the notice store is briefly unavailable; nothing was stored, retry shortly",
            headers={"Retry-After": "1"},
        ).response()
    except Exception:
        log.exception("unhandled error on %s %s", request.method, route)
        resp = ApiError(
            500, "internal_error", "internal error; the request was not processed"
        ).response()
    metrics.http_requests.labels(route, str(resp.status)).inc()
    metrics.http_latency.labels(route).observe(time.perf_counter() - start)
    return resp


def create_app(
    settings: Settings,
    metrics: Metrics | None = None,
    readiness: dict[str, Callable[[], bool]] | None = None,
) -> web.Application:
    app = web.Application(
        middlewares=[errors_middleware], client_max_size=settings.http.http_max_body
    )
    app[SETTINGS] = settings
    app[METRICS] = metrics or Metrics()
    app[READINESS] = readiness or {}
    app[CATALOGUE] = Catalogue.load()
    keys = settings.redis.keys()
    app[KEYS] = keys
    app[QUEUES] = ChannelQueues(keys)

    async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
        redis = connect(settings.redis)
        app[REDIS] = redis
        app[NOTICES] = NoticeStore(
            redis,
            keys,
            settings.api.idempotency_ttl_hours * 3600,
            ReplicaWait.of(settings.redis),
        )
        app[API_KEYS] = api_keys = ApiKeyStore(redis, keys)
        app[BINDINGS] = BindingStore(redis, keys)
        app[BINDING_REQUESTS] = BindingRequestStore(
            redis, keys, settings.security.code_pepper.get_secret_value()
        )
        app[GCRA] = Gcra(redis)
        app[JOBS] = JobStore(redis, keys, ReplicaWait.of(settings.redis))
        app[OPT_OUTS] = OptOutStore(redis, keys)
        app[FOLLOW_UPS] = FollowUpStore(redis, keys)
        app[AUDIT] = AuditLog(redis, keys)
        app[FIGURES] = FigureStore(redis, keys)
        app[PLATE_CALLS] = PlateCalls(redis, keys)
        minutes = settings.console.console_session_minutes
        app[CONSOLE_SESSIONS] = ConsoleSessions(redis, keys, minutes * 60)
        app[EVENT_HUB] = EventHub(redis, [keys.events(lane) for lane in keys.each_lane()])
        await app[EVENT_HUB].start()
        # A revoked or changed key leaves this process's cache at once, not after its TTL.
        invalidation = asyncio.create_task(api_keys.follow_changes(), name="api-key-changes")
        yield
        invalidation.cancel()
        await asyncio.gather(invalidation, return_exceptions=True)
        await app[EVENT_HUB].stop()
        await redis.aclose()

    async def close_streams(app: web.Application) -> None:
        # Before the server waits for its handlers: open event streams end now.
        await app[EVENT_HUB].stop()

    app.cleanup_ctx.append(redis_ctx)
    app.on_shutdown.append(close_streams)
    app[OPENAPI] = build(ROUTES, sorted(app[CATALOGUE].templates))
    register(app, ROUTES)
    return app
