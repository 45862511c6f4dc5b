"""The job dispatcher: rows of running jobs become queued notices, fairly and within limits.

Each pass gives every running job at most one chunk, so a small job is not starved by a big
one. A job moves only inside its send window, at its own rate, while the bulk queue holds
less than ``job_backlog`` entries (alerts and parking notices use their own queue and are
never behind these). One dispatcher at a time works a job (a lease in Redis); admitting a
slice of rows is one Lua call that also checks opt-out, the daily cap and duplicates, and
advances the job's cursor, so a restart neither loses nor repeats a row.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from gateway.channels.queues import ChannelQueues
from gateway.channels.worker import Lane
from gateway.core.quiet_hours import is_quiet
from gateway.core.records import QueueEntry
from gateway.core.templates import Catalogue, Template
from gateway.jobs.rows import split_stored
from gateway.settings import Settings
from gateway.sms.encoding import count_parts
from gateway.store.job_scripts import Admission, AdmitRow, AdmitStatus, JobScripts, admit_statuses
from gateway.store.keys import Keys
from gateway.store.notices import now_iso
from gateway.store.outage import STORE_DOWN, Outage
from gateway.store.redis_conn import is_cluster

log = logging.getLogger(__name__)

CHUNK = 500
ADMIT_SLICE = 12  # rows per script call: about 0.3 ms of Redis time (see SMS_EVENTS_PER_CALL)
REMINDER_RETENTION = 7 * 86400
LEASE_MS = 5_000  # renewed by every dispatch step of the holder (at most 0.1 s apart)


def reminder_notice_id(keys: Keys, job_id: str, row: int) -> str:
    """Derived from the job and row: admitting a row twice cannot make two notices. It is
    kept in the lane of the job's rows."""
    digest = hashlib.blake2b(f"{job_id}:{row}".encode(), digest_size=8).hexdigest()
    return f"ntc_{job_id[4:12]}{keys.stamp_lane(digest, keys.job_lane(job_id))}"


@dataclass(slots=True)
class Bucket:
    rate: float
    tokens: float
    at: float

    def take(self, want: int) -> int:
        now = time.monotonic()
        self.tokens = min(self.tokens + (now - self.at) * self.rate, max(self.rate, CHUNK))
        self.at = now
        n = min(want, int(self.tokens))
        self.tokens -= n
        return n


