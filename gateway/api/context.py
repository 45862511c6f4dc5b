"""Typed application keys: what the app factory puts in the app and handlers read back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web

from gateway.api.event_hub import EventHub
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
from gateway.store.keys import Keys
from gateway.store.notices import NoticeStore
from gateway.store.optouts import OptOutStore
from gateway.store.plate_calls import PlateCalls
from gateway.store.ratelimit import Gcra

SETTINGS = web.AppKey("settings", Settings)
REDIS = web.AppKey("redis", aioredis.Redis)
KEYS = web.AppKey("keys", Keys)
# Which queue each channel's lanes use: where a new notice goes.
QUEUES = web.AppKey("queues", ChannelQueues)
NOTICES = web.AppKey("notices", NoticeStore)
API_KEYS = web.AppKey("api_keys", ApiKeyStore)
BINDINGS = web.AppKey("bindings", BindingStore)
BINDING_REQUESTS = web.AppKey("binding_requests", BindingRequestStore)
GCRA = web.AppKey("gcra", Gcra)
JOBS = web.AppKey("jobs", JobStore)
OPT_OUTS = web.AppKey("opt_outs", OptOutStore)
FOLLOW_UPS = web.AppKey("follow_ups", FollowUpStore)
AUDIT = web.AppKey("audit", AuditLog)
FIGURES = web.AppKey("figures", FigureStore)
PLATE_CALLS = web.AppKey("plate_calls", PlateCalls)
CONSOLE_SESSIONS = web.AppKey("console_sessions", ConsoleSessions)
EVENT_HUB = web.AppKey("event_hub", EventHub)
METRICS = web.AppKey("metrics", Metrics)
CATALOGUE = web.AppKey("catalogue", Catalogue)
# In-process components report their readiness here (the SMPP bind, when the worker runs here).
READINESS = web.AppKey("readiness", dict[str, Callable[[], bool]])
# The OpenAPI document, built from the route table once per app.
OPENAPI = web.AppKey("openapi", dict[str, Any])
