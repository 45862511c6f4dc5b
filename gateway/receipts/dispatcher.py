"""The webhook outbox: signed POSTs to callers, retried with back-off, then dead-lettered.

Status changes land in a Redis Stream (written by the same Lua call that changes the status).
A failed delivery moves to a retry sorted set scored by its next attempt time; a mover puts due
entries back on the stream. Past the give-up horizon an entry goes to the dead-letter list.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import ssl
import time
from collections.abc import Container
from dataclasses import dataclass

import aiohttp
import redis.asyncio as aioredis
from aiohttp.abc import AbstractResolver
from yarl import URL

from gateway.metrics import Metrics
from gateway.receipts.callbacks import normal_host
from gateway.receipts.host_gate import Admit, HostGate, Result, host_of
from gateway.receipts.pinning import AddressRefused, Pinned, pin
from gateway.receipts.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from gateway.receipts.undelivered import Undelivered
from gateway.settings import WebhookSettings, WorkerSettings
from gateway.store.apikeys import ApiKey, ApiKeyStore
from gateway.store.keys import Keys
from gateway.store.outage import STORE_DOWN, Outage, once_reachable
from gateway.store.scripts import Script
from gateway.store.streams import Entry, StreamGroup

log = logging.getLogger(__name__)

GROUP = "webhook-senders"
# A webhook whose host's slots are taken waits here (taking no shared slot), this many per
# host slot at most; past that it goes back to the outbox a second later (no attempt).
WAITING_PER_SLOT = 16
# Errors that mean the host did not answer in time or could not be reached.
STALLED = (aiohttp.ClientConnectionError, TimeoutError)


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
        self.undelivered = Undelivered(redis, keys, settings, metrics, GROUP)
        # The outbox of each lane.
        self.groups = [
            StreamGroup(
                redis, keys, keys.webhook_queue(lane), GROUP, consumer, worker.consumer_dead_after
            )
            for lane in keys.each_lane()
        ]
        self._due = Script(redis, "webhook_due", keys)
        self._keys: dict[str, tuple[float, ApiKey | None]] = {}
        # Per key (as cached above): its opened signing secret, and the checked address of
        # each callback URL whose host is an address (a name is resolved and checked each
        # time). Both cost more than the signing itself when every webhook did them again.
        self._secrets: dict[tuple[str, str], str] = {}
        self._pinned: dict[tuple[str, tuple[str, ...]], Pinned] = {}
        # A revoked key, a rotated secret, a changed allow-list: forgotten at once.
        api_keys.listeners.append(lambda _hash: self._forget_keys())
        self._slots = asyncio.Semaphore(settings.webhook_concurrency)
        self.hosts = HostGate(
            settings.webhook_host_concurrency,
            settings.webhook_breaker_failures,
            settings.webhook_breaker_seconds,
            first_park=settings.webhook_first_retry,
        )
        # Resolves callback hosts; each address is checked before it is connected to.
        self.resolver: AbstractResolver = aiohttp.ThreadedResolver()
        # Certificates of https callbacks are checked against this (None: the system's CAs).
        self.ssl_context: ssl.SSLContext | None = None
        self._session: aiohttp.ClientSession | None = None
        self._closing = False
        self._in_hand: set[tuple[int, str]] = set()  # being delivered now, or waiting here
        self._waiting: dict[str, collections.deque[Outgoing]] = {}  # per host: for a slot

    def close(self) -> None:
        """Ask the loops to end (cancellation stays the backstop)."""
        self._closing = True
        for group in self.groups:
            group.close()

    async def _ensure(self) -> None:
        for group in self.groups:
            await group.ensure()

    async def run(self) -> None:
        await once_reachable("webhook dispatcher", self._ensure)
        timeout = aiohttp.ClientTimeout(total=self.settings.webhook_timeout)
        connector = aiohttp.TCPConnector(
            limit=self.settings.webhook_concurrency,
            limit_per_host=self.settings.webhook_host_concurrency,
        )
        async with aiohttp.ClientSession(
            timeout=timeout, connector=connector, auto_decompress=False
        ) as session:
            self._session = session
            async with asyncio.TaskGroup() as tg:
                for lane, group in enumerate(self.groups):
                    tg.create_task(self._deliver_loop(tg, lane), name=f"webhook-deliver-{lane}")
                    tg.create_task(group.run_acker(), name=f"webhook-acker-{lane}")
                tg.create_task(self._housekeeping(tg), name="webhook-housekeeping")
                tg.create_task(self.api_keys.follow_changes(), name="webhook-key-changes")

    async def _deliver_loop(self, tg: asyncio.TaskGroup, lane: int) -> None:
        """The webhooks of one lane's outbox."""
        group = self.groups[lane]
        outage = Outage("webhook dispatcher")
        resume = True  # at start, and after an outage: what was read and not acked
        while not self._closing:
            try:
                entries = await group.own_pending() if resume else []
                resume = False
                entries += await group.read(self.worker.stream_batch, 1000)
                await self._spawn(tg, lane, entries)
                outage.ok()
            except STORE_DOWN as exc:
                resume = True
                await outage.pause(exc)

    async def _spawn(self, tg: asyncio.TaskGroup, lane: int, entries: list[Entry]) -> None:
        """Deliver each of ``entries`` not in hand yet, in a slot of its own, waiting here for
        the slots (the read loop reads no more than the slots take)."""
        await self._feed(tg, self._take(lane, entries))

    def _take(self, lane: int, entries: list[Entry]) -> list[Outgoing]:
        """``entries`` not in hand yet, now in hand. The whole batch is in hand before the
        first wait for a slot: with every slot busy (slow hosts), the sweep must not take the
        rest of it for orphans and deliver them a second time."""
        batch = [Outgoing(lane, eid, fields) for eid, fields in entries]
        todo = list({o.key: o for o in batch if o.key not in self._in_hand}.values())
        self._in_hand.update(o.key for o in todo)
        return todo

    async def _feed(self, tg: asyncio.TaskGroup, todo: list[Outgoing]) -> None:
        for i, out in enumerate(todo):
            try:
                await self._slots.acquire()
            except BaseException:
                self._in_hand.difference_update(o.key for o in todo[i:])
                raise
            tg.create_task(self._deliver(out))

    async def _housekeeping(self, tg: asyncio.TaskGroup) -> None:
        outage = Outage("webhook housekeeping")
        while not self._closing:
            await asyncio.sleep(min(1.0, self.worker.heartbeat_seconds))
            try:
                await self.move_due(now_ms=int(time.time() * 1000))
                for lane, group in enumerate(self.groups):
                    await group.heartbeat()
                    in_hand = _InLane(lane, self._in_hand)
                    found = self._take(lane, await group.reclaim_dead())
                    found += self._take(lane, await group.orphans(in_hand))
                    # They wait for slots in a task of their own: with every slot busy (slow
                    # hosts) this loop must go on, or its heartbeat lapses and the other
                    # dispatchers take this one's webhooks as a dead one's and post them too.
                    if found:
                        tg.create_task(self._feed(tg, found), name="webhook-reclaimed")
                outage.ok()
            except STORE_DOWN as exc:
                await outage.pause(exc)

    async def move_due(self, *, now_ms: int, max_moved: int = 1000) -> int:
        """Webhooks whose retry time has come, back on their lane's outbox; how many."""
        k, moved = self.keys, 0
        for lane in k.each_lane():
            res = await self._due(
                keys={"retry": k.webhook_retry(lane), "webhooks": k.webhook_queue(lane)},
                args={"now_ms": now_ms, "max": max_moved},
            )
            moved += int(res)
        return moved

    async def _key(self, key_id: str) -> ApiKey | None:
        """The live key a webhook belongs to (its secret, its allow-list), cached briefly."""
        hit = self._keys.get(key_id)
        now = time.monotonic()
        if hit and hit[0] > now:
            return hit[1]
        key = await self.api_keys.by_id(key_id)
        key = key if key and not key.revoked else None
        self._keys[key_id] = (now + 30, key)
        return key

    def _forget_keys(self) -> None:
        self._keys.clear()
        self._secrets.clear()
        self._pinned.clear()

    def _secret(self, key: ApiKey) -> str:
        cached = self._secrets.get((key.id, key.callback_secret))
        if cached is None:
            if len(self._secrets) > 10000:
                self._secrets.clear()
            cached = self._secrets[(key.id, key.callback_secret)] = self.api_keys.signing_secret(
                key
            )
        return cached

    async def _pin(self, url: str, key: ApiKey) -> Pinned:
        cached = self._pinned.get((url, key.callback_hosts))
        if cached is not None:
            return cached
        target = await pin(url, key.callback_hosts, self.resolver)
        if target.address == normal_host(URL(url).raw_host or ""):  # no name was resolved
            if len(self._pinned) > 10000:
                self._pinned.clear()
            self._pinned[(url, key.callback_hosts)] = target
        return target

    async def _deliver(self, entry: Outgoing) -> None:
        """Deliver ``entry``, then what waits for its host, in one shared slot, until none is
        left or one must wait again (then the host's deliveries in flight drain it)."""
        host = host_of(entry.fields.get("url", ""))
        try:
            if await self._deliver_one(entry):
                return
            while queue := self._waiting.get(host):
                waiting = queue.popleft()
                if not queue:
                    del self._waiting[host]
                if await self._deliver_one(waiting):
                    return
        finally:
            self._slots.release()

    def _wait_for_slot(self, entry: Outgoing, host: str) -> bool:
        """Hold a webhook for one of its host's deliveries to end; False if its share waits."""
        queue = self._waiting.setdefault(host, collections.deque())
        if len(queue) >= WAITING_PER_SLOT * self.settings.webhook_host_concurrency:
            return False
        queue.append(entry)
        return True

    async def _deliver_one(self, entry: Outgoing) -> bool:
        """One delivery attempt; True when it waits here for a slot of its host instead."""
        lane, eid, f = entry.lane, entry.eid, entry.fields
        waiting = False
        try:
            key = await self._key(f.get("key_id", ""))
            if key is None:
                await self.undelivered.dead(lane, eid, f, "api key revoked or unknown")
                return False
            host = host_of(f["url"])
            admit = self.hosts.admit(host)
            if admit is Admit.BUSY:
                waiting = self._wait_for_slot(entry, host)
                if waiting:  # still in hand: a delivery to its host takes it
                    self.metrics.webhooks.labels("waiting").inc()
                else:
                    await self.undelivered.put_back(lane, eid, f)
                return waiting
            if admit is Admit.PARKED:
                wait_s = self.hosts.wait_of(host)
                await self.undelivered.wait_for_probe(lane, eid, f, host, wait_s)
                return False
            result, error = Result.OTHER, ""
            try:
                result, error = await self._post(entry, key)
            except AddressRefused as exc:
                self.metrics.webhooks.labels("refused").inc()
                await self.undelivered.dead(lane, eid, f, f"refused: {exc}")
                return False
            finally:
                self.hosts.release(host, result)
            if error:
                await self.undelivered.retry_later(lane, eid, f, error)
        except STORE_DOWN as exc:
            # Still pending on this consumer, out of hand: its sweep (``orphans``) takes it.
            log.warning("webhook entry %s waits for Redis (%r)", eid, exc)
        except Exception as exc:
            # A malformed entry: kept with the dead letters (one bad entry must not stop the
            # dispatcher, nor come back every sweep).
            log.exception("webhook entry %s could not be handled", eid)
            with contextlib.suppress(*STORE_DOWN):
                await self.undelivered.dead(lane, eid, f, f"could not be handled: {exc!r}")
        finally:
            if not waiting:
                self._in_hand.discard(entry.key)
        return waiting

    async def _post(self, entry: Outgoing, key: ApiKey) -> tuple[Result, str]:
        """One signed POST to the checked address; (how the host did, error or "")."""
        f = entry.fields
        try:
            target = await self._pin(f["url"], key)
        except OSError as exc:  # the name does not resolve (now): retried later
            return Result.OTHER, f"lookup failed: {type(exc).__name__}: {exc}"
        body = f["body"].encode()
        ts = str(int(time.time()))
        headers = {
            "Host": target.host_header,
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: ts,
            SIGNATURE_HEADER: sign(self._secret(key), ts, body),
            "User-Agent": "notice-gateway-webhooks/1",
        }
        assert self._session is not None
        try:
            async with self._session.post(
                target.url,
                data=body,
                headers=headers,
                allow_redirects=False,
                server_hostname=target.server_hostname,
                ssl=self.ssl_context or True,
            ) as resp:
                await resp.content.readany()
                if 200 <= resp.status < 300:
                    self.metrics.webhooks.labels("delivered").inc()
                    self.groups[entry.lane].ack_later(entry.eid)
                    return Result.OK, ""
                return Result.OK, f"HTTP {resp.status}"
        except STALLED as exc:
            return Result.STALLED, _describe(exc)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return Result.OTHER, _describe(exc)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A webhook read from one lane's outbox (entry ids are unique in their stream only)."""

    lane: int
    eid: str
    fields: dict[str, str]

    @property
    def key(self) -> tuple[int, str]:
        return (self.lane, self.eid)


@dataclass(frozen=True, slots=True)
class _InLane:
    """The entry ids of ``lane``'s outbox in hand, as ``StreamGroup.orphans`` asks."""

    lane: int
    in_hand: Container[tuple[int, str]]

    def __contains__(self, eid: object) -> bool:
        return (self.lane, eid) in self.in_hand


def _describe(exc: BaseException) -> str:
    return type(exc).__name__ + (f": {exc}" if str(exc) else "")
