"""The webhook outbox: signed POSTs to callers, retried with back-off, then dead-lettered.

Status changes land in a Redis Stream (written by the same Lua call that changes the status).
A failed delivery moves to a retry sorted set scored by its next attempt time; a mover puts due
entries back on the stream. Past the give-up horizon an entry goes to the dead-letter list.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime

import aiohttp
import redis.asyncio as aioredis

from gateway.metrics import Metrics
from gateway.receipts.backoff import next_delay
from gateway.receipts.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from gateway.settings import WebhookSettings, WorkerSettings
from gateway.store.apikeys import ApiKeyStore
from gateway.store.keys import Keys
from gateway.store.outage import STORE_DOWN, Outage
from gateway.store.scripts import Script
from gateway.store.streams import Entry, StreamGroup

log = logging.getLogger(__name__)

GROUP = "webhook-senders"


def _parse_iso(at: str) -> float:
    try:
        return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time()


class WebhookDispatcher:
    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        api_keys: ApiKeyStore,
        settings: WebhookSettings,
        worker: WorkerSettings,
        metrics: Metrics,
        consumer: str,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.api_keys = api_keys
        self.settings = settings
        self.worker = worker
        self.metrics = metrics
        self.group = StreamGroup(
            redis, keys, keys.webhook_queue, GROUP, consumer, worker.consumer_dead_after
        )
        self._due = Script(redis, "webhook_due", keys)
        self._secrets: dict[str, tuple[float, str | None]] = {}
        self._slots = asyncio.Semaphore(settings.webhook_concurrency)
        self._session: aiohttp.ClientSession | None = None
        self._closing = False
        self._in_hand: set[str] = set()  # entry ids being delivered now

    def close(self) -> None:
        """Ask the loops to end (cancellation stays the backstop)."""
        self._closing = True
        self.group.close()

    async def run(self) -> None:
        await self.group.ensure()
        timeout = aiohttp.ClientTimeout(total=self.settings.webhook_timeout)
        connector = aiohttp.TCPConnector(limit=self.settings.webhook_concurrency, limit_per_host=0)
        async with aiohttp.ClientSession(
            timeout=timeout, connector=connector, auto_decompress=False
        ) as session:
            self._session = session
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._deliver_loop(tg), name="webhook-deliver")
                tg.create_task(self._housekeeping(tg), name="webhook-housekeeping")
                tg.create_task(self.group.run_acker(), name="webhook-acker")

    async def _deliver_loop(self, tg: asyncio.TaskGroup) -> None:
        outage = Outage("webhook dispatcher")
        resume = True  # at start, and after an outage: what was read and not acked
        while not self._closing:
            try:
                entries = await self.group.own_pending() if resume else []
                resume = False
                for entry in entries + await self.group.read(self.worker.stream_batch, 1000):
                    if entry[0] not in self._in_hand:
                        await self._spawn(tg, entry)
                outage.ok()
            except STORE_DOWN as exc:
                resume = True
                await outage.pause(exc)

    async def _spawn(self, tg: asyncio.TaskGroup, entry: Entry) -> None:
        await self._slots.acquire()
        self._in_hand.add(entry[0])
        tg.create_task(self._deliver(entry))

    async def _housekeeping(self, tg: asyncio.TaskGroup) -> None:
        outage = Outage("webhook housekeeping")
        while not self._closing:
            await asyncio.sleep(min(1.0, self.worker.heartbeat_seconds))
            try:
                await self.group.heartbeat()
                await self.move_due(now_ms=int(time.time() * 1000))
                for entry in await self.group.reclaim_dead():
                    await self._spawn(tg, entry)
                outage.ok()
            except STORE_DOWN as exc:
                await outage.pause(exc)

    async def move_due(self, *, now_ms: int, max_moved: int = 1000) -> int:
        """Webhooks whose retry time has come, back on the outbox stream; how many."""
        res = await self._due(
            keys={"retry": self.keys.webhook_retry, "webhooks": self.keys.webhook_queue},
            args={"now_ms": now_ms, "max": max_moved},
        )
        return int(res)

    async def _secret(self, key_id: str) -> str | None:
        hit = self._secrets.get(key_id)
        now = time.monotonic()
        if hit and hit[0] > now:
            return hit[1]
        key = await self.api_keys.by_id(key_id)
        secret = key.callback_secret if key and not key.revoked else None
        self._secrets[key_id] = (now + 30, secret)
        return secret

    async def _deliver(self, entry: Entry) -> None:
        eid, f = entry
        try:
            secret = await self._secret(f.get("key_id", ""))
            if secret is None:
                await self._dead(eid, f, "api key revoked or unknown")
                return
            body = f["body"].encode()
            ts = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: ts,
                SIGNATURE_HEADER: sign(secret, ts, body),
                "User-Agent": "notice-gateway-webhooks/1",
            }
            error = ""
            assert self._session is not None
            try:
                async with self._session.post(
                    f["url"], data=body, headers=headers, allow_redirects=False
                ) as resp:
                    await resp.content.readany()
                    if 200 <= resp.status < 300:
                        self.metrics.webhooks.labels("delivered").inc()
                        self.group.ack_later(eid)
                        return
                    error = f"HTTP {resp.status}"
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                error = type(exc).__name__ + (f": {exc}" if str(exc) else "")
            await self._retry_later(eid, f, error)
        except STORE_DOWN as exc:
            # Still pending on this consumer: read again when the loop resumes.
            log.warning("webhook entry %s waits for Redis (%r)", eid, exc)
        except Exception:
            # A malformed entry: it stays pending; one bad entry must not stop the dispatcher.
            log.exception("webhook entry %s could not be handled", eid)
        finally:
            self._in_hand.discard(eid)
            self._slots.release()

    async def _retry_later(self, eid: str, f: dict[str, str], error: str) -> None:
        attempt = int(f.get("attempt", "1"))
        first = _parse_iso(f.get("first_at", ""))
        if time.time() - first > self.settings.webhook_give_up_after:
            await self._dead(eid, f, error)
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
        pipe = self.redis.pipeline(transaction=True)
        pipe.zadd(self.keys.webhook_retry, {item: int((time.time() + delay) * 1000)})
        pipe.xack(self.keys.webhook_queue, GROUP, eid)
        pipe.xdel(self.keys.webhook_queue, eid)
        await pipe.execute()

    async def _dead(self, eid: str, f: dict[str, str], error: str) -> None:
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
        pipe = self.redis.pipeline(transaction=True)
        pipe.lpush(self.keys.webhook_dead, item)
        pipe.ltrim(self.keys.webhook_dead, 0, 99999)
        pipe.xack(self.keys.webhook_queue, GROUP, eid)
        pipe.xdel(self.keys.webhook_queue, eid)
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
