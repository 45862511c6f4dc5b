"""An SMSC simulator on the ``smpp34`` server, for the local stack and the tests.

It accepts binds, answers submit_sm (with scripted refusals and throttling), reassembles
concatenated parts, sends a delivery receipt per part after a delay (to the submitting session,
or to the next session of the same system_id to bind if that one is gone), and can inject
mobile-originated messages. With a state file it keeps the receipts it owes on disk and sends
them again after a crash; with an accept log it writes down every submit_sm it accepted.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import itertools
import logging
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import smpp34
from smpp34._smpp34 import TLV_MESSAGE_PAYLOAD, TLV_MESSAGE_STATE, TLV_RECEIPTED_MESSAGE_ID

from gateway.core.phones import mask
from gateway.sms.encoding import DATA_CODING_UCS2, decode_payload
from gateway.sms.receipts import format_receipt
from gateway.sms.sim_journal import AcceptLog, OwedReceipt, ReceiptJournal
from gateway.sms.sim_script import ReceivedMessage, Script

__all__ = ["ReceivedMessage", "Script", "SmscSimulator"]

log = logging.getLogger(__name__)

ESME_RINVDSTADR = 0x0000000B
ESME_RTHROTTLED = 0x00000058
ESME_RX_P_APPN = 0x00000065
_RECEIPT_ESM_CLASS = 0x04
_STATE = {"DELIVRD": 2, "UNDELIV": 5, "EXPIRED": 3, "REJECTD": 8}


_minute: tuple[int, str] = (0, "")


def _stamp() -> str:
    """Now as a receipt's YYMMDDhhmm, formatted once a minute."""
    global _minute
    key = int(time.time()) // 60
    if _minute[0] != key:
        _minute = (key, datetime.now().strftime("%y%m%d%H%M"))
    return _minute[1]


def _tail(number: str) -> str:
    return number[-11:]


