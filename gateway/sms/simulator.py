"""An SMSC simulator on the ``smpp34`` server, for the local stack and the tests.

It accepts binds, answers submit_sm (with scripted refusals and throttling), reassembles
concatenated parts, sends a delivery receipt per part after a delay (to the submitting session,
or to the next session of the same system_id to bind if that one is gone), and can inject
mobile-originated messages.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import smpp34
from smpp34._smpp34 import TLV_MESSAGE_PAYLOAD, TLV_MESSAGE_STATE, TLV_RECEIPTED_MESSAGE_ID

from gateway.core.phones import mask
from gateway.sms.encoding import DATA_CODING_UCS2, decode_payload
from gateway.sms.receipts import format_receipt

log = logging.getLogger(__name__)

ESME_RINVDSTADR = 0x0000000B
ESME_RTHROTTLED = 0x00000058
_RECEIPT_ESM_CLASS = 0x04
_STATE = {"DELIVRD": 2, "UNDELIV": 5, "EXPIRED": 3, "REJECTD": 8}


@dataclass
class Script:
    """Scripted behaviour; numbers are matched on their last 11 digits."""

    receipt_delay: float = 0.2
    undeliverable: set[str] = field(default_factory=set)
    reject: set[str] = field(default_factory=set)
    expire: set[str] = field(default_factory=set)
    throttle_first: int = 0  # answer the first N submits with ESME_RTHROTTLED
    throttle_every: int = 0  # and then every Nth submit
    send_receipts: bool = True
    # deliver_sm (receipts, MO) awaiting the ESME's response at once, like an SMSC's window.
    receipt_window: int = 512


@dataclass(frozen=True)
class ReceivedMessage:
    source: str
    destination: str
    text: str
    parts: int
    message_ids: tuple[str, ...]


@dataclass
class _Pending:
    session_id: str
    system_id: str
    destination: str
    source: str
    message_id: str
    stat: str
    submitted: str  # the receipt's YYMMDDhhmm


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
    ) -> None:
        self.host = host
        self.port = port
        self.script = script or Script()
        self.system_id = system_id
        self.echo = echo
        self.messages: list[ReceivedMessage] = []
        self.submits = 0
        self.receipts_sent = 0
        self._server: smpp34.Server | None = None
        self._sessions: dict[str, smpp34.Esme] = {}
        self._ids = itertools.count(1)
        self._assembly: dict[tuple[str, int], dict[int, tuple[str, str]]] = {}
        self._undelivered: list[_Pending] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(self.script.receipt_window)
        self._receipts: asyncio.Queue[_Pending] = asyncio.Queue()
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

    async def _receipt_sender(self) -> None:
        while True:
            await self._send_receipt(await self._receipts.get(), 0.0)

    async def serve(self) -> None:
        """Handle events until cancelled."""
        for _ in range(self.script.receipt_window):
            self._spawn(self._receipt_sender())
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
            for t in list(self._tasks):
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.stop()

    # -- events ---------------------------------------------------------------------------------
    def _handle(self, ev: object) -> None:
        if isinstance(ev, smpp34.Esme):
            self._sessions[ev.session_id] = ev
            self._bound.set()
            log.info("ESME %s bound (session %s)", ev.system_id, ev.session_id[:8])
            if self._undelivered:
                backlog, self._undelivered = self._undelivered, []
                for p in backlog:
                    self._spawn(self._send_receipt(p, 0.0))
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
        message_id = f"{next(self._ids):010x}"
        ev.accept(message_id)
        payload = ev.short_message
        if not payload:
            for t in ev.tlvs:
                if t.tag == TLV_MESSAGE_PAYLOAD:
                    payload = t.value
        text, concat = decode_payload(payload, ev.data_coding, ev.esm_class)
        self._assemble(ev.source_addr, dest, text, concat, message_id)
        stat = "DELIVRD"
        if _tail(dest) in s.undeliverable:
            stat = "UNDELIV"
        elif _tail(dest) in s.expire:
            stat = "EXPIRED"
        if s.send_receipts and ev.registered_delivery & 0x03:
            session = self._sessions.get(ev.session_id)
            pending = _Pending(
                ev.session_id,
                session.system_id if session else "",
                dest,
                ev.source_addr,
                message_id,
                stat,
                _stamp(),
            )
            if s.receipt_delay:
                self._spawn(self._send_receipt(pending, s.receipt_delay))
            else:  # straight to the senders: no task per receipt
                self._receipts.put_nowait(pending)

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
    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._reap)

    def _reap(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("simulator task failed: %r", task.exception())

    def _session_for(self, p: _Pending) -> smpp34.Esme | None:
        s = self._sessions.get(p.session_id)
        if s is not None:
            return s
        for other in self._sessions.values():
            if not p.system_id or other.system_id == p.system_id:
                return other
        return None

    async def _send_receipt(self, p: _Pending, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        async with self._slots:
            session = self._session_for(p)
            ok = False
            if session is not None:
                text = format_receipt(
                    p.message_id,
                    p.stat,
                    0 if p.stat == "DELIVRD" else 1,
                    p.submitted,
                    _stamp(),
                )
                try:
                    resp = await session.deliver_sm(
                        p.source,
                        text.encode(),
                        source_addr=p.destination,
                        esm_class=_RECEIPT_ESM_CLASS,
                        tlvs=[
                            smpp34.Tlv(TLV_RECEIPTED_MESSAGE_ID, p.message_id.encode() + b"\x00"),
                            smpp34.Tlv(TLV_MESSAGE_STATE, bytes([_STATE[p.stat]])),
                        ],
                    )
                    ok = resp.is_success
                except (RuntimeError, smpp34.SmppError) as exc:
                    log.info("receipt %s not delivered yet: %s", p.message_id, exc)
            if ok:
                self.receipts_sent += 1
            else:
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
