"""Batched script calls: many small Redis writes from a hot loop become one script call.

``send`` calls the script with the events' fields, each event ``width`` of them, flattened into
one list (the wrapper packs them into one argument with ``pack_events``), and the keys the
events bring, in order; the script returns one result per event, in order. ``submit``
returns a future at once; ``run`` (an owned task) sends what is queued every ``interval``
seconds or when ``max_batch`` events are waiting, up to ``in_flight`` calls at once, and
what is left when cancelled. One call
rather than a pipeline of one call per event: Redis pays a script's set-up, and the client
its command packing, once per batch.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from gateway.store.outage import STORE_DOWN, Outage

log = logging.getLogger(__name__)


def pack_events(fields: list[Any]) -> str:
    """The events' fields as the one argument the script decodes with ``cjson.decode``.

    One string is packed by the client, and parsed by Redis, far faster than thousands of
    arguments; the fields keep their types (the scripts read them as strings or numbers)."""
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))


class ScriptBatcher:
    def __init__(
        self,
        send: Callable[[list[Any], list[str]], Awaitable[Any]],
        width: int,
        interval: float = 0.002,
        max_batch: int = 100,
        in_flight: int = 4,
    ) -> None:
        self.send = send
        self.width = width
        self.interval = interval
        self.max_batch = max_batch
        # Calls at once. Whoever waits for an answer (an SMSC for its deliver_sm_resp) waits
        # for a call's round trip, not for every call queued before it; the scripts do not
        # need the calls' order (a receipt that overtakes its carrier id is parked).
        self.in_flight = in_flight
        self._queue: list[tuple[list[Any], Sequence[str], asyncio.Future[Any]]] = []
        self._full = asyncio.Event()
        self._pending = asyncio.Event()  # something is queued: ``run`` sleeps until then
        self._closing = False
        self._calls: set[asyncio.Task[None]] = set()

    def close(self) -> None:
        """Let ``run`` flush what is queued and end."""
        self._closing = True
        self._full.set()
        self._pending.set()

    def submit(self, fields: list[Any], keys: Sequence[str] = ()) -> asyncio.Future[Any]:
        if len(fields) != self.width:
            raise ValueError(f"an event has {self.width} fields, not {len(fields)}")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((fields, keys, fut))
        if len(self._queue) == 1:
            self._pending.set()
        if len(self._queue) >= self.max_batch:
            self._full.set()
        return fut

    async def run(self) -> None:
        try:
            while not self._closing:
                # Idle, it sleeps: waking every ``interval`` (2 ms) regardless cost an idle
                # gateway several percent of a core.
                if not self._queue:
                    await self._pending.wait()
                self._pending.clear()
                try:
                    async with asyncio.timeout(self.interval):
                        await self._full.wait()
                except TimeoutError:
                    pass
                self._full.clear()
                while self._queue and len(self._calls) < self.in_flight:
                    call = asyncio.create_task(self._call(self._take()), name="script-batch")
                    self._calls.add(call)
                    call.add_done_callback(self._calls.discard)
                if len(self._calls) >= self.in_flight:
                    await asyncio.wait(self._calls, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await asyncio.shield(self._drain())

    async def _drain(self) -> None:
        if self._calls:
            await asyncio.wait(self._calls)
        while self._queue:
            await self._call(self._take())

    def _take(self) -> list[tuple[list[Any], Sequence[str], asyncio.Future[Any]]]:
        batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
        return batch

    async def _call(
        self, batch: list[tuple[list[Any], Sequence[str], asyncio.Future[Any]]]
    ) -> None:
        outage = Outage("batched writes")
        flat: list[Any] = []
        keys: list[str] = []
        for fields, event_keys, _ in batch:
            flat += fields
            keys += event_keys
        while True:
            try:
                results = await self.send(flat, keys)
                if not isinstance(results, list) or len(results) != len(batch):
                    raise RuntimeError(f"script answered {results!r:.80} for {len(batch)} events")
                outage.ok()
                break
            except STORE_DOWN as exc:
                if not self._closing:
                    # Sent again once Redis is back: the scripts are idempotent per event (a
                    # status never moves twice), so a call that did land is harmless.
                    await outage.pause(exc)
                    continue
                log.error("Redis gone at shutdown: %d batched events not stored", len(batch))
                self._fail(batch, exc)
                return
            except Exception as exc:  # no event of the batch is known to have landed
                log.error("Redis script call with %d events failed: %r", len(batch), exc)
                self._fail(batch, exc)
                return
        for (_, _, fut), res in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(res)

    @staticmethod
    def _fail(
        batch: list[tuple[list[Any], Sequence[str], asyncio.Future[Any]]], exc: BaseException
    ) -> None:
        for _, _, fut in batch:
            if not fut.done():
                fut.set_exception(exc)