class SmscSimulator:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 2775,
        script: Script | None = None,
        system_id: str = "SIMSC",
        echo: bool = False,
        state_file: str | None = None,
        accept_log: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.script = script or Script()
        self.system_id = system_id
        self.echo = echo
        self.messages: list[ReceivedMessage] = []
        self.submits = 0
        self.receipts_sent = 0
        self.receipts_held = 0  # receipts that waited for a free place in the window
        self.receipts_retried = 0  # receipts refused for now or unanswered, sent again later
        self.receipts_refused = 0  # receipts the ESME refused for good (ESME_RX_P_APPN)
        self._server: smpp34.Server | None = None
        self._sessions: dict[str, smpp34.Esme] = {}
        self.journal = ReceiptJournal(state_file) if state_file else None
        self.accept_log = AcceptLog(accept_log) if accept_log else None
        # Message ids go on from the last run's, so no carrier id is given out twice.
        self._ids = itertools.count(self.journal.next_id if self.journal else 1)
        self._assembly: dict[tuple[str, int], dict[int, tuple[str, str]]] = {}
        # Receipts owed from a previous run go to the first session of their system_id.
        self._undelivered = list(self.journal.owed.values()) if self.journal else []
        # Receipts: at most receipt_window deliver_sm unanswered, the rest wait in line.
        self._in_flight: set[asyncio.Future[Any]] = set()
        self._waiting: collections.deque[OwedReceipt] = collections.deque()
        self._timers: set[asyncio.TimerHandle] = set()
        self._bound = asyncio.Event()
        self._changed = asyncio.Event()

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        self._server = smpp34.Server(self.host, self.port, system_id=self.system_id)
        await self._server.start()
        log.info("SMSC simulator listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            await server.stop()
        self._sessions.clear()
        self._bound.clear()

    async def serve(self) -> None:
        """Handle events until cancelled."""
        try:
            while True:
                server = self._server
                if server is None:
                    await asyncio.sleep(0.05)
                    continue
                try:
                    ev = await server.next()
                except (RuntimeError, smpp34.SmppError) as exc:
                    if self._server is server:
                        log.warning("simulator server error: %s", exc)
                        await asyncio.sleep(0.05)
                    continue
                self._handle(ev)
        finally:
            for h in self._timers:
                h.cancel()
            self._timers.clear()
            for f in list(self._in_flight):
                f.cancel()
            await self.stop()
            for file in (self.journal, self.accept_log):
                if file is not None:
                    file.close()

    # -- events ---------------------------------------------------------------------------------
    def _handle(self, ev: object) -> None:
        if isinstance(ev, smpp34.Esme):
            self._sessions[ev.session_id] = ev
            self._bound.set()
            log.info("ESME %s bound (session %s)", ev.system_id, ev.session_id[:8])
            if self._undelivered:
                backlog, self._undelivered = self._undelivered, []
                for p in backlog:
                    self._send_receipt(p)
        elif isinstance(ev, smpp34.Unbound):
            self._sessions.pop(ev.session_id, None)
            if not self._sessions:
                self._bound.clear()
        elif isinstance(ev, smpp34.SubmitSmEvent):
            self._on_submit(ev)

    def _on_submit(self, ev: smpp34.SubmitSmEvent) -> None:
        self.submits += 1
        n = self.submits
        s = self.script
        if n <= s.throttle_first or (s.throttle_every and n % s.throttle_every == 0):
            ev.reject(ESME_RTHROTTLED)
            return
        dest = ev.destination_addr
        if _tail(dest) in s.reject:
            ev.reject(ESME_RINVDSTADR)
            return
        num = next(self._ids)
        message_id = f"{num:010x}"
        payload = ev.short_message or next(
            (t.value for t in ev.tlvs if t.tag == TLV_MESSAGE_PAYLOAD), b""
        )
        text, concat = decode_payload(payload, ev.data_coding, ev.esm_class)
        owed = None
        if s.send_receipts and ev.registered_delivery & 0x03:
            stat = "DELIVRD"
            if _tail(dest) in s.undeliverable:
                stat = "UNDELIV"
            elif _tail(dest) in s.expire:
                stat = "EXPIRED"
            session = self._sessions.get(ev.session_id)
            system_id = session.system_id if session else ""
            owed = OwedReceipt(
                ev.session_id, system_id, dest, ev.source_addr, message_id, stat, _stamp()
            )
            if self.journal is not None:  # on disk before the answer, as an SMSC stores it
                self.journal.owe(owed, num + 1)
        if self.accept_log is not None:
            self.accept_log.accepted(
                message_id, dest, f"{concat[2]}/{concat[1]}" if concat else "1/1"
            )
        ev.accept(message_id)
        self._assemble(ev.source_addr, dest, text, concat, message_id)
        if owed is not None:
            if s.receipt_delay:
                self._later(s.receipt_delay, owed)
            else:
                self._send_receipt(owed)

    def _assemble(
        self, source: str, dest: str, text: str, concat: tuple[int, int, int] | None, mid: str
    ) -> None:
        if concat is None:
            self._record(ReceivedMessage(source, dest, text, 1, (mid,)))
            return
        ref, total, seq = concat
        key = (dest, ref)
        parts = self._assembly.setdefault(key, {})
        parts[seq] = (text, mid)
        if len(parts) >= total:
            del self._assembly[key]
            ordered = [parts[i] for i in sorted(parts)]
            self._record(
                ReceivedMessage(
                    source,
                    dest,
                    "".join(t for t, _ in ordered),
                    total,
                    tuple(m for _, m in ordered),
                )
            )

    def _record(self, msg: ReceivedMessage) -> None:
        self.messages.append(msg)
        if len(self.messages) > 100000:
            del self.messages[:50000]
        self._changed.set()
        if self.echo:
            print(
                f"SMSC <- {msg.source} to {mask(msg.destination)} ({msg.parts} part(s)): "
                f"{msg.text}",
                flush=True,
            )

    # -- receipts and MO ----------------------------------------------------------------------
    # A receipt is a deliver_sm whose answer is a future; a callback, not a task, waits for it.
    def _later(self, delay: float, p: OwedReceipt) -> None:
        def fire() -> None:
            self._timers.discard(handle)
            self._send_receipt(p)

        handle = asyncio.get_running_loop().call_later(delay, fire)
        self._timers.add(handle)

    def _session_for(self, p: OwedReceipt) -> smpp34.Esme | None:
        s = self._sessions.get(p.session_id)
        if s is not None:
            return s
        for other in self._sessions.values():
            if not p.system_id or other.system_id == p.system_id:
                return other
        return None

    def _send_receipt(self, p: OwedReceipt) -> None:
        if len(self._in_flight) >= self.script.receipt_window:
            self.receipts_held += 1
            self._waiting.append(p)
            return
        session = self._session_for(p)
        if session is None:
            self._undeliverable_now(p)
            return
        text = format_receipt(
            p.message_id, p.stat, 0 if p.stat == "DELIVRD" else 1, p.submitted, _stamp()
        )
        try:
            fut = asyncio.ensure_future(  # a future already: no task is made
                session.deliver_sm(
                    p.source,
                    text.encode(),
                    source_addr=p.destination,
                    esm_class=_RECEIPT_ESM_CLASS,
                    tlvs=[
                        smpp34.Tlv(TLV_RECEIPTED_MESSAGE_ID, p.message_id.encode() + b"\x00"),
                        smpp34.Tlv(TLV_MESSAGE_STATE, bytes([_STATE[p.stat]])),
                    ],
                )
            )
        except (RuntimeError, smpp34.SmppError) as exc:
            log.info("receipt %s not delivered yet: %s", p.message_id, exc)
            self._undeliverable_now(p)
            return
        self._in_flight.add(fut)
        fut.add_done_callback(functools.partial(self._receipt_answered, p))

    def _receipt_answered(self, p: OwedReceipt, fut: asyncio.Future[Any]) -> None:
        self._in_flight.discard(fut)
        if fut.cancelled():
            return  # the simulator is stopping: its journal owes the receipt to the next run
        exc = fut.exception()
        status = fut.result().command_status if exc is None else None
        if status == 0 or status == ESME_RX_P_APPN:
            # Taken, or refused for good ("permanent application error": an ESME that can
            # never read it says so, and an SMSC does not send it again).
            if status == 0:
                self.receipts_sent += 1
            else:
                self.receipts_refused += 1
            if self.journal is not None:
                self.journal.paid(p.message_id)
        else:
            # Refused for now, or unanswered past the response timeout: the bind may well be
            # alive (an ESME holds its answer while its own store is away), so the receipt
            # goes again later; a bind that ended meanwhile leaves it for the next one.
            log.info("receipt %s not delivered yet: %s", p.message_id, exc or hex(status or 0))
            self.receipts_retried += 1
            self._later(self.script.receipt_retry, p)
        while self._waiting and len(self._in_flight) < self.script.receipt_window:
            self._send_receipt(self._waiting.popleft())

    def _undeliverable_now(self, p: OwedReceipt) -> None:
        """Keep the receipt for the next session of its system_id to bind."""
        self._sessions.pop(p.session_id, None)
        p.session_id = ""
        self._undelivered.append(p)

    async def inject_mo(self, source: str, destination: str, text: str) -> bool:
        """Send a mobile-originated SMS to a bound ESME."""
        session = next(iter(self._sessions.values()), None)
        if session is None:
            return False
        try:
            text.encode("ascii")
            payload, coding = text.encode(), 0
        except UnicodeEncodeError:
            payload, coding = text.encode("utf-16-be"), DATA_CODING_UCS2
        resp = await session.deliver_sm(
            destination, payload, source_addr=source, data_coding=coding
        )
        return bool(resp.is_success)

    # -- helpers for tests and the stack ------------------------------------------------------
    async def wait_bound(self) -> None:
        await self._bound.wait()

    async def wait_messages(self, count: int) -> list[ReceivedMessage]:
        """Wait until ``count`` whole messages have arrived (wrap in ``asyncio.timeout``)."""
        while len(self.messages) < count:
            self._changed.clear()
            await self._changed.wait()
        return self.messages

    def to(self, numbers: Iterable[str]) -> list[ReceivedMessage]:
        wanted = {_tail(n) for n in numbers}
        return [m for m in self.messages if _tail(m.destination) in wanted]
