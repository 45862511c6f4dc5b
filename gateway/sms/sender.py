"""The SMS channel: queue entries from the channel worker -> SMPP submit_sm parts -> carrier
ids and receipts in Redis.

An entry is settled (and so acked by the worker) only when every part of its notice has an
outcome (a carrier id, or a final refusal). Parts without an answer when the session drops
are submitted again after the next bind; a process that dies leaves its entries pending, and a
live worker claims them (parts that already have a carrier id are not sent twice).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from gateway.channels.worker import Delivery, EntryKey, Lane
from gateway.core.phones import mask
from gateway.core.statuses import NoticeStatus, SmppAction, smpp_outcome
from gateway.metrics import Metrics
from gateway.settings import SmppLink, SmppSettings, SmppThrottleSettings, WorkerSettings
from gateway.sms import pdu
from gateway.sms.carrier_ids import receipt_forms, recipient_tail, stored_form
from gateway.sms.encoding import encode_sms
from gateway.sms.in_flight import InFlight, Part
from gateway.sms.inbound import Inbound
from gateway.sms.message_path import Answer, OutgoingSubmit
from gateway.sms.mo import MoMessage
from gateway.sms.part_queue import PartQueue
from gateway.sms.receipts import ReceiptFields
from gateway.sms.session import SessionSettings, SmppSession
from gateway.sms.throttling import Throttling, link_rate
from gateway.store.keys import Keys
from gateway.store.notices import NoticeStore, now_iso

log = logging.getLogger(__name__)

GROUP = "sms-senders"
_LATE_LIMIT = 4  # response timeouts a written part may stay unanswered: the session ends
_MAX_REWRITES = 2  # times a part whose carrier id could not be stored is sent again


@dataclass(slots=True)
class EntryState:
    delivery: Delivery
    remaining: set[int] = field(default_factory=set)


class SmsSender:
    """One SMPP bind: the channel behind the SMS channel worker (``Channel``)."""

    name = "sms"
    group = GROUP

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        store: NoticeStore,
        smpp: SmppSettings,
        worker: WorkerSettings,
        metrics: Metrics,
        consumer: str,
        link: SmppLink,
        lanes: frozenset[str] = frozenset({"priority", "bulk"}),
        throttle: SmppThrottleSettings | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.store = store
        self.smpp = smpp
        self.link = link
        self.name = f"sms:{link.name}"
        self.worker = worker
        self.metrics = metrics
        self.consumer = consumer
        # Two lanes: notices that must not wait (alerts, parking fallbacks, binding codes) go
        # to the SMSC first, and few bulk parts are held here: an alert never waits behind a
        # job. A process may serve one lane only (its own bind, its own CPU priority).
        self.lanes = frozenset(Lane(lane) for lane in lanes)
        priority = Lane.PRIORITY in self.lanes
        # Sharing the link with priority parts, bulk gets part of the window; alone, all of it.
        self._bulk_cap = link.bulk_window if priority else link.window
        self._queue = PartQueue()
        self._held = {Lane.PRIORITY: 0, Lane.BULK: 0}  # entries held here, by lane
        # Priority entries have their own budget: held bulk entries never keep an alert unread.
        self._limits = {
            Lane.PRIORITY: max(256, link.window * 8),
            Lane.BULK: max(2000, link.window * 16),
        }
        self._room_changed: Callable[[], None] = lambda: None
        self._flight = InFlight()
        self._entries: dict[EntryKey, EntryState] = {}
        self._tokens = itertools.count(1)
        self._closing = False
        # Where priority parts travel, writes start every 2 ms (acks 5); a bulk-only bind
        # gathers them for 20 ms: fewer script calls per message; nobody waits on reminders.
        receipt_ttl = smpp.smpp_receipt_ttl_hours * 3600
        self.ack_interval = 0.005 if priority else 0.02
        self.writes = store.sms_writes(
            receipt_ttl, receipt_ttl, interval=0.002 if priority else 0.02
        )
        self.inbound = Inbound(redis, keys, store, self.writes, metrics, link)
        throttle = throttle or SmppThrottleSettings()  # type: ignore[call-arg]
        rate = link_rate(redis, keys, link, throttle)
        self.throttling = Throttling(link, smpp, rate, metrics)
        # Where priority parts travel, what the SMSC sends is ACKed at once.
        self.session = SmppSession(SessionSettings.of_link(link, smpp, priority), self, rate)
        src = link.source_addr
        # service_type and source address: the same in every submit_sm of this bind.
        ton = pdu.TON_UNKNOWN if src.isdigit() else pdu.TON_ALPHANUMERIC
        self._source = pdu.submit_sm_source(src, ton, 0)

    # -- state ------------------------------------------------------------------------------
    @property
    def bound(self) -> bool:
        return self.session.bound

    @property
    def in_flight(self) -> int:
        return len(self._flight) + self._flight.late

    # -- the Channel protocol -----------------------------------------------------------------
    def attach(self, wake: Callable[[], None]) -> None:
        self._room_changed = wake

    def room(self, lane: Lane) -> int:
        return 0 if self._closing else self._limits[lane] - self._held[lane]

    async def start(self) -> None:
        """Run the bind and the batched writes until ``stop``."""
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.session.run(), name="smpp-session")
                for lane, batcher in enumerate(self.writes.batchers):
                    tg.create_task(batcher.run(), name=f"sms-writes-{lane}")
        finally:
            self._queue.close()

    async def stop(self) -> None:
        """Stop handing out parts, unbind, close the socket; the caller then cancels ``run``.

        Parts still waiting for an answer stay unacked in Redis and are sent by the next worker.
        Receipts that arrive during the unbind are stored and answered: the writes go on
        until the socket is closed.
        """
        self._closing = True
        self._queue.poke()
        await self.session.stop(unbind_within=1.0)
        self.inbound.close()
        await self.writes.close()

    async def housekeeping(self) -> None:
        now_ms = int(time.time() * 1000)
        if self.bound:
            until = now_ms + int(self.worker.consumer_dead_after * 1000)
            await self.redis.zadd(self.keys.smpp_bound, {self.consumer: until})
        else:
            await self.redis.zrem(self.keys.smpp_bound, self.consumer)
        await self.redis.zremrangebyscore(self.keys.smpp_bound, "-inf", now_ms)  # lapsed
        self.metrics.smpp_bound.set(1 if self.bound else 0)
        self.throttling.observe()
        self._expire_unanswered()
        await self.store.expire_unreceipted()
        # Past the wait for a late submit_sm_resp, a parked receipt matches nothing.
        grace = (_LATE_LIMIT + 1) * self.smpp.smpp_response_timeout
        await self.inbound.report_unmatched(grace, self.smpp.smpp_receipt_ttl_hours * 3600)

    async def submit(self, delivery: Delivery) -> None:
        fields = delivery.fields
        to, text = fields.get("to", ""), fields.get("text", "")
        if not to or not text:
            delivery.drop(f"malformed SMS queue entry: {sorted(fields)}")
            return
        sms = encode_sms(text, delivery.notice_id)
        done: set[int] = set()
        if delivery.reclaimed:
            # 'submitted' means every part has its carrier id; a notice of several parts
            # still 'queued' may have some, recorded part by part.
            if delivery.status != "queued":
                delivery.settle()
                return
            if len(sms.parts) > 1:
                done = {int(i) for i in await self.store.submitted_parts(delivery.notice_id)}
        todo = [p.index for p in sms.parts if p.index not in done]
        if not todo:
            delivery.settle()
            return
        self._entries[delivery.key] = EntryState(delivery, set(todo))
        self._held[delivery.lane] += 1
        if delivery.reclaimed:
            self.metrics.sms_resent.labels(self.link.name, "taken_over").inc(len(todo))
        for i in todo:
            self._queue.put(Part(delivery, to, sms, i))

    def _after_write(self, fut: asyncio.Future[Any], part: Part) -> None:
        self._flight.stored(part)
        self._queue.poke()
        if not fut.cancelled() and fut.exception() is None:
            self._part_done(part)
            return
        # Not an outage (the batcher waits those out): a script error, or a shutdown (the
        # entry stays pending for the next process). The SMSC has the part, but its receipt
        # would match nothing: sent again, a duplicate, at most _MAX_REWRITES times.
        again = not self._closing and part.rewrites < _MAX_REWRITES
        error = None if fut.cancelled() else fut.exception()
        log.error("carrier id of %s not stored (%r); sent again: %s", part.label, error, again)
        if again:
            part.rewrites += 1
            self.metrics.sms_resent.labels(self.link.name, "id_not_stored").inc()
            self._queue.later(part, 1.0)

    def _part_done(self, part: Part) -> None:
        state = self._entries.get(part.delivery.key)
        if state is None:
            return
        state.remaining.discard(part.index)
        if not state.remaining:
            del self._entries[part.delivery.key]
            self._held[state.delivery.lane] -= 1
            state.delivery.settle()

    # -- the session's message path: parts out -----------------------------------------------------
    async def next_submit(self) -> OutgoingSubmit:
        """Called by the session's send loop: the next part once the window has room."""
        while True:
            part = await self._queue.next(
                self._flight, self.link.window, self._bulk_cap, lambda: self._closing
            )
            part.token = str(next(self._tokens))
            part.attempt += 1
            p = part.sms.parts[part.index]
            try:
                body = pdu.submit_sm_body(
                    self._source,
                    part.to,
                    pdu.TON_INTERNATIONAL,
                    pdu.NPI_ISDN,
                    part.sms.esm_class,
                    part.sms.data_coding,
                    p.payload,
                )
            except ValueError as exc:  # not a number an SMSC can take; it will never be
                log.error("cannot build submit_sm for %s: %s", part.notice_id, exc)
                failed = {"reason": str(exc)}
                await self.store.transition(part.notice_id, NoticeStatus.FAILED, failed)
                self._part_done(part)
                continue
            self._flight.hand(part)
            return OutgoingSubmit(part.token, body)

    def submit_written(self, sequence: int, token: str) -> None:
        self._flight.written(sequence, token, time.monotonic())

    def _expire_unanswered(self) -> None:
        """Unanswered parts free their window slot, not sent again while an answer may come
        (``InFlight``); a session holding one ``_LATE_LIMIT`` timeouts is ended."""
        timeout = self.smpp.smpp_response_timeout
        now = time.monotonic()
        for part in self._flight.expire(now - timeout):
            log.warning(
                "no submit_sm_resp for %s within %.0fs: its window slot is freed; it is sent "
                "again only if this session ends without an answer",
                part.label,
                timeout,
            )
        if self._flight.oldest_late() < now - _LATE_LIMIT * timeout:
            self.session.drop(f"a submit_sm unanswered for {_LATE_LIMIT * timeout:.0f}s")
        self._queue.poke()

    # -- the session's message path: answers and receipts in -------------------------------------
    async def submit_answered(self, sequence: int, status: int, message_id: str) -> None:
        answered = self._flight.answered(sequence)
        if answered is None:
            log.info("submit_sm_resp for sequence %d, which awaits none: ignored", sequence)
            return
        part, late = answered
        self._queue.poke()
        if late:
            self.metrics.sms_late_answers.labels(self.link.name).inc()
            log.warning("late submit_sm_resp for %s reconciled: not sent again", part.label)
        name, action = smpp_outcome(status)
        if action is SmppAction.OK:
            self.metrics.sms_submitted.inc()
            # Batched with the other writes; the queue entry is acked only after this one
            # lands, so a crash before it means a re-send, never a lost notice.
            form = stored_form(message_id, self.link.receipt_id)
            fut = self.writes.submitted(
                part.notice_id,
                part.index,
                len(part.sms.parts),
                message_id,
                now_iso(),
                scope=self.link.id_space,
                form=form,
                to_tail=recipient_tail(part.to),
                # Where a receipt that overtakes this id parks (several lanes only).
                receipt_bests=receipt_forms(message_id, "auto") if self.keys.lanes > 1 else (),
            )
            self._flight.storing(part)
            fut.add_done_callback(functools.partial(self._after_write, part=part))
        elif action is SmppAction.RETRY:
            self._queue.later(part, self.throttling.throttled(part, name))
        elif action is SmppAction.REBIND:
            self._queue.later(part, self.smpp.smpp_throttle_backoff)
        else:
            await self._final_refusal(part, name)

    async def submit_nacked(self, sequence: int) -> bool:
        answered = self._flight.answered(sequence)
        if answered is None:
            return False  # not one of our submit_sm (the session logs it)
        self._queue.poke()
        await self._final_refusal(answered[0], "generic_nack")
        return True

    def receipt(self, fields: ReceiptFields, sequence: int, answer: Answer) -> None:
        self.inbound.receipt(fields, sequence, answer)

    async def mo_received(self, mo: MoMessage) -> bool:
        return await self.inbound.mo(mo)

    def on_new_session(self) -> None:
        """A (re)bind: whatever was in flight on the old session gets submitted again."""
        lost = self._flight.lost()
        self.metrics.sms_resent.labels(self.link.name, "session_ended").inc(
            self._flight.lost_written
        )
        for part in lost:
            self._queue.put(part)
        if lost:
            log.warning("re-submitting %d parts left unanswered by the previous session", len(lost))
        self.metrics.smpp_binds.inc()
        self.metrics.smpp_bound.set(1)
        self._queue.poke()

    async def _final_refusal(self, part: Part, smpp_status: str) -> None:
        self.metrics.sms_rejected.inc()
        log.info("SMSC refused %s for %s: %s", part.notice_id, mask(part.to), smpp_status)
        await self.store.transition(
            part.notice_id,
            NoticeStatus.REJECTED,
            {"smpp_status": smpp_status, "part": part.index + 1},
        )
        self._part_done(part)
