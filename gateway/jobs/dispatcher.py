"""The job dispatcher: rows of running jobs become queued notices, fairly and within limits.

Each pass gives every running job at most one chunk, so a small job is not starved by a big
one. A job moves only inside its send window, at its own rate, while the bulk queues hold
less than ``job_backlog`` entries (alerts and parking notices use their own queue and are
never behind these). One dispatcher at a time works a job (a lease in Redis).

A row is admitted in its recipient's lane: a chunk's rows are grouped by lane, and a slice of
one lane's rows is one Lua call there that also checks opt-out, the daily cap and duplicates,
and advances that lane's cursor, so a restart neither loses nor repeats a row. The job's own
cursor (the first row not yet known admitted) is moved after the chunk. Once it has passed
the last row, the dispatcher sums the lanes' ``done`` and ends the job in its own lane.
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
from gateway.store.jobs import JOB_RETENTION
from gateway.store.keys import Keys
from gateway.store.notices import now_iso
from gateway.store.outage import STORE_DOWN, Outage
from gateway.store.redis_conn import is_cluster

log = logging.getLogger(__name__)

CHUNK = 500
ADMIT_SLICE = 12  # rows per script call: about 0.3 ms of Redis time (see SMS_EVENTS_PER_CALL)
REMINDER_RETENTION = 7 * 86400
LEASE_MS = 5_000  # renewed by every dispatch step of the holder (at most 0.1 s apart)
# A job whose rows are all admitted has its lanes summed after 0.1 s, then less often while
# nothing changes (half as long again each time, up to 2 s): every dispatcher does it, lanes x 2
# reads each, and the last receipts may be hours away.
FINISH_CHECK_S = (0.1, 2.0)
HOLD_AFTER_FAILURE_S = 1.0  # a job whose admission failed in a lane waits before it retries


def reminder_notice_id(keys: Keys, job_id: str, row: int, lane: int) -> str:
    """Derived from the job and row: admitting a row twice cannot make two notices. It is
    in ``lane``, its recipient's."""
    digest = hashlib.blake2b(f"{job_id}:{row}".encode(), digest_size=8).hexdigest()
    return f"ntc_{job_id[4:12]}{keys.stamp_lane(digest, lane)}"


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
        # job -> (when its lanes are summed next, the wait after that, done when last summed)
        self._checks: dict[str, tuple[float, float, int]] = {}
        self._held: dict[str, float] = {}  # job -> until when its admission waits (a failure)
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
        for gone in (self._buckets.keys() | self._checks.keys() | self._held.keys()) - set(jobs):
            self._forget(gone)  # ended elsewhere
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

    def _forget(self, job_id: str) -> None:
        self._buckets.pop(job_id, None)
        self._checks.pop(job_id, None)
        self._held.pop(job_id, None)

    async def _release_leases(self) -> None:
        """A clean stop hands this dispatcher's jobs on at once, not after the lease runs out."""
        try:
            async with asyncio.timeout(1.0):
                for job_id in list(self._buckets):
                    await self.scripts.release_lease(job_id=job_id, holder=self.consumer)
        except Exception as exc:  # a stop must not fail on its courtesy to others
            log.warning("job leases not released (%r)", exc)

    def _queue(self, channel: str, lane: int) -> str:
        return self.queues.queue_in(channel, lane, Lane.BULK)

    async def _backlog(self, channel: str) -> int:
        pipe = self.redis.pipeline(transaction=False)
        for lane in self.keys.each_lane():
            pipe.xlen(self._queue(channel, lane))
        return sum(await pipe.execute())

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
            self._forget(job_id)
            return False
        cursor, total = int(job.get("cursor", 0)), int(job.get("total", 0))
        if cursor >= total:
            await self._maybe_finish(job_id, total)
            return False
        if time.monotonic() < self._held.get(job_id, 0.0) or not await self._lease(job_id):
            return False
        inside = is_quiet(datetime.now(UTC), self.settings.general.timezone, job["window"])
        wanted = "running" if inside else "waiting_window"
        if status != wanted:
            await self.redis.hset(self.keys.job(job_id), "status", wanted)
        if not inside:
            return False
        room = self.settings.jobs.job_backlog - await self._backlog(job["channel"])
        bucket = self._buckets.get(job_id)
        if bucket is None:
            rate = float(job["rate"])
            bucket = self._buckets[job_id] = Bucket(rate, min(rate, CHUNK), time.monotonic())
        n = bucket.take(min(room, CHUNK, total - cursor))
        if n <= 0:
            return False
        rows = await self.redis.lrange(self.keys.job_rows(job_id), cursor, cursor + n - 1)
        template = self.catalogue.get(job["template"])
        done = await self._admit_rows(job_id, job, template, cursor, rows)
        self.admitted += done
        return done > 0

    async def _maybe_finish(self, job_id: str, total: int) -> None:
        """Every row is admitted: the job ends once the lanes' ``done`` add up to its total
        (summed as ``FINISH_CHECK_S`` says until then)."""
        now = time.monotonic()
        first, longest = FINISH_CHECK_S
        due, wait, seen = self._checks.get(job_id, (now + first, first, -1))
        if now < due:
            self._checks[job_id] = (due, wait, seen)
            return
        (progress,) = await self.scripts.progress([job_id])
        if progress.done >= total:
            await self.scripts.finish(job_id=job_id, progress=progress, at=now_iso())
            self._forget(job_id)
            return
        wait = first if progress.done != seen else min(wait * 1.5, longest)
        self._checks[job_id] = (now + wait, wait, progress.done)

    async def _admit_rows(
        self,
        job_id: str,
        job: dict[str, Any],
        template: Template,
        first: int,
        rows: list[str],
    ) -> int:
        """Admit ``rows`` (from row ``first`` on), each in its recipient's lane, and move the
        job's cursor past those that landed; returns how many were admitted now."""
        jobs = self.settings.jobs
        channel = job["channel"]
        admission = Admission(
            job_id=job_id,
            at=now_iso(),
            day=datetime.now(UTC).strftime("%Y%m%d"),
            retention_s=REMINDER_RETENTION,
            job_retention_s=JOB_RETENTION,
            daily_cap=jobs.reminder_daily_cap,
            dedup_ttl_s=int(jobs.reminder_dedup_hours * 3600),
            check_opt_out=channel != "email",
            key_id=job["key_id"],
            key_name=job.get("key_name", ""),
            template=template.name,
            template_version=str(template.version),
            subject=template.subject,
            channel=channel,
        )
        by_lane: dict[int, list[AdmitRow]] = {}
        for i, row in enumerate(rows, first):
            to, params = split_stored(row)
            text = template.text.format_map(dict(zip(template.params, params, strict=True)))
            parts = count_parts(text) if channel == "sms" else 1
            lane = self.keys.recipient_lane(to)
            notice_id = reminder_notice_id(self.keys, job_id, i, lane)
            address = QueueEntry.address(channel, to)
            by_lane.setdefault(lane, []).append(AdmitRow(i, notice_id, to, address, text, parts))
        # One script call admits a slice of one lane's rows. Redis serves no one else while
        # it runs: short slices keep an accident alert's commands from waiting behind a whole
        # chunk. On one Redis the slices go in one pipeline: a round trip each cost more than
        # the admission itself in a busy worker, and Redis still serves other clients between
        # them (it reads a client's pipeline 16 KB at a time; a slice, with its rows' keys, is
        # 4-5 KB). A Redis Cluster client refuses scripts in a pipeline (redis-py): there each
        # lane's slices are sent one after another (each needs the lane cursor its
        # predecessor moved), the lanes side by side, so each shard works its own.
        slices = [
            (
                lane,
                lane_rows[start : start + ADMIT_SLICE],
                lane_rows[start - 1].row + 1 if start else -1,
            )
            for lane, lane_rows in by_lane.items()
            for start in range(0, len(lane_rows), ADMIT_SLICE)
        ]
        queues = {lane: self._queue(channel, lane) for lane in by_lane}

        def admit(lane: int, slice_rows: list[AdmitRow], prev: int, client: Any = None) -> Any:
            return self.scripts.admit_rows(
                admission=admission,
                lane=lane,
                prev=prev,
                rows=slice_rows,
                queue=queues[lane],
                client=client,
            )

        results: list[Any] = [None] * len(slices)
        if is_cluster(self.redis):

            async def one_lane(lane: int) -> None:
                for n, (in_lane, slice_rows, prev) in enumerate(slices):
                    if in_lane != lane:
                        continue
                    try:
                        results[n] = await admit(lane, slice_rows, prev)
                    except STORE_DOWN:
                        raise
                    except Exception as e:  # as the pipeline reports it: the slices after gap
                        results[n] = e

            try:
                async with asyncio.TaskGroup() as lanes:  # a lane that fails stops the others
                    for lane in by_lane:
                        lanes.create_task(one_lane(lane))
            except* STORE_DOWN as group:
                raise group.exceptions[0] from None
        else:
            pipe = self.redis.pipeline(transaction=False)
            for lane, slice_rows, prev in slices:
                await admit(lane, slice_rows, prev, pipe)  # queued
            results = await pipe.execute(raise_on_error=False)
        statuses = [r if isinstance(r, Exception) else admit_statuses(r) for r in results]
        failed = [r for r in statuses if isinstance(r, Exception)]
        if failed:  # the slices after a failed one answered 'gap'; the cursor says where to go on
            self._held[job_id] = time.monotonic() + HOLD_AFTER_FAILURE_S
            log.error(
                "reminder job %s: %d of %d admission calls failed: %r",
                job_id,
                len(failed),
                len(results),
                failed[0],
            )
        # The job's cursor goes to the first row of the first slice that did not land (those
        # after it, in other lanes, are 'seen' when read again).
        landed = first + len(rows)
        for (_, slice_rows, _), got in zip(slices, statuses, strict=True):
            if isinstance(got, Exception) or AdmitStatus.GAP in got:
                landed = min(landed, slice_rows[0].row)
        if landed > first:
            await self.scripts.advance(job_id=job_id, cursor=landed)
        return sum(  # rows admitted now ('seen' ones were before: read again after a failure)
            1
            for got in statuses
            if not isinstance(got, Exception)
            for s in got
            if s not in (AdmitStatus.GAP, AdmitStatus.SEEN)
        )
