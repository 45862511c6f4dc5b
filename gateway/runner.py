"""Running the gateway's parts with owned tasks and a fixed shutdown order.

Shutdown: stop accepting HTTP -> let requests finish (timeout) -> unbind SMPP -> cancel the
workers -> close Redis. Queue entries a worker had not finished stay pending in Redis and are
picked up by the next worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable

from aiohttp import web

from gateway.api.app import create_app
from gateway.api.server import ApiRunner
from gateway.channels.registry import ChannelRegistry
from gateway.channels.worker import ChannelWorker, Lane
from gateway.core.secret_box import SecretBox
from gateway.housekeeping import Housekeeper
from gateway.jobs.dispatcher import JobDispatcher
from gateway.metrics import Metrics
from gateway.receipts.dispatcher import WebhookDispatcher
from gateway.settings import Settings, WorkerSettings
from gateway.sms.mo_handler import MoHandler
from gateway.sms.sender import SmsSender
from gateway.store.apikeys import ApiKeyStore
from gateway.store.lane_count import LaneCountChanged, check_lane_count
from gateway.store.notices import NoticeStore
from gateway.store.outage import once_reachable
from gateway.store.redis_conn import connect
from gateway.store.replicas import ReplicaWait
from gateway.store.streams import consumer_name
from gateway.voice.caller import VoiceCaller

log = logging.getLogger(__name__)

Part = WebhookDispatcher | MoHandler | JobDispatcher | ChannelWorker | Housekeeper


class Workers:
    """One process's workers, by lane.

    priority: the SMS channel on the priority queue, webhooks, MO handling, voice,
    housekeeping (missing follow-ups counted, the audit trail trimmed).
    bulk: the SMS channel on the bulk queue, email, the reminder-job dispatcher.
    A process with both lanes has one SMS bind that always serves priority parts first.
    """

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.redis = connect(settings.redis)
        keys = settings.redis.keys()
        consumer = consumer_name()
        store = NoticeStore(self.redis, keys, wait=ReplicaWait.of(settings.redis))
        lanes = frozenset(Lane(lane) for lane in settings.worker.worker_lanes.split(","))
        self.lanes = lanes
        self.registry = ChannelRegistry(settings, keys)
        self.channels = self.registry.workers(self.redis, store, metrics, consumer, lanes)
        self.webhooks: WebhookDispatcher | None = None
        self.mo: MoHandler | None = None
        self.jobs: JobDispatcher | None = None
        self.housekeeper: Housekeeper | None = None
        if Lane.PRIORITY in lanes:
            self.housekeeper = Housekeeper(self.redis, keys, settings.follow_up)
            self.webhooks = WebhookDispatcher(
                self.redis,
                keys,
                ApiKeyStore(
                    self.redis, keys, SecretBox(settings.security.secret_key.get_secret_value())
                ),
                settings.webhook,
                settings.worker,
                metrics,
                consumer,
            )
            self.mo = MoHandler(self.redis, keys, settings, consumer)
        if Lane.BULK in lanes:
            self.jobs = JobDispatcher(self.redis, keys, settings, consumer)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def sms_links(self) -> list[SmsSender]:
        """This process's SMPP binds, one per link."""
        return [w.channel for w in self.channels.values() if isinstance(w.channel, SmsSender)]

    @property
    def sms(self) -> SmsSender:
        """The bind carrying the priority lane (or this process's only one)."""
        links = self.sms_links
        return next((c for c in links if Lane.PRIORITY in c.lanes), links[0])

    @property
    def bound(self) -> bool:
        """Every SMPP link of this process is bound."""
        return all(c.bound for c in self.sms_links)

    @property
    def voice(self) -> VoiceCaller | None:
        worker = self.channels.get("voice")
        return worker.channel if worker is not None else None  # type: ignore[return-value]

    def start(self) -> None:
        runs: dict[str, Part | None] = {
            **{f"{name}-channel": worker for name, worker in self.channels.items()},
            "webhooks": self.webhooks,
            "mo-handler": self.mo,
            "job-dispatcher": self.jobs,
            "housekeeping": self.housekeeper,
        }
        self._tasks = [
            asyncio.create_task(part.run(), name=name)
            for name, part in runs.items()
            if part is not None
        ]

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        return self._tasks

    async def stop(self) -> None:
        for part in (self.webhooks, self.jobs, self.mo, self.housekeeper):
            if part is not None:
                part.close()
        for worker in self.channels.values():
            await worker.stop()
        await reap([*self._tasks])
        await self.redis.aclose()


