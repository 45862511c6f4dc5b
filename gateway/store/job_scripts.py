"""Typed wrappers of the reminder-job scripts: admitting rows, ending and cancelling a job,
and reading a job's progress, which is kept in every lane its rows were admitted in."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis.asyncio as aioredis

from gateway.store.batch import pack_events
from gateway.store.keys import Keys
from gateway.store.outage import STORE_DOWN
from gateway.store.scripts import Script

log = logging.getLogger(__name__)

CANCELLED_KEPT_S = 86400  # senders drop queued entries of cancelled jobs; no backlog lasts longer


class AdmitStatus(StrEnum):
    SEEN = "seen"  # admitted by an earlier call (a dispatcher restarted)
    QUEUED = "queued"
    OPTED_OUT = "opted_out"
    CAPPED = "capped"
    DUPLICATE = "duplicate"
    GAP = "gap"  # the cursor has not reached this slice: nothing was admitted


@dataclass(frozen=True, slots=True)
class AdmitRow:
    row: int  # its place in the job's rows
    notice_id: str
    to: str  # national number or email address, as stored
    address: str  # what the queue entry carries (``QueueEntry.address``)
    text: str
    parts: int


@dataclass(frozen=True, slots=True)
class Admission:
    """What every row of a slice shares."""

    job_id: str
    at: str
    day: str  # the daily cap's day, YYYYMMDD
    retention_s: int  # the notices'
    job_retention_s: int  # a lane's part of the job's progress
    daily_cap: int
    dedup_ttl_s: int
    check_opt_out: bool
    key_id: str
    key_name: str
    template: str
    template_version: str
    subject: str
    channel: str


@dataclass(frozen=True, slots=True)
class Progress:
    """A job's rows with an outcome, and its rows per status, summed over the lanes."""

    done: int
    counts: dict[str, int]