class JobDispatcher:
    def __init__(
        self, redis: aioredis.Redis, keys: Keys, settings: Settings, consumer: str
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings
        self.consumer = consumer
        self.catalogue = Catalogue.load()
        self.scripts = JobScripts(redis, keys)
        self.queues = ChannelQueues(keys)
        self._buckets: dict[str, Bucket] = {}
        self._closing = False
        self.admitted = 0

    def close(self) -> None:
        self._closing = True

    async def run(self) -> None:
        outage = Outage("job dispatcher")
        try:
            while not self._closing:
                try:
                    moved = await self._round()
                    outage.ok()
                except STORE_DOWN as exc:
                    await outage.pause(exc)
                    continue
                await asyncio.sleep(0 if moved else 0.1)
        finally:
            await asyncio.shield(self._release_leases())

    async def _round(self) -> bool:
        jobs = [
            job_id
            for lane in self.keys.each_lane()
            for job_id in await self.redis.zrange(self.keys.jobs_active(lane), 0, -1)
        ]
        moved = False
        for job_id in jobs:
            if self._closing:
                break
            try:
                moved = await self._step(job_id) or moved
            except STORE_DOWN:
                raise
            except Exception:
                log.exception("reminder job %s: dispatch step failed", job_id)
        return moved

    async def _release_leases(self) -> None:
        """A clean stop hands this dispatcher's jobs on at once, not after the lease runs out."""
        try:
            async with asyncio.timeout(1.0):
                for job_id in list(self._buckets):
                    await self.scripts.release_lease(job_id=job_id, holder=self.consumer)
        except Exception as exc:  # a stop must not fail on its courtesy to others
            log.warning("job leases not released (%r)", exc)

    def _queue(self, channel: str, job_id: str) -> str:
        return self.queues.queue_in(channel, self.keys.job_lane(job_id), Lane.BULK)

    async def _lease(self, job_id: str) -> bool:
        key = self.keys.job_lease(job_id)
        if await self.redis.set(key, self.consumer, nx=True, px=LEASE_MS):
            return True
        if await self.redis.get(key) == self.consumer:
            await self.redis.pexpire(key, LEASE_MS)
            return True
        return False

    async def _step(self, job_id: str) -> bool:
        job = await self.redis.hgetall(self.keys.job(job_id))
        status = job.get("status")
        if status not in ("running", "waiting_window"):
            await self.redis.zrem(self.keys.jobs_active(self.keys.job_lane(job_id)), job_id)
            self._buckets.pop(job_id, None)
            return False
        cursor, total = int(job.get("cursor", 0)), int(job.get("total", 0))
        if cursor >= total or not await self._lease(job_id):
            return False
        inside = is_quiet(datetime.now(UTC), self.settings.general.timezone, job["window"])
        wanted = "running" if inside else "waiting_window"
        if status != wanted:
            await self.redis.hset(self.keys.job(job_id), "status", wanted)
        if not inside:
            return False
        queue = self._queue(job["channel"], job_id)
        room = self.settings.jobs.job_backlog - await self.redis.xlen(queue)
        bucket = self._buckets.get(job_id)
        if bucket is None:
            rate = float(job["rate"])
            bucket = self._buckets[job_id] = Bucket(rate, min(rate, CHUNK), time.monotonic())
        n = bucket.take(min(room, CHUNK, total - cursor))
        if n <= 0:
            return False
        rows = await self.redis.lrange(self.keys.job_rows(job_id), cursor, cursor + n - 1)
        template = self.catalogue.get(job["template"])
        done = await self._admit_rows(job_id, job, template, queue, cursor, rows)
        self.admitted += done
        return done > 0

    async def _admit_rows(
        self,
        job_id: str,
        job: dict[str, Any],
        template: Template,
        queue: str,
        first: int,
        rows: list[str],
    ) -> int:
        """Admit ``rows`` (from row ``first`` on); returns how many the scripts handled."""
        jobs = self.settings.jobs
        channel = job["channel"]
        admission = Admission(
            job_id=job_id,
            at=now_iso(),
            day=datetime.now(UTC).strftime("%Y%m%d"),
            retention_s=REMINDER_RETENTION,
            daily_cap=jobs.reminder_daily_cap,
            dedup_ttl_s=int(jobs.reminder_dedup_hours * 3600),
            check_opt_out=channel != "email",
            key_id=job["key_id"],
            key_name=job.get("key_name", ""),
            template=template.name,
            template_version=str(template.version),
            subject=template.subject,
            channel=channel,
            queue=queue,
        )
        # One script call admits a slice of rows. Redis serves no one else while it runs:
        # short slices keep an accident alert's commands from waiting behind a whole chunk.
        # The slices go in one pipeline: a round trip each cost more than the admission
        # itself in a busy worker, and Redis still serves other clients between them (it
        # reads a client's pipeline 16 KB at a time; a slice, with its rows' keys, is 4-5 KB).
        # A Redis Cluster client refuses scripts in a pipeline (redis-py): there the slices
        # are sent one after another (each needs the cursor its predecessor moved).
        pipe = None if is_cluster(self.redis) else self.redis.pipeline(transaction=False)
        results: list[Any] = []
        for start in range(0, len(rows), ADMIT_SLICE):
            slice_rows = []
            for i, row in enumerate(rows[start : start + ADMIT_SLICE], first + start):
                to, params = split_stored(row)
                text = template.text.format_map(dict(zip(template.params, params, strict=True)))
                parts = count_parts(text) if channel == "sms" else 1
                address = QueueEntry.address(channel, to)
                slice_rows.append(
                    AdmitRow(reminder_notice_id(self.keys, job_id, i), to, address, text, parts)
                )
            call = self.scripts.admit_rows(
                admission=admission, first_row=first + start, rows=slice_rows, client=pipe
            )
            if pipe is not None:
                await call  # queued
                continue
            try:
                results.append(await call)
            except STORE_DOWN:
                raise
            except Exception as e:  # as the pipeline reports it: the slices after it gap
                results.append(e)
        if pipe is not None:
            results = await pipe.execute(raise_on_error=False)
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:  # the slices after a failed one answered 'gap'; the cursor says where to go on
            log.error(
                "reminder job %s: %d of %d admission calls failed: %r",
                job_id,
                len(failed),
                len(results),
                failed[0],
            )
        return sum(
            1
            for r in results
            if not isinstance(r, Exception)
            for s in admit_statuses(r)
            if s is not AdmitStatus.GAP
        )
