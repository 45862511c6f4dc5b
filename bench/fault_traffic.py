"""The fault suite's traffic: a reminder job per row, and accident alerts and parking notices
sent the way a careful caller sends them."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Awaitable, Callable

import aiohttp

from bench.fault_stack import Stack
from gateway.jobs.dispatcher import reminder_notice_id
from gateway.store.keys import Keys

JOB_RATE = 2000


class Callers:
    """Accident alerts (and, for the voice fault, parking notices) sent the way a careful
    caller sends them: an Idempotency-Key each, tried again on errors for up to 60 s."""

    def __init__(self, http: aiohttp.ClientSession, stack: Stack, row: int) -> None:
        self.http, self.stack, self.row = http, stack, row
        self.ids: dict[str, str] = {}  # notice id -> number
        self.kinds: dict[str, str] = {}  # notice id -> "sms" | "voice"
        self.accepted_at: dict[str, float] = {}  # number -> time of its 202
        self.answers: collections.Counter[str] = collections.Counter()
        self.never = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def post(self, path: str, role: str, body: dict[str, object], idem: str) -> str | None:
        headers = {**self.stack.auth(role), "Idempotency-Key": idem}
        deadline = time.monotonic() + 60
        delay = 0.2
        while time.monotonic() < deadline:
            try:
                async with self.http.post(
                    f"{self.stack.base}{path}",
                    json=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=10),
                ) as r:
                    if r.status in (200, 201, 202):
                        return str((await r.json())["id"])
                    self.answers[str(r.status)] += 1
                    if r.status < 500 and r.status != 429:
                        self.answers[f"{r.status} {(await r.text())[:80]}"] += 1
                        return None
            except (aiohttp.ClientError, TimeoutError):
                self.answers["no answer"] += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        return None

    async def alert(self, i: int) -> None:
        number = f"158{self.row:02d}{i:06d}"
        nid = await self.post(
            "/v1/accident-alerts",
            "command_center",
            {
                "accident_type": "injury",
                "reporter_phone": number,
                "location": "环城路",
                "case_id": f"F{self.row}-{i}",
                "callback_url": self.stack.hook_url,
            },
            f"alert-{self.row}-{i}",
        )
        self._record(nid, number, "sms")

    async def parking(self, i: int) -> None:
        number = f"1380{self.row:02d}{i:04d}1"  # the sink callee presses the last digit: 1
        nid = await self.post(
            "/v1/parking-notices",
            "officer",
            {
                "plate": f"云A{self.row:02d}{i:03d}",
                "location": "北京路",
                "move_within_minutes": 10,
                "officer_id": "F1",
                "callback_url": self.stack.hook_url,
            },
            f"parking-{self.row}-{i}",
        )
        self._record(nid, number, "voice")

    async def bind(self, count: int) -> None:
        """Plates for the parking notices, bound to numbers whose callee presses 1."""
        for i in range(count):
            async with self.http.post(
                f"{self.stack.base}/v1/bindings",
                headers=self.stack.auth("admin"),
                json={"plate": f"云A{self.row:02d}{i:03d}", "phone": f"1380{self.row:02d}{i:04d}1"},
            ) as r:
                if r.status not in (200, 201):
                    raise RuntimeError(f"binding refused: {r.status} {await r.text()}")

    def _record(self, nid: str | None, number: str, kind: str) -> None:
        if nid is None:
            self.never += 1
            return
        self.ids[nid] = number
        self.kinds[nid] = kind
        self.accepted_at.setdefault(number, time.time())

    async def run(
        self,
        send: Callable[[int], Awaitable[None]],
        rate: float,
        stop: asyncio.Event,
        most: int = 100_000,
    ) -> None:
        i = 0
        while not stop.is_set() and i < most:
            task = asyncio.create_task(send(i))  # owned: gathered below
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            i += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1 / rate)
        await asyncio.gather(*list(self._tasks))


async def create_job(http: aiohttp.ClientSession, stack: Stack, row: int, n: int) -> str:
    rows = "".join(f"139{row:02d}{i:06d},人民路,明天8时至18时,北京路\n" for i in range(n))
    async with http.post(
        f"{stack.base}/v1/reminder-jobs",
        params={
            "template": "traffic_conditions",
            "rate": str(JOB_RATE),
            "send_window": "00:00-23:59",
            "callback_url": stack.hook_url,
            "name": f"faults row {row}",
        },
        data=("to,road,period,detour\n" + rows).encode(),
        headers={**stack.auth("back_office"), "Content-Type": "text/csv"},
    ) as r:
        body = await r.json()
        if r.status != 202 or body["total"] != n:
            raise RuntimeError(f"job not accepted: {r.status} {body}")
        return str(body["job_id"])


async def dispatched(http: aiohttp.ClientSession, stack: Stack, job_id: str) -> int:
    with contextlib.suppress(aiohttp.ClientError, TimeoutError, KeyError, ValueError):
        async with http.get(
            f"{stack.base}/v1/reminder-jobs/{job_id}",
            headers=stack.auth("back_office"),
            timeout=aiohttp.ClientTimeout(total=5),
        ) as r:
            return int((await r.json())["dispatched"])
    return -1


def job_ids(job_id: str, row: int, n: int) -> dict[str, str]:
    """The job's notice ids (derived from job and row) and their numbers."""
    return {reminder_notice_id(Keys(), job_id, i, 0): f"139{row:02d}{i:06d}" for i in range(n)}