async def reap(tasks: list[asyncio.Future[None]], within: float = 10.0) -> None:
    """Cancel tasks until they end, and report how they ended.

    A library may swallow one CancelledError (redis-py has paths that do);
    the loops here also stop on their closing flags, and cancelling again covers the rest.
    """
    pending = {t for t in tasks if not t.done()}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while pending and loop.time() < deadline:
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.5)
    for t in pending:
        log.error("task %s did not stop within %.0fs", _name(t), within)
    for t in tasks:
        if t.done() and not t.cancelled() and t.exception() is not None:
            log.error("task %s ended with %r", _name(t), t.exception())


def _name(f: asyncio.Future[None]) -> str:
    return f.get_name() if isinstance(f, asyncio.Task) else repr(f)


def lower_cpu_priority(worker: WorkerSettings) -> None:
    """Apply ``worker_nice`` and ``worker_sched_idle`` to every thread of this process (Linux
    keeps both per thread; threads made later inherit them)."""
    sched_idle = worker.worker_sched_idle
    for tid in map(int, os.listdir("/proc/self/task")):
        if worker.worker_nice:
            niceness = os.getpriority(os.PRIO_PROCESS, tid) + worker.worker_nice
            os.setpriority(os.PRIO_PROCESS, tid, min(niceness, 19))
        if sched_idle:
            try:
                os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
            except PermissionError as exc:  # a sandbox that forbids it: nice still holds
                log.warning("SCHED_IDLE refused (%s); the worker runs at its nice value", exc)
                sched_idle = False


async def _check_lanes(settings: Settings) -> None:
    redis = connect(settings.redis)
    try:
        keys = settings.redis.keys()
        await once_reachable("lane count", lambda: check_lane_count(redis, keys))
    finally:
        await redis.aclose()


async def serve(settings: Settings, role: str, ready: Callable[[], None] | None = None) -> int:
    """Run until SIGINT/SIGTERM; returns the exit code: 0 for a stop that was asked for, 1 when
    a worker ended by itself (a bug: Redis outages are waited out), so a supervisor restarts
    the process."""
    try:
        await _check_lanes(settings)
    except LaneCountChanged as exc:
        log.error("not started: %s", exc)
        return 2
    metrics = Metrics()
    if role == "worker":
        lower_cpu_priority(settings.worker)  # a bulk worker yields the CPU to the rest
    workers = Workers(settings, metrics) if role in ("all", "worker") else None
    readiness: dict[str, Callable[[], bool]] = {}
    if workers is not None:
        readiness["smpp"] = lambda: workers.bound
        if workers.voice is not None:
            voice = workers.voice
            readiness["ami"] = lambda: voice.ami.up
    runner: web.AppRunner | None = None
    failed = False
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        if workers is not None:
            workers.start()
        if role in ("all", "api"):
            app = create_app(settings, metrics, readiness)
            runner = ApiRunner(app, access_log=None, shutdown_timeout=10)
            await runner.setup()
            site = web.TCPSite(
                runner,
                settings.http.http_host,
                settings.http.http_port,
                backlog=1024,
                reuse_address=True,
            )
            await site.start()
            log.info(
                "API listening on http://%s:%d", settings.http.http_host, settings.http.http_port
            )
        if ready is not None:
            ready()
        waiters: list[asyncio.Future[object]] = [asyncio.ensure_future(stop.wait())]
        if workers is not None:
            waiters.extend(workers.tasks)  # type: ignore[arg-type]
        done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for d in done:
            if d is not waiters[0]:
                failed = True
                log.error("a worker ended by itself (%r); stopping", d.exception())
        waiters[0].cancel()
    finally:
        log.info("shutting down")
        if runner is not None:
            await runner.cleanup()
        if workers is not None:
            await workers.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    return 1 if failed else 0
