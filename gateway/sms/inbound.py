"""What the SMSC sends us (receipts, MO messages): stored in Redis, then answered.

A deliver_sm is answered only once the write that stored it has returned, so a crash costs at
most receipts the SMSC sends again (storing them is idempotent), never one it believes
delivered. Receipts ride the sender's batched script calls (``ScriptBatcher``): their answers
go out together when the call lands. A write that fails is tried again in this process, with
back-off, until it lands or the worker stops; meanwhile the deliver_sm stays unanswered, and
the session stops reading once too many are (``smpp_unanswered_max``).
"""

from __future__ import annotations

import asyncio
import functools
import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.metrics import Metrics
from gateway.settings import SmppLink
from gateway.sms.carrier_ids import mask_id, receipt_forms, recipient_tail
from gateway.sms.message_path import Answer
from gateway.sms.mo import MoMessage
from gateway.sms.receipts import BadReceipt, Receipt, ReceiptFields, parse_receipt
from gateway.store.keys import Keys
from gateway.store.notices import NoticeStore, now_iso
from gateway.store.sms_writes import SmsWrites
from gateway.store.unmatched_receipts import UnmatchedReceipts

log = logging.getLogger(__name__)

# A failed write is tried again after this, doubled up to the cap.
_RETRY_FIRST = 0.1
_RETRY_MAX = 5.0
_MO_PARTS_TTL = 3600  # the parts of one MO message arrive together


class Inbound:
    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        store: NoticeStore,
        writes: SmsWrites,
        metrics: Metrics,
        link: SmppLink,
    ) -> None:
        self.link = link
        self.unmatched = UnmatchedReceipts(redis, keys)
        self.redis = redis
        self.keys = keys
        self.store = store
        self.writes = writes
        self.metrics = metrics
        self._closing = False
        self._retries: set[asyncio.TimerHandle] = set()

    def close(self) -> None:
        """No more retries; what is not stored stays unanswered (the SMSC sends it again)."""
        self._closing = True
        for handle in self._retries:
            handle.cancel()
        self._retries.clear()

    # -- receipts -------------------------------------------------------------------------------
    def receipt(self, fields: ReceiptFields, sequence: int, answer: Answer) -> None:
        try:
            receipt = parse_receipt(fields.text, fields.receipted_message_id, fields.message_state)
        except BadReceipt as exc:
            log.warning("unusable delivery receipt ignored: %s", exc)
            answer(sequence)
            return
        if not receipt.final:
            answer(sequence)
            return
        self.metrics.sms_receipts.inc()
        self._store(receipt, recipient_tail(fields.source), sequence, answer, 0)

    def _store(
        self, receipt: Receipt, tail: str, sequence: int, answer: Answer, attempt: int
    ) -> None:
        fut = self.writes.receipt(
            receipt.message_id,
            receipt_forms(receipt.message_id, self.link.receipt_id),
            self.link.name,
            self.link.id_space,
            receipt.status,
            now_iso(),
            receipt.stat,
            receipt.err,
            tail,
        )
        fut.add_done_callback(
            functools.partial(self._written, receipt, tail, sequence, answer, attempt)
        )

    def _written(
        self,
        receipt: Receipt,
        tail: str,
        sequence: int,
        answer: Answer,
        attempt: int,
        fut: asyncio.Future[object],
    ) -> None:
        if fut.cancelled() or self._closing:
            return
        exc = fut.exception()
        if exc is None:
            answer(sequence)  # the answers of one script call leave in one send
            return
        delay = min(_RETRY_FIRST * 2**attempt, _RETRY_MAX)
        log.error("a delivery receipt could not be stored (%r); retrying in %.1fs", exc, delay)

        def retry() -> None:
            self._retries.discard(handle)
            self._store(receipt, tail, sequence, answer, attempt + 1)

        handle = asyncio.get_running_loop().call_later(delay, retry)
        self._retries.add(handle)

    async def report_unmatched(self, grace: float, forget: float) -> None:
        """Receipts no carrier id claimed within ``grace`` seconds: one log line and one count
        each (each is reported to one worker only)."""
        for r in await self.unmatched.report(grace, forget):
            try:
                if await self.writes.rescue(r):
                    log.info(
                        "a receipt for carrier id %s, left parked by a process that stopped, "
                        "reached its notice",
                        mask_id(str(r.get("id", ""))),
                    )
                    continue
            except Exception as exc:  # it stays listed; a late carrier id can still claim it
                log.warning("a parked receipt could not be moved (%r)", exc)
            self.metrics.sms_receipts_unmatched.inc()
            log.warning(
                "receipt for carrier id %s (link %s, %s) matched no part in %.0fs; it stays "
                "parked for a late id and is listed at /v1/admin/unmatched-receipts",
                mask_id(str(r.get("id", ""))),
                r.get("link", "?"),
                r.get("stat", "?"),
                grace,
            )

    # -- MO -------------------------------------------------------------------------------------
    async def mo(self, mo: MoMessage) -> bool:
        """Put an MO message on the MO stream (a part of one: with its other parts first);
        True once stored, False if the worker stopped first."""
        delay = _RETRY_FIRST
        while not self._closing:
            try:
                await self._store_mo(mo)
                return True
            except (RedisError, OSError) as exc:
                log.error("an MO message could not be stored (%r); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
        return False

    async def _store_mo(self, mo: MoMessage) -> None:
        text = mo.text
        parts_key = ""
        if mo.concat is not None:
            # Each part is stored before it is answered (an SMSC may send the next part only
            # then); the part that completes the message moves the whole text to the stream.
            reference, total, seq = mo.concat
            parts_key = self.keys.mo_parts(mo.source, reference)
            # One MULTI: of two parts stored at once, only the later sees every part.
            *_, flat = await self.store.wait.commands(
                self.redis,
                parts_key,
                ("HSET", parts_key, str(seq), text),
                ("EXPIRE", parts_key, _MO_PARTS_TTL),
                ("HGETALL", parts_key),
                atomic=True,
            )
            # HGETALL's reply inside EXEC: a flat list, or a dict where the client parsed it.
            parts = (
                flat if isinstance(flat, dict) else dict(zip(flat[::2], flat[1::2], strict=True))
            )
            if len(parts) < total:
                return
            text = "".join(parts.get(str(i), "") for i in range(1, total + 1))
        # Answered to the SMSC once on the replicas too (GATEWAY_REDIS_WAIT_REPLICAS).
        fields = ("from", mo.source, "to", mo.destination, "text", text)
        queue = self.keys.mo_queue(self.keys.recipient_lane(mo.source))  # the lane of its parts
        xadd = ("XADD", queue, "MAXLEN", "~", 100000, "*", *fields)
        delete = [("DEL", parts_key)] if parts_key else []
        await self.store.wait.commands(self.redis, queue, xadd, *delete, atomic=True)
        self.metrics.sms_mo.inc()
