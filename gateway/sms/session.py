"""The gateway's SMPP session (an ESME bound as transceiver), on ``gateway.sms.pdu``.

``SmppSession.run`` keeps one bind to one SMSC: connect, bind_transceiver, then three loops on
the connection (read and dispatch, write the sender's submit_sm, keepalive) until it ends;
then it waits (doubling from ``reconnect_min`` to ``reconnect_max`` while binds fail) and binds
again. A message's round trip goes to the sender through ``MessagePath``.

The SMSC's side of SMPP 3.4 as an ESME meets it:
- deliver_sm (receipts and MO) is answered only once the sender has stored it, and answered
  until the socket closes, also after the SMSC's own unbind;
- enquire_link is answered; an unknown command gets generic_nack ESME_RINVCMDID and the
  session goes on; alert_notification needs no answer.
Budgets per connection: a command_length no PDU can have ends it (the peer is out of step;
parts in flight are sent again after the next bind); at most ``unanswered_max`` deliver_sm wait
for their answer, after which the socket is not read until answers go out (TCP holds the SMSC
back; nothing piles up here); a bind, or a silent link's enquire_link, unanswered within
``response_timeout`` ends it; more than ``_MAX_UNKNOWN`` unknown commands end it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Protocol

from gateway.core.statuses import smpp_outcome
from gateway.settings import SmppLink, SmppSettings
from gateway.sms import pdu
from gateway.sms.connection import Connection
from gateway.sms.message_path import MessagePath
from gateway.sms.mo import read_mo
from gateway.sms.receipts import receipt_fields

log = logging.getLogger(__name__)


class Rate(Protocol):
    async def acquire(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SessionSettings:
    host: str
    port: int
    system_id: str
    password: str
    system_type: str = ""
    enquire_link_interval: float = 30.0
    response_timeout: float = 30.0
    unanswered_max: int = 5000
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    quick_ack: bool = False  # ACK what the SMSC sends at once (where alerts travel)

    @classmethod
    def of_link(cls, link: SmppLink, smpp: SmppSettings, quick_ack: bool) -> SessionSettings:
        return cls(
            link.host,
            link.port,
            link.system_id,
            link.password.get_secret_value(),
            link.system_type,
            enquire_link_interval=smpp.smpp_enquire_link_seconds,
            response_timeout=smpp.smpp_response_timeout,
            unanswered_max=smpp.smpp_unanswered_max,
            reconnect_min=smpp.smpp_reconnect_min,
            reconnect_max=smpp.smpp_reconnect_max,
            quick_ack=quick_ack,
        )


_READ_SIZE = 1 << 16
_MAX_UNKNOWN = 100
# After the SMSC's unbind: how long it may stay silent before we close (it normally closes).
_DRAIN_QUIET = 1.0
_LINK_ERRORS = (OSError, EOFError, TimeoutError, pdu.BadPdu)  # EOFError: IncompleteReadError


class SmppSession:
    def __init__(
        self, settings: SessionSettings, path: MessagePath, rate: Rate | None = None
    ) -> None:
        self.settings = settings
        self.path = path
        self.rate = rate
        self._conn: Connection | None = None
        self._closing = False

    @property
    def bound(self) -> bool:
        conn = self._conn
        return conn is not None and conn.open and not conn.peer_unbound

    # -- lifecycle ------------------------------------------------------------------------------
    async def run(self) -> None:
        """Bind, serve, bind again, until ``stop``; errors of the link are logged, not raised
        (a bug in a handler is)."""
        s = self.settings
        delay = s.reconnect_min
        while not self._closing:
            bound = False
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(s.host, s.port), s.response_timeout
                )
                conn = Connection(reader, writer, s.unanswered_max)
                try:
                    bound = await self._bind(conn)
                    if bound and not self._closing:
                        await self._serve(conn)
                finally:
                    self._conn = None
                    conn.close()
            except _LINK_ERRORS as exc:
                log.warning(
                    "SMPP link to %s:%d %s: %s",
                    s.host,
                    s.port,
                    "lost" if bound else "not bound",
                    str(exc) or type(exc).__name__,
                )
            if self._closing:
                break
            if bound:
                delay = s.reconnect_min
            await asyncio.sleep(delay)
            delay = min(delay * 2, s.reconnect_max)

    async def stop(self, unbind_within: float = 1.0) -> None:
        """Send no more submits, unbind (answering what still arrives), close the socket."""
        self._closing = True
        conn = self._conn
        if conn is None or not conn.open:
            return
        if not conn.peer_unbound:
            conn.out.write(pdu.unbind(conn.next_sequence()))
            try:
                async with asyncio.timeout(unbind_within):
                    await conn.unbind_answered.wait()
            except TimeoutError:
                log.info("no unbind_resp within %.1fs; closing the SMPP socket", unbind_within)
        conn.close()

    def drop(self, reason: str) -> None:
        """Leave the current session (the next bind follows): the sender no longer trusts it."""
        conn = self._conn
        if conn is not None and conn.open:
            log.warning("leaving the SMPP session to %s: %s", self.settings.host, reason)
            conn.dropped = reason
            conn.close()

    async def _bind(self, conn: Connection) -> bool:
        s = self.settings
        sequence = conn.next_sequence()
        conn.writer.write(pdu.bind_transceiver(sequence, s.system_id, s.password, s.system_type))
        async with asyncio.timeout(s.response_timeout):
            while True:
                head = await conn.reader.readexactly(pdu.HEADER_LENGTH)
                length = pdu.pdu_length(head, 0)
                raw = head + await conn.reader.readexactly(length - pdu.HEADER_LENGTH)
                _, command, status, seq = pdu.HEADER.unpack_from(raw)
                # Nothing else is meant for an ESME that is not bound yet.
                if seq == sequence and command in (pdu.BIND_TRANSCEIVER_RESP, pdu.GENERIC_NACK):
                    break
        if command != pdu.BIND_TRANSCEIVER_RESP or status != pdu.ESME_ROK:
            log.error(
                "SMSC %s:%d refused the bind of %s: %s %s",
                s.host,
                s.port,
                s.system_id,
                pdu.COMMAND_NAMES[command],
                smpp_outcome(status)[0],
            )
            return False
        log.info("bound to SMSC %s:%d as %s", s.host, s.port, s.system_id)
        return True

    async def _serve(self, conn: Connection) -> None:
        self._conn = conn
        self.path.on_new_session()
        tasks = {
            asyncio.create_task(self._read(conn), name="smpp-read"),
            asyncio.create_task(self._send(conn), name="smpp-send"),
            asyncio.create_task(self._keep(conn), name="smpp-keepalive"),
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
        for task in done:
            task.result()  # a link error (logged by run) or a bug (raised)

    # -- the three loops ------------------------------------------------------------------------
    async def _read(self, conn: Connection) -> None:
        """Read and dispatch until the SMSC closes the socket (or answers our unbind)."""
        reader = conn.reader
        quick_ack = self.settings.quick_ack
        buf = bytearray()
        while not conn.unbind_answered.is_set():
            if conn.full:
                conn.paused = True
                conn.room.clear()
                await conn.room.wait()
                conn.paused = False
            chunk = await reader.read(_READ_SIZE)
            if not chunk:
                if conn.peer_unbound or self._closing:
                    return
                raise ConnectionResetError(conn.dropped or "the SMSC closed the connection")
            conn.heard = True
            if conn.probe is not None:
                conn.probe.set()
            if quick_ack:
                conn.quick_ack()
            buf += chunk
            at, end = 0, len(buf)
            while end - at >= pdu.HEADER_LENGTH:
                try:
                    length = pdu.pdu_length(buf, at)
                except pdu.BadPdu as exc:
                    log.error(  # the would-be header only: a body may hold phone numbers
                        "SMSC sent what is not SMPP (%s, header %s); leaving the session",
                        exc,
                        bytes(buf[at : at + pdu.HEADER_LENGTH]).hex(),
                    )
                    raise
                if end - at < length:
                    break
                await self._dispatch(conn, bytes(buf[at : at + length]))
                at += length
            del buf[:at]

    async def _send(self, conn: Connection) -> None:
        """Write the sender's parts: shared rate, sequence number, write; wait for room."""
        path, rate = self.path, self.rate
        while True:
            out = await path.next_submit()
            if rate is not None:
                await rate.acquire()
            if self._closing or conn.peer_unbound or not conn.open:
                # The sender still holds the part: it is sent again after the next bind (or
                # its queue entry stays pending for the next worker).
                break
            sequence = conn.next_sequence()
            path.submit_written(sequence, out.token)
            conn.out.write(pdu.frame(pdu.SUBMIT_SM, sequence, out.body))
            await conn.out.drain()  # waiting for room is back-pressure
        await asyncio.get_running_loop().create_future()  # ended with the connection

    async def _keep(self, conn: Connection) -> None:
        """An enquire_link after an interval in which the SMSC sent nothing; the session ends
        if nothing at all comes back within ``response_timeout``. After the SMSC's unbind:
        the session ends once all is answered and the SMSC has been quiet ``_DRAIN_QUIET``,
        or ``response_timeout`` after the unbind at the latest."""
        s = self.settings
        loop = asyncio.get_running_loop()
        drain_until = 0.0
        while True:
            conn.heard = False
            if conn.peer_unbound:
                drain_until = drain_until or loop.time() + s.response_timeout
                await asyncio.sleep(_DRAIN_QUIET)
                if (not conn.heard and conn.unanswered <= 0) or loop.time() > drain_until:
                    log.info("SMSC unbound; closing the SMPP socket to bind again")
                    return
                continue
            try:
                async with asyncio.timeout(s.enquire_link_interval):
                    await conn.peer_unbind.wait()
                continue
            except TimeoutError:
                pass
            if conn.heard or conn.paused:
                continue
            conn.probe = asyncio.Event()
            conn.out.write(pdu.enquire_link(conn.next_sequence()))
            try:
                async with asyncio.timeout(s.response_timeout):
                    await conn.probe.wait()
            except TimeoutError:
                raise TimeoutError(
                    f"no answer to enquire_link within {s.response_timeout}s"
                ) from None
            finally:
                conn.probe = None

    # -- one PDU --------------------------------------------------------------------------------
    async def _dispatch(self, conn: Connection, raw: bytes) -> None:
        _, command, status, sequence = pdu.HEADER.unpack_from(raw)
        if command == pdu.SUBMIT_SM_RESP:
            try:
                message_id = pdu.read_submit_sm_resp(raw) if status == pdu.ESME_ROK else ""
            except pdu.BadPdu as exc:
                # The part is sent again when its response time runs out.
                log.error("submit_sm_resp %d ignored: %s", sequence, exc)
                return
            await self.path.submit_answered(sequence, status, message_id)
        elif command == pdu.DELIVER_SM:
            deliver = pdu.read_deliver_sm(raw)
            if deliver is not None and deliver.is_receipt:  # once per message sent
                conn.unanswered += 1
                self.path.receipt(receipt_fields(deliver), sequence, conn.answer)
            else:
                await self._other_deliver_sm(conn, deliver, sequence)
        elif command == pdu.ENQUIRE_LINK:
            conn.out.write(pdu.response(command, sequence))
        elif command == pdu.ENQUIRE_LINK_RESP or command == pdu.ALERT_NOTIFICATION:
            pass
        elif command == pdu.GENERIC_NACK:
            if not await self.path.submit_nacked(sequence):
                log.warning("SMSC sent generic_nack %s for sequence %d", hex(status), sequence)
        elif command == pdu.UNBIND:
            log.info("SMSC unbound; answering deliver_sm until it closes the socket")
            conn.peer_unbind.set()
            conn.out.write(pdu.response(command, sequence))
        elif command == pdu.UNBIND_RESP:
            conn.unbind_answered.set()
        elif command & pdu.RESPONSE:
            log.info("SMSC sent %s for sequence %d, which awaits none", hex(command), sequence)
        else:
            conn.unknown += 1
            log.warning(
                "SMSC sent command id %s, which this ESME does not take: generic_nack", hex(command)
            )
            conn.out.write(pdu.generic_nack(sequence, pdu.ESME_RINVCMDID))
            if conn.unknown > _MAX_UNKNOWN:
                raise pdu.BadPdu(f"more than {_MAX_UNKNOWN} unknown commands")

    async def _other_deliver_sm(
        self, conn: Connection, deliver: pdu.DeliverSm | None, sequence: int
    ) -> None:
        if deliver is None:
            # Never readable: answered as a permanent error so that it is not sent again.
            log.warning("unreadable deliver_sm %d refused (ESME_RX_P_APPN)", sequence)
            conn.out.write(pdu.deliver_sm_resp(sequence, pdu.ESME_RX_P_APPN))
            return
        conn.unanswered += 1
        # MO messages are rare: the next PDU is read once this one is stored.
        conn.paused = True
        try:
            stored = await self.path.mo_received(read_mo(deliver))
        finally:
            conn.paused = False
        if stored:
            conn.answer(sequence)
