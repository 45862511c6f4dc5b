"""The SMS worker: Redis Stream of notices -> SMPP submit_sm parts -> statuses and receipts.

At-least-once: a stream entry is acked only when every part of its notice has an outcome
(a carrier id, or a final refusal). Parts without an answer when the session drops are
submitted again after the next bind; a process that dies leaves its entries pending, and a
live worker claims them (parts that already have a carrier id are not sent twice).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from aiosmpplib import NPI, TON, SmppMessage
from aiosmpplib.protocol import BindTransceiverResp, DeliverSm
from aiosmpplib.retrytimer import SimpleExponentialBackoff
from aiosmpplib.state import MESSAGE_STATE, RECEIPTED_MESSAGE_ID, SmppSessionState

from gateway.core.phones import mask
from gateway.core.statuses import NoticeStatus, SmppAction, smpp_outcome
from gateway.logs import guard_smpp_logger
from gateway.metrics import Metrics
from gateway.settings import SmppSettings, WorkerSettings
from gateway.sms.encoding import EncodedSms, encode_sms
from gateway.sms.esme_bridge import (
    CoalescingWriter,
    ForwardingHook,
    GatewayEsme,
    InFlightCorrelator,
    OutgoingSubmit,
    SharedRateLimiter,
    tlv,
)
from gateway.sms.pdu import submit_sm_body, submit_sm_source
from gateway.sms.receipts import BadReceipt, ReceiptFields, parse_receipt
from gateway.store.keys import Keys
from gateway.store.notices import NoticeStore
from gateway.store.ratelimit import Gcra, SharedRate
from gateway.store.streams import StreamGroup

log = logging.getLogger(__name__)

GROUP = "sms-senders"


@dataclass(slots=True)
class Part:
    entry_id: str
    notice_id: str
    to: str  # international digits
    sms: EncodedSms
    index: int
    attempt: int = 0
    token: str = ""
    handed_at: float = 0.0
    bulk: bool = False


@dataclass(slots=True)
class EntryState:
    notice_id: str
    group: StreamGroup
    remaining: set[int] = field(default_factory=set)


class SmsSender:
    """One SMPP bind and the queue consumer that feeds it."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        store: NoticeStore,
        smpp: SmppSettings,
        worker: WorkerSettings,
        metrics: Metrics,
        consumer: str,
        lanes: frozenset[str] = frozenset({"priority", "bulk"}),
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.store = store
        self.smpp = smpp
        self.worker = worker
        self.metrics = metrics
        self.consumer = consumer
        # Two queues: notices that must not wait (accident alerts, parking fallbacks, binding
        # codes) and bulk reminders. Parts of the first always go to the SMSC first, and only a
        # bounded number of bulk parts is held here, so an alert never queues behind a job.
        # A process may serve one lane only (its own bind, its own CPU priority).
        dead_after = worker.consumer_dead_after
        self.group: StreamGroup | None = None
        self.bulk: StreamGroup | None = None
        if "priority" in lanes:
            self.group = StreamGroup(redis, keys, keys.sms_queue, GROUP, consumer, dead_after)
        if "bulk" in lanes:
            self.bulk = StreamGroup(redis, keys, keys.sms_bulk_queue, GROUP, consumer, dead_after)
        self._groups = {g.stream: g for g in (self.group, self.bulk) if g is not None}
        # Sharing the link with priority parts, bulk gets part of the window; alone, all of it.
        self._bulk_cap = smpp.smpp_bulk_window if self.group is not None else smpp.smpp_window
        self._high: collections.deque[Part] = collections.deque()
        self._low: collections.deque[Part] = collections.deque()
        # Set whenever a part is ready or the window may have room.
        self._wake = asyncio.Event()
        self._bulk_out = 0  # bulk parts in the window
        self._bulk_entries = 0  # bulk queue entries held here
        self._bulk_limit = max(2000, smpp.smpp_window * 16)
        self._cancelled_jobs: set[str] = set()
        self._outstanding: dict[str, Part] = {}
        self._by_seq: dict[int, str] = {}
        self._entries: dict[str, EntryState] = {}
        # Set whenever the window or the entry budget may have room again.
        self._entry_room = asyncio.Event()
        self._tokens = itertools.count(1)
        self._timers: set[asyncio.TimerHandle] = set()
        self._max_entries = max(256, smpp.smpp_window * 8)
        self._closing = False
        self.stragglers: list[asyncio.Future[None]] = []
        self._last_writer: asyncio.StreamWriter | None = None
        self.correlator = InFlightCorrelator()
        # Where priority parts travel, carrier ids, receipts and acks reach Redis within 2 ms
        # (5 for acks). A bulk-only bind gathers them for 20 ms: a few times fewer round
        # trips and script calls per message, and nobody waits on a reminder's status.
        receipt_ttl = smpp.smpp_receipt_ttl_hours * 3600
        self._ack_interval = 0.005 if self.group is not None else 0.02
        self.batcher = store.sms_event_batcher(
            receipt_ttl, receipt_ttl, interval=0.002 if self.group is not None else 0.02
        )
        host, port, system_id, password, tps = smpp.link(bulk=lanes == {"bulk"})
        self.esme = GatewayEsme(
            smsc_host=host,
            smsc_port=port,
            system_id=system_id,
            password=password,
            system_type=smpp.smpp_system_type,
            client_id=consumer,
            enquire_link_interval=float(smpp.smpp_enquire_link_seconds),
            log_level="ERROR",
            log_metadata={"consumer": consumer},
            hook=ForwardingHook(self),
            message_path=self,
            # Where priority parts travel, what the SMSC sends is ACKed at once.
            quick_ack=self.group is not None,
            rate_limiter=SharedRateLimiter(
                SharedRate(Gcra(redis), keys.rate(f"smpp:{system_id}@{host}:{port}"), tps)
            ),
            correlator=self.correlator,
            retry_timer=SimpleExponentialBackoff(min_delay=500, max_increases=6),
            socket_timeout=float(smpp.smpp_response_timeout),
        )
        guard_smpp_logger(self.esme._logger)
        src = smpp.smpp_source_addr
        # service_type and source address: the same in every submit_sm of this bind.
        self._source = submit_sm_source(src, TON.UNKNOWN if src.isdigit() else TON.ALPHANUMERIC, 0)

    # -- state ------------------------------------------------------------------------------
    @property
    def bound(self) -> bool:
        return bool(self.esme.session_state == SmppSessionState.BOUND_TRX)

    @property
    def in_flight(self) -> int:
        return len(self._outstanding)

    # -- run --------------------------------------------------------------------------------
    async def run(self) -> None:
        """Run until cancelled; on cancel, unbind and leave unfinished entries pending."""
        for group in self._groups.values():
            await group.ensure()
            for eid, fields in await group.own_pending():
                await self._accept_entry(group, eid, fields, reclaimed=True)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.esme.start(), name="esme")
                tg.create_task(self._read_loop(), name="sms-read")
                tg.create_task(self._housekeeping(), name="sms-housekeeping")
                for group in self._groups.values():
                    tg.create_task(
                        group.run_acker(self._ack_interval), name=f"acker {group.stream}"
                    )
                tg.create_task(self.batcher.run(), name="sms-writes")
        finally:
            for t in self._timers:
                t.cancel()
            self._timers.clear()

    async def stop(self) -> None:
        """Stop handing out parts, unbind, close the socket; the caller then cancels ``run``.

        Parts still waiting for an answer stay unacked in Redis and are sent by the next worker.
        """
        self._closing = True
        self._wake.set()
        self._entry_room.set()
        for group in self._groups.values():
            group.close()
        self.batcher.close()
        # aiosmpplib drops its writer after unbind without closing it; keep it to close here.
        writer = getattr(self.esme, "_writer", None)
        if self.bound:
            # ESME.stop() waits for the SMSC to close the session, and not every SMSC does;
            # asyncio.wait does not cancel it (aiosmpplib swallows that cancellation, which
            # would make wait_for hang). A straggler is cancelled with the worker's tasks.
            unbind = asyncio.ensure_future(self.esme.stop())
            done, _ = await asyncio.wait({unbind}, timeout=1.0)
            if not done:
                self.stragglers.append(unbind)
        if writer is not None:
            writer.close()

    async def _read_loop(self) -> None:
        while not self._closing:
            # Priority entries have their own budget, so held bulk entries never keep an
            # accident alert unread in Redis.
            while len(self._entries) - self._bulk_entries >= self._max_entries:
                self._entry_room.clear()
                await self._entry_room.wait()
            room = min(
                self._max_entries - (len(self._entries) - self._bulk_entries),
                self.worker.stream_batch,
            )
            streams = {self.group.stream: ">"} if self.group is not None else {}
            bulk_room = self._bulk_entries < self._bulk_limit
            if bulk_room and self.bulk is not None:
                streams[self.bulk.stream] = ">"
            if not streams:
                await asyncio.sleep(0.02)  # a bulk-only sender with its hands full
                continue
            res: Any = await self.redis.xreadgroup(
                GROUP, self.consumer, streams, count=room, block=1000 if bulk_room else 50
            )
            # The priority stream's entries first, whatever order Redis listed them in.
            for stream, entries in sorted(res or [], key=lambda r: r[0] != self.keys.sms_queue):
                group = self._groups[stream]
                for eid, fields in entries:
                    await self._accept_entry(group, eid, fields, reclaimed=False)

    async def _housekeeping(self) -> None:
        while not self._closing:
            await asyncio.sleep(min(1.0, self.worker.heartbeat_seconds))
            for group in self._groups.values():
                await group.heartbeat()
            self._cancelled_jobs = set(await self.redis.zrange(self.keys.jobs_cancelled, 0, -1))
            if self.bound:
                await self.redis.set(
                    self.keys.smpp_bound(self.consumer),
                    "1",
                    px=int(self.worker.consumer_dead_after * 1000),
                )
            else:
                await self.redis.delete(self.keys.smpp_bound(self.consumer))
            self.metrics.smpp_bound.set(1 if self.bound else 0)
            for group in self._groups.values():
                for eid, fields in await group.reclaim_dead():
                    await self._accept_entry(group, eid, fields, reclaimed=True)
            self._expire_unanswered()

    # -- queue entries -> parts ---------------------------------------------------------------
    async def _accept_entry(
        self, group: StreamGroup, eid: str, fields: dict[str, str], reclaimed: bool
    ) -> None:
        notice_id, to, text = fields.get("id", ""), fields.get("to", ""), fields.get("text", "")
        if not notice_id or not to or not text:
            log.error("malformed SMS queue entry %s dropped: %s", eid, sorted(fields))
            await group.ack_and_delete(eid)
            return
        if eid in self._entries:
            return
        if fields.get("job") in self._cancelled_jobs:
            await self.store.transition(
                notice_id, NoticeStatus.CANCELLED, {"reason": "job_cancelled"}
            )
            await group.ack_and_delete(eid)
            return
        sms = encode_sms(text, notice_id)
        done: set[int] = set()
        if reclaimed:
            # 'submitted' means every part has its carrier id; a notice of several parts
            # still 'queued' may have some, recorded part by part.
            status = await self.redis.hget(self.keys.notice(notice_id), "status")
            if status != "queued":
                await group.ack_and_delete(eid)
                return
            if len(sms.parts) > 1:
                done = {int(i) for i in await self.store.submitted_parts(notice_id)}
        todo = [p.index for p in sms.parts if p.index not in done]
        if not todo:
            await group.ack_and_delete(eid)
            return
        self._entries[eid] = EntryState(notice_id, group, set(todo))
        bulk = group is self.bulk
        self._bulk_entries += bulk
        for i in todo:
            self._put(Part(eid, notice_id, to, sms, i, bulk=bulk))

    def _put(self, part: Part) -> None:
        (self._low if part.bulk else self._high).append(part)
        self._wake.set()

    def _after_write(self, fut: asyncio.Future[Any], part: Part) -> None:
        if fut.cancelled() or fut.exception() is not None:
            log.error(
                "recording the carrier id of %s failed (%r); it will be re-sent",
                part.notice_id,
                None if fut.cancelled() else fut.exception(),
            )
            return
        self._part_done(part)

    def _part_done(self, part: Part) -> None:
        state = self._entries.get(part.entry_id)
        if state is None:
            return
        state.remaining.discard(part.index)
        if not state.remaining:
            del self._entries[part.entry_id]
            self._bulk_entries -= state.group is self.bulk
            state.group.ack_later(part.entry_id)
            self._entry_room.set()

    # -- the ESME's message path: parts out ------------------------------------------------------
    async def next_submit(self) -> OutgoingSubmit:
        """Called by the ESME's send loop: the next part once the window has room."""
        while True:
            part = await self._next_part()
            part.token = str(next(self._tokens))
            part.handed_at = time.monotonic()
            part.attempt += 1
            p = part.sms.parts[part.index]
            try:
                body = submit_sm_body(
                    self._source,
                    part.to,
                    TON.INTERNATIONAL,
                    NPI.ISDN,
                    part.sms.esm_class,
                    part.sms.data_coding,
                    p.payload,
                )
            except ValueError as exc:  # not a number an SMSC can take; it will never be
                log.error("cannot build submit_sm for %s: %s", part.notice_id, exc)
                self._release_bulk(part)
                failed = {"reason": str(exc)}
                await self.store.transition(part.notice_id, NoticeStatus.FAILED, failed)
                self._part_done(part)
                continue
            self._outstanding[part.token] = part
            return OutgoingSubmit(part.token, body)

    async def _next_part(self) -> Part:
        while True:
            if not self._closing and len(self._outstanding) < self.smpp.smpp_window:
                if self._high:
                    return self._high.popleft()
                # Bulk parts use only part of the window: what the SMSC has in hand is what a
                # priority part waits behind.
                if self._low and self._bulk_out < self._bulk_cap:
                    self._bulk_out += 1
                    return self._low.popleft()
            self._wake.clear()
            await self._wake.wait()

    def submit_written(self, sequence: int, token: str) -> None:
        self._by_seq[sequence] = token

    def _release_bulk(self, part: Part) -> None:
        self._bulk_out -= part.bulk
        self._wake.set()

    def _release(self, token: str) -> Part | None:
        part = self._outstanding.pop(token, None)
        if part is not None:
            self._release_bulk(part)
        return part

    def _requeue(self, part: Part, delay: float = 0.0) -> None:
        if delay <= 0:
            self._put(part)
            return
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.discard(handle)
            self._put(part)

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)

    def _expire_unanswered(self) -> None:
        limit = time.monotonic() - self.smpp.smpp_response_timeout
        for token, part in list(self._outstanding.items()):
            if part.handed_at < limit:
                log.warning(
                    "no submit_sm_resp for %s part %d; resubmitting", part.notice_id, part.index
                )
                self._release(token)
                self._requeue(part)

    # -- the ESME's message path: answers and receipts in -------------------------------------
    async def submit_answered(self, sequence: int, status: int, message_id: str) -> None:
        token = self._by_seq.pop(sequence, None)
        part = self._release(token) if token is not None else None
        if part is None:
            return  # late answer for a part already re-queued
        name, action = smpp_outcome(status)
        if action is SmppAction.OK:
            self.metrics.sms_submitted.inc()
            # Batched with the other writes; the queue entry is acked only after this one
            # lands, so a crash before it means a re-send, never a lost notice.
            fut = self.store.part_submitted_batched(
                self.batcher, part.notice_id, part.index, len(part.sms.parts), message_id
            )
            fut.add_done_callback(functools.partial(self._after_write, part=part))
        elif action is SmppAction.RETRY:
            self.metrics.sms_throttled.inc()
            delay = min(
                self.smpp.smpp_throttle_backoff * 2 ** (part.attempt - 1),
                self.smpp.smpp_throttle_backoff_max,
            )
            self._requeue(part, delay)
        elif action is SmppAction.REBIND:
            self._requeue(part, self.smpp.smpp_throttle_backoff)
        else:
            await self._final_refusal(part, name)

    async def submit_nacked(self, sequence: int) -> bool:
        token = self._by_seq.pop(sequence, None)
        if token is None:
            return False  # not one of our submit_sm: the library's
        part = self._release(token)
        if part is not None:
            await self._final_refusal(part, "generic_nack")
        return True

    def receipt(self, fields: ReceiptFields) -> None:
        self._on_receipt(fields.text, fields.receipted_message_id, fields.message_state)

    # -- hook side: PDUs that take the library's way -------------------------------------------
    async def on_received(self, message: SmppMessage | None, pdu: bytes) -> None:
        if isinstance(message, DeliverSm):
            if message.is_receipt():  # one the short reader left to the library
                self._on_receipt(
                    message.short_message,
                    tlv(message, RECEIPTED_MESSAGE_ID),
                    tlv(message, MESSAGE_STATE),
                )
            else:
                await self._on_mo(message)
        elif isinstance(message, BindTransceiverResp) and int(message.command_status) == 0:
            self._on_new_session()

    def _on_new_session(self) -> None:
        """A (re)bind: whatever was in flight on the old session gets submitted again."""
        # aiosmpplib replaces its writer on reconnect without closing the old one.
        writer = getattr(self.esme, "_writer", None)
        if self._last_writer is not None and self._last_writer is not writer:
            self._last_writer.close()
        if isinstance(writer, asyncio.StreamWriter) and not isinstance(writer, CoalescingWriter):
            writer = CoalescingWriter(writer)
            self.esme._writer = writer
        self._last_writer = writer
        lost = list(self._outstanding.values())
        self._outstanding.clear()
        self._bulk_out = 0
        self._by_seq.clear()
        self.correlator.clear()
        for part in lost:
            self._put(part)
        if lost:
            log.warning("re-submitting %d parts left unanswered by the previous session", len(lost))
        self.metrics.smpp_binds.inc()
        self.metrics.smpp_bound.set(1)
        self._wake.set()

    async def _final_refusal(self, part: Part, smpp_status: str) -> None:
        self.metrics.sms_rejected.inc()
        log.info("SMSC refused %s for %s: %s", part.notice_id, mask(part.to), smpp_status)
        await self.store.transition(
            part.notice_id,
            NoticeStatus.REJECTED,
            {"smpp_status": smpp_status, "part": part.index + 1},
        )
        self._part_done(part)

    def _on_receipt(self, text: str, rid: str | None, state: int | None) -> None:
        try:
            receipt = parse_receipt(text, rid, state)
        except BadReceipt as exc:
            log.warning("unusable delivery receipt ignored: %s", exc)
            return
        if not receipt.final:
            return
        self.metrics.sms_receipts.inc()
        fut = self.store.receipt_batched(
            self.batcher, receipt.message_id, receipt.status, receipt.stat, receipt.err
        )
        fut.add_done_callback(self._receipt_written)

    @staticmethod
    def _receipt_written(fut: asyncio.Future[object]) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            log.error("a delivery receipt could not be recorded: %r", fut.exception())

    async def _on_mo(self, mo: DeliverSm) -> None:
        self.metrics.sms_mo.inc()
        await self.redis.xadd(
            self.keys.mo_queue,
            {
                "from": mo.source.number,
                "to": mo.destination.number,
                "text": mo.short_message or mo.message_payload,
            },
            maxlen=100000,
            approximate=True,
        )