class JobScripts:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._admit = Script(redis, "job_admit", keys)
        self._open = Script(redis, "job_open", keys)
        self._cancel = Script(redis, "job_cancel", keys)
        self._finish = Script(redis, "job_finish", keys)
        self._cursor = Script(redis, "job_cursor", keys)
        self._release = Script(redis, "release_lease", keys)

    async def admit_rows(
        self,
        *,
        admission: Admission,
        lane: int,
        prev: int,
        rows: Sequence[AdmitRow],
        queue: str,
        client: Any = None,
    ) -> list[AdmitStatus] | Any:
        """Admit ``rows``, all of them in ``lane`` (their recipients'), in row order, into
        ``queue`` (that lane's). ``prev``: the row after the previous slice of this lane sent
        in the same pipeline, or -1. With a pipeline as ``client`` the call is only queued
        (this returns the pipeline); ``admit_statuses`` reads its result."""
        k, a = self.keys, admission
        fields: list[Any] = []
        row_keys: list[str] = []
        for r in rows:
            fields += (r.row, r.notice_id, r.to, r.address, r.text, r.parts)
            row_keys += (
                k.notice(r.notice_id),
                k.history(r.notice_id),
                k.sent_today(r.to, a.day),
                k.recent_reminder(a.template, r.to),
            )
        res = await self._admit(
            keys={
                "part": k.job(a.job_id, lane),
                "part_counts": k.job_counts(a.job_id, lane),
                "queue": queue,
                "opt_outs": k.opt_outs(lane),
                "audit": k.audit_log(lane),
            },
            args={
                "job_id": a.job_id,
                "prev": prev,
                "at": a.at,
                "retention_s": a.retention_s,
                "job_retention_s": a.job_retention_s,
                "daily_cap": a.daily_cap,
                "dedup_ttl_s": a.dedup_ttl_s,
                "check_opt_out": "1" if a.check_opt_out else "0",
                "key_id": a.key_id,
                "key_name": a.key_name,
                "template": a.template,
                "template_version": a.template_version,
                "subject": a.subject,
                "channel": a.channel,
                "rows": pack_events(fields),
            },
            more_keys=row_keys,
            client=client,
        )
        return res if client is not None else admit_statuses(res)

    async def progress(self, job_ids: Sequence[str]) -> list[Progress]:
        """Each job's progress, read from every lane in one pipeline (not atomic over the
        lanes: a lane read later may have moved on)."""
        k = self.keys
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            for lane in k.each_lane():
                pipe.hget(k.job(job_id, lane), "done")
                pipe.hgetall(k.job_counts(job_id, lane))
        got = await pipe.execute() if job_ids else []
        out = []
        per_job = 2 * k.lanes
        for j in range(len(job_ids)):
            done, counts = 0, dict[str, int]()
            for i in range(j * per_job, (j + 1) * per_job, 2):
                done += int(got[i] or 0)
                for status, n in got[i + 1].items():
                    counts[status] = counts.get(status, 0) + int(n)
            out.append(Progress(done, {s: n for s, n in counts.items() if n}))
        return out

    async def advance(self, *, job_id: str, cursor: int) -> int:
        """Move the job's cursor forward to ``cursor``; the cursor after (-1: no such job)."""
        return int(await self._cursor(keys={"job": self.keys.job(job_id)}, args={"cursor": cursor}))

    async def finish(self, *, job_id: str, progress: Progress, at: str) -> str:
        """End a running job whose rows all have an outcome (``progress.done`` reached its
        total), once, with its callback. The job's status after the call, or ``unknown``."""
        k = self.keys
        res = await self._finish(
            keys={
                "job": k.job(job_id),
                "jobs_active": k.jobs_active(k.job_lane(job_id)),
                "webhooks": k.webhook_queue(k.job_lane(job_id)),
            },
            args={
                "job_id": job_id,
                "done": progress.done,
                "counts_json": json.dumps(progress.counts),
                "at": at,
            },
        )
        return str(res)

    async def open(
        self, *, job_id: str, total: int, bad_rows: int, at: str, retention_s: int
    ) -> str:
        """Intake done: ``running`` (or ``finished`` with no good row); a job cancelled
        meanwhile keeps its status. The status after the call."""
        k = self.keys
        res = await self._open(
            keys={
                "job": k.job(job_id),
                "job_rows": k.job_rows(job_id),
                "job_bad_rows": k.job_bad_rows(job_id),
                "jobs_active": k.jobs_active(k.job_lane(job_id)),
            },
            args={
                "job_id": job_id,
                "total": total,
                "bad_rows": bad_rows,
                "at": at,
                "now_s": time.time(),
                "retention_s": retention_s,
            },
        )
        return str(res)

    async def cancel(self, *, job_id: str, at: str) -> str:
        """Cancel a running, waiting or receiving job; the status it had, or ``unknown``. Its
        callback gets the counts read just before."""
        k = self.keys
        lane = k.job_lane(job_id)
        try:
            (progress,) = await self.progress([job_id])
        except STORE_DOWN as exc:  # a shard holding only rows is away: cancel all the same
            log.warning("job %s cancelled without its counts (%r)", job_id, exc)
            progress = Progress(0, {})
        res = await self._cancel(
            keys={
                "job": k.job(job_id),
                "jobs_active": k.jobs_active(lane),
                "jobs_cancelled": k.jobs_cancelled(lane),
                "webhooks": k.webhook_queue(lane),
            },
            args={
                "job_id": job_id,
                "at": at,
                "now_s": time.time(),
                "keep_s": CANCELLED_KEPT_S,
                "counts_json": json.dumps(progress.counts),
            },
        )
        return str(res)

    async def release_lease(self, *, job_id: str, holder: str) -> bool:
        """Give up this dispatcher's lease on a job, if it still holds it."""
        res = await self._release(
            keys={"lease": self.keys.job_lease(job_id)}, args={"holder": holder}
        )
        return bool(res)


def admit_statuses(result: Sequence[str]) -> list[AdmitStatus]:
    return [AdmitStatus(s) for s in result]
