"""Where a webhook goes when it was not delivered: back to the outbox a moment later (not an
attempt), along its retry schedule, or, past the give-up horizon, to the dead-letter list.
Each move takes it off the outbox stream in the same transaction."""

from __future__ import annotations

import json
import logging
import random
import time
from datetime import UTC, datetime

import redis.asyncio as aioredis

from gateway.metrics import Metrics
from gateway.receipts.backoff import next_delay
from gateway.settings import WebhookSettings
from gateway.store.keys import Keys

log = logging.getLogger(__name__)

# A webhook whose host has no room goes back to the outbox this much later.
BUSY_DELAY = 1.0


def _parse_iso(at: str) -> float:
    try:
        return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time()


class Undelivered:
    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        settings: WebhookSettings,
        metrics: Metrics,
        group: str,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings
        self.metrics = metrics
        self.group = group

    # Each takes the webhook's lane (whose outbox it was read from) and its entry id there.
    async def put_back(self, lane: int, eid: str, f: dict[str, str]) -> None:
        """Its host's slots and waiting line are full: a moment in the retry set, no attempt."""
        self.metrics.webhooks.labels("deferred").inc()
        await self._requeue(lane, eid, json.dumps(f, ensure_ascii=False), BUSY_DELAY)

    async def wait_for_probe(
        self, lane: int, eid: str, f: dict[str, str], host: str, wait_s: float
    ) -> None:
        """The host is parked: not tried, so no attempt (after a long outage its webhooks
        must not be hours apart). It waits for the host's probe, spread over a second."""
        if time.time() - _parse_iso(f.get("first_at", "")) > self.settings.webhook_give_up_after:
            await self.dead(lane, eid, f, f"host {host} parked: it kept timing out")
            return
        self.metrics.webhooks.labels("parked").inc()
        delay = max(BUSY_DELAY, wait_s) + random.random()
        await self._requeue(lane, eid, json.dumps(f, ensure_ascii=False), delay)

    async def retry_later(self, lane: int, eid: str, f: dict[str, str], error: str) -> None:
        attempt = int(f.get("attempt", "1"))
        first = _parse_iso(f.get("first_at", ""))
        if time.time() - first > self.settings.webhook_give_up_after:
            await self.dead(lane, eid, f, error)
            return
        delay = next_delay(
            attempt, self.settings.webhook_first_retry, self.settings.webhook_max_retry_interval
        )
        self.metrics.webhooks.labels("retry").inc()
        log.info(
            "webhook for %s (%s) failed on attempt %d (%s); attempt %d in %.0fs",
            f.get("id"),
            _carried_status(f),
            attempt,
            error,
            attempt + 1,
            delay,
        )
        item = json.dumps({**f, "attempt": attempt + 1, "last_error": error}, ensure_ascii=False)
        await self._requeue(lane, eid, item, delay)

    async def _requeue(self, lane: int, eid: str, item: str, delay: float) -> None:
        """Off the outbox, into the retry set ``delay`` seconds ahead, in one transaction."""
        k = self.keys
        pipe = self.redis.pipeline(transaction=True)
        pipe.zadd(k.webhook_retry(lane), {item: int((time.time() + delay) * 1000)})
        pipe.xack(k.webhook_queue(lane), self.group, eid)
        pipe.xdel(k.webhook_queue(lane), eid)
        await pipe.execute()

    async def dead(self, lane: int, eid: str, f: dict[str, str], error: str) -> None:
        self.metrics.webhooks.labels("dead").inc()
        log.warning(
            "webhook for %s (%s) given up after attempt %s: %s",
            f.get("id"),
            _carried_status(f),
            f.get("attempt", "1"),
            error,
        )
        item = json.dumps(
            {**f, "last_error": error, "dead_at": datetime.now(UTC).isoformat(timespec="seconds")},
            ensure_ascii=False,
        )
        k = self.keys
        pipe = self.redis.pipeline(transaction=True)
        pipe.lpush(k.webhook_dead(lane), item)
        pipe.ltrim(k.webhook_dead(lane), 0, 99999)
        pipe.xack(k.webhook_queue(lane), self.group, eid)
        pipe.xdel(k.webhook_queue(lane), eid)
        await pipe.execute()


def _carried_status(f: dict[str, str]) -> str:
    """What a webhook carries (a notice's or a job's status, or an event's kind), for logs."""
    try:
        body = json.loads(f.get("body", ""))
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return "unreadable body"
    if isinstance(body.get("status"), str):
        return f"status {body['status']}"
    return str(body.get("kind", "event"))
