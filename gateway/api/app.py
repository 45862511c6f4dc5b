"""The aiohttp application factory."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from gateway.api import routes_binding as binding
from gateway.api import routes_jobs as jobs
from gateway.api import routes_messages as messages
from gateway.api import routes_notices as notices
from gateway.api import routes_ops as ops
from gateway.api import routes_optouts as optouts
from gateway.api import routes_templates as templates
from gateway.api import routes_voice as voice
from gateway.api.context import (
    API_KEYS,
    BINDING_REQUESTS,
    BINDINGS,
    CATALOGUE,
    GCRA,
    JOBS,
    KEYS,
    METRICS,
    NOTICES,
    OPT_OUTS,
    READINESS,
    REDIS,
    SETTINGS,
)
from gateway.api.errors import HTTP_CODES, ApiError
from gateway.api.models import (
    AccidentAlert,
    BindingIn,
    BindingRequestIn,
    BindingVerifyIn,
    Message,
    ParkingNotice,
    ReminderJobIn,
)
from gateway.api.openapi import RouteDoc, build
from gateway.api.responses import json_response
from gateway.core.templates import Catalogue
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.store.apikeys import ApiKeyStore
from gateway.store.binding_requests import BindingRequestStore
from gateway.store.bindings import BindingStore
from gateway.store.jobs import JobStore
from gateway.store.keys import Keys
from gateway.store.notices import NoticeStore
from gateway.store.optouts import OptOutStore
from gateway.store.ratelimit import Gcra
from gateway.store.redis_conn import connect

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ROUTES: list[tuple[RouteDoc, Handler]] = [
    (
        RouteDoc(
            "POST",
            "/v1/accident-alerts",
            "Send an accident procedure by SMS",
            ("command_center",),
            AccidentAlert,
            202,
        ),
        notices.post_accident_alert,
    ),
    (
        RouteDoc(
            "POST",
            "/v1/messages",
            "Send a templated or plain notice",
            ("command_center",),
            Message,
            202,
        ),
        messages.post_message,
    ),
    (RouteDoc("GET", "/v1/notices/{id}", "A notice and its history", ()), notices.get_notice),
    (
        RouteDoc(
            "POST",
            "/v1/reminder-jobs",
            "Bulk reminders: a JSON list, or a CSV upload (text/csv, options in the query)",
            ("command_center", "back_office"),
            ReminderJobIn,
            202,
        ),
        jobs.post_reminder_job,
    ),
    (
        RouteDoc(
            "GET",
            "/v1/reminder-jobs/{id}",
            "A job's progress, counts per status",
            ("command_center", "back_office"),
        ),
        jobs.get_reminder_job,
    ),
    (
        RouteDoc(
            "POST",
            "/v1/reminder-jobs/{id}/cancel",
            "Stop a job",
            ("command_center", "back_office"),
        ),
        jobs.cancel_reminder_job,
    ),
    (
        RouteDoc(
            "POST",
            "/v1/parking-notices",
            "Call a badly parked car's owner",
            ("officer",),
            ParkingNotice,
            202,
        ),
        voice.post_parking_notice,
    ),
    (
        RouteDoc(
            "POST",
            "/v1/binding-requests",
            "Open a binding request; the phone gets a one-time code by SMS",
            ("binding_agent",),
            BindingRequestIn,
            201,
        ),
        binding.post_binding_request,
    ),
    (
        RouteDoc("GET", "/v1/binding-requests/{ref}", "A binding request", ("binding_agent",)),
        binding.get_binding_request,
    ),
    (
        RouteDoc(
            "POST",
            "/v1/binding-requests/{ref}/verify",
            "Confirm a binding request with the code (the website's path)",
            ("binding_agent",),
            BindingVerifyIn,
            200,
        ),
        binding.verify_binding_request,
    ),
    (
        RouteDoc(
            "POST",
            "/v1/binding-requests/{ref}/cancel",
            "Cancel a pending binding request",
            ("binding_agent",),
        ),
        binding.cancel_binding_request,
    ),
    (
        RouteDoc("GET", "/v1/admin/binding-audit", "The bindings' audit trail", ("admin",)),
        binding.get_binding_audit,
    ),
    (
        RouteDoc(
            "POST", "/v1/bindings", "Bind a plate directly (admins)", ("admin",), BindingIn, 201
        ),
        binding.post_binding,
    ),
    (
        RouteDoc("GET", "/v1/bindings/{plate}", "A plate's binding", ("binding_agent",)),
        binding.get_binding,
    ),
    (
        RouteDoc("DELETE", "/v1/bindings/{plate}", "Remove a binding (admins)", ("admin",)),
        binding.delete_binding,
    ),
    (
        RouteDoc(
            "GET",
            "/v1/suspected-cloned-plates",
            "Plates disputed by their owners",
            ("command_center",),
        ),
        voice.suspected_clones,
    ),
    (
        RouteDoc("GET", "/v1/admin/opt-outs", "Numbers opted out of reminders", ("admin",)),
        optouts.list_opt_outs,
    ),
    (
        RouteDoc(
            "POST",
            "/v1/admin/opt-outs",
            "Opt a number out of reminders",
            ("admin",),
            optouts.OptOutIn,
            201,
        ),
        optouts.add_opt_out,
    ),
    (
        RouteDoc("DELETE", "/v1/admin/opt-outs/{phone}", "Reverse an opt-out", ("admin",)),
        optouts.remove_opt_out,
    ),
    (
        RouteDoc("GET", "/v1/admin/webhook-dead-letters", "Callbacks given up", ("admin",)),
        ops.webhook_dead_letters,
    ),
    (
        RouteDoc("GET", "/v1/templates", "The templates: params, channels, text, SMS parts", ()),
        templates.list_templates,
    ),
    (RouteDoc("GET", "/v1/templates/{name}", "One template", ()), templates.get_template),
    (RouteDoc("GET", "/healthz", "Process is up", None), ops.healthz),
    (RouteDoc("GET", "/readyz", "Redis and SMPP bind state", None), ops.readyz),
    (RouteDoc("GET", "/metrics", "Prometheus metrics", None), ops.metrics),
]


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
        resp = ApiError(exc.status, code, exc.reason or code, details=details).response()
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
    keys = Keys(settings.redis.redis_prefix)
    app[KEYS] = keys

    async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
        redis = connect(settings.redis)
        app[REDIS] = redis
        app[NOTICES] = NoticeStore(redis, keys, settings.api.idempotency_ttl_hours * 3600)
        app[API_KEYS] = ApiKeyStore(redis, keys)
        app[BINDINGS] = BindingStore(redis, keys)
        app[BINDING_REQUESTS] = BindingRequestStore(redis, keys)
        app[GCRA] = Gcra(redis)
        app[JOBS] = JobStore(redis, keys)
        app[OPT_OUTS] = OptOutStore(redis, keys)
        yield
        await redis.aclose()

    app.cleanup_ctx.append(redis_ctx)
    docs = [d for d, _ in ROUTES]
    spec = build(
        [*docs, RouteDoc("GET", "/openapi.json", "This document", None)],
        sorted(app[CATALOGUE].templates),
    )

    async def openapi(request: web.Request) -> web.Response:
        return json_response(spec)

    for doc, handler in ROUTES:
        app.router.add_route(doc.method, doc.path, handler)
    app.router.add_get("/openapi.json", openapi)
    return app
