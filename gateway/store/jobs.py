"""Reminder jobs in Redis: the job, its stored rows, bad rows, counts per status (kept in
every lane the rows were admitted in, and summed here)."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import redis.asyncio as aioredis

from gateway.store.job_scripts import JobScripts
from gateway.store.keys import Keys
from gateway.store.lane_merge import newest_of_lanes
from gateway.store.notices import _b36, now_iso
from gateway.store.replicas import NO_WAIT, ReplicaWait

JOB_RETENTION = 30 * 86400
BAD_ROWS_KEPT = 10_000
RECENT_JOBS = 500  # jobs listed by ``recent`` (the console's panel)


def new_job_id() -> str:
    return f"job_{_b36(int(time.time() * 1000))}{secrets.token_hex(6)}"


class JobStore:
    def __init__(self, redis: aioredis.Redis, keys: Keys, wait: ReplicaWait = NO_WAIT) -> None:
        """``wait``: the replicas an opened job waits for (its 202 follows)."""
        self.redis = redis
        self.keys = keys
        self.wait = wait
        self.scripts = JobScripts(redis, keys)

    async def create(self, job: dict[str, Any]) -> None:
        """A job in ``receiving``: rows are appended, then ``open`` starts it."""
        recent = self.keys.jobs_recent(self.keys.job_lane(job["id"]))
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.keys.job(job["id"]), mapping={k: str(v) for k, v in job.items()})
        pipe.expire(self.keys.job(job["id"]), JOB_RETENTION)
        pipe.zadd(recent, {job["id"]: time.time()})
        pipe.zremrangebyrank(recent, 0, -RECENT_JOBS - 1)
        await pipe.execute()

    async def append(self, job_id: str, rows: list[str], bad: list[dict[str, Any]]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        if rows:
            pipe.rpush(self.keys.job_rows(job_id), *rows)
        if bad:
            key = self.keys.job_bad_rows(job_id)
            pipe.rpush(key, *(json.dumps(b, ensure_ascii=False) for b in bad))
            pipe.ltrim(key, 0, BAD_ROWS_KEPT - 1)
        await pipe.execute()

    async def open(self, job_id: str, total: int, bad_rows: int) -> str:
        """Intake done: the dispatcher may start, unless the job was cancelled while its rows
        were arriving. A job with no good row ends here. Returns the job's status."""
        status = await self.scripts.open(
            job_id=job_id, total=total, bad_rows=bad_rows, at=now_iso(), retention_s=JOB_RETENTION
        )
        await self.wait.touch(self.redis, self.keys.job(job_id), JOB_RETENTION)
        return status

    async def abort(self, job_id: str, reason: str) -> None:
        """The upload broke off: nothing of it is sent."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.keys.job(job_id), mapping={"status": "aborted", "detail": reason})
        pipe.delete(self.keys.job_rows(job_id))
        await pipe.execute()

    async def get(
        self, job_id: str, bad_sample: int = 100, progress: bool = True
    ) -> dict[str, Any] | None:
        """The job with its bad rows' sample and, with ``progress``, its ``done`` and counts
        summed over the lanes (which reads every lane)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.job(job_id))
        pipe.lrange(self.keys.job_bad_rows(job_id), 0, bad_sample - 1)
        job, bad = await pipe.execute()
        if not job:
            return None
        out: dict[str, Any] = dict(job)
        if progress:
            (summed,) = await self.scripts.progress([job_id])
            out.update(done=summed.done, counts=summed.counts)
        out["bad_rows_sample"] = [json.loads(b) for b in bad]
        return out

    async def cancel(self, job_id: str) -> str:
        """Stop a job: rows not yet queued are never sent, queued ones are dropped by the
        sender. One script call, with the job's callback. Returns the status it had."""
        return await self.scripts.cancel(job_id=job_id, at=now_iso())

    async def recent(self, limit: int) -> list[dict[str, Any]]:
        """The newest jobs (at most ``limit``), each with its counts, newest first."""

        async def made(lane: int) -> list[tuple[str, float]]:
            got: list[tuple[str, float]] = await self.redis.zrevrange(
                self.keys.jobs_recent(lane), 0, limit - 1, withscores=True
            )
            return got

        newest = await newest_of_lanes(self.keys.each_lane(), made, lambda m: m[1], limit)
        ids = [job_id for job_id, _ in newest]
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(self.keys.job(job_id))
        got = await pipe.execute() if ids else []
        progress = await self.scripts.progress(ids)
        return [
            {**job, "done": p.done, "counts": p.counts}
            for job, p in zip(got, progress, strict=True)
            if job
        ]

    async def cancelled_recently(self) -> set[str]:
        cancelled: set[str] = set()
        for lane in self.keys.each_lane():
            cancelled.update(await self.redis.zrange(self.keys.jobs_cancelled(lane), 0, -1))
        return cancelled
