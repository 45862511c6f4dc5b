"""A worker part that keeps the figures and the audit trail: parking notices whose
follow-up never came are counted, audit entries past their retention are trimmed.

Both steps are safe to run in every worker at once (the count is one script call per batch
that takes each notice off the due set once; the trim drops by entry id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import redis.asyncio as aioredis

from gateway.settings import FollowUpSettings
from gateway.store.audit_log import AuditLog
from gateway.store.follow_ups import FollowUpStore
from gateway.store.keys import Keys
from gateway.store.outage import STORE_DOWN, Outage

log = logging.getLogger(__name__)

BATCH = 500


class Housekeeper:
    def __init__(self, redis: aioredis.Redis, keys: Keys, settings: FollowUpSettings) -> None:
        self.follow_ups = FollowUpStore(redis, keys)
        self.audit = AuditLog(redis, keys)
        self.settings = settings
        self._closing = False
        self._wake = asyncio.Event()

    def close(self) -> None:
        self._closing = True
        self._wake.set()

    async def run(self) -> None:
        outage = Outage("housekeeping")
        while not self._closing:
            try:
                await self.step()
                outage.ok()
            except STORE_DOWN as exc:
                await outage.pause(exc)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.housekeeping_seconds)

    async def step(self) -> None:
        """One round: every due missing follow-up counted, the audit trail trimmed."""
        now_ms = int(time.time() * 1000)
        while await self.follow_ups.count_missing(now_ms=now_ms, max_count=BATCH) == BATCH:
            pass
        dropped = await self.audit.trim(self.settings.audit_retention_days)
        if dropped:
            log.info("audit trail: %d entries past retention trimmed", dropped)
