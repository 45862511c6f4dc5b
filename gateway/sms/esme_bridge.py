"""Adapters that plug the gateway into aiosmpplib's ESME.

aiosmpplib keeps the session: bind, keepalive, reconnects, unbind, MO messages. A message's
own round trip (submit_sm out; submit_sm_resp, receipt and generic_nack in) goes between
``GatewayEsme`` and the sender directly (``MessagePath``), framed and read by
``gateway.sms.pdu``. The library's hook reports the rest to the sender, and its correlator
keeps only the library's own in-flight requests: receipts are correlated in Redis by the
sender, so they survive restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any, NamedTuple, Protocol

from aiosmpplib import (
    ESME,
    AbstractCorrelator,
    AbstractHook,
    AbstractRateLimiter,
    SmppMessage,
    SubmitSm,
)
from aiosmpplib.correlator import SegmentStatus
from aiosmpplib.esme import _SUBMIT_SM_SEGMENT
from aiosmpplib.protocol import MESSAGE_TYPE_MAP, DeliverSm, EnquireLink, SmppCommand
from aiosmpplib.state import COMMAND_RESPONSE_MAP, SmppCommandStatus

from gateway.sms import pdu as wire
from gateway.sms.receipts import ReceiptFields, read_receipt_pdu
from gateway.store.ratelimit import SharedRate

log = logging.getLogger(__name__)

# Receipts are matched by the sender in Redis; aiosmpplib only needs *a* SubmitSm back so that
# it hands the receipt to the hook instead of logging it as uncorrelated.
_RECEIPT_PLACEHOLDER = SubmitSm(short_message="-", log_id="receipt")


class SenderEvents(Protocol):
    async def on_received(self, message: SmppMessage | None, pdu: bytes) -> None: ...


class OutgoingSubmit(NamedTuple):
    """A submit_sm ready to go but for its sequence number: the sender's token for the part,
    and the PDU body (``pdu.submit_sm_body``)."""

    token: str
    body: bytes


class MessagePath(Protocol):
    """The sender's side of a message's round trip, called by ``GatewayEsme`` directly."""

    async def next_submit(self) -> OutgoingSubmit:
        """The next part to send, once the window has room."""
        ...

    def submit_written(self, sequence: int, token: str) -> None: ...

    async def submit_answered(self, sequence: int, status: int, message_id: str) -> None: ...

    async def submit_nacked(self, sequence: int) -> bool:
        """A generic_nack: True if it answered one of the sender's submit_sm."""
        ...

    def receipt(self, fields: ReceiptFields) -> None: ...


_READ_SIZE = 1 << 16


class GatewayEsme(ESME):
    """aiosmpplib's ESME, with what a gateway under load needs changed:

    - A message's round trip takes the short way when a ``message_path`` is given: submit_sm
      is framed from the body the sender built, and submit_sm_resp, generic_nack and receipt
      deliver_sm are read with ``gateway.sms.pdu`` and handed to the sender, whose own tables
      correlate them (receipts in Redis, so they survive restarts). The library built,
      validated and debug-logged an object for each of those PDUs, and looked up a stored
      request for each: a third of a bulk worker's time. Binds, enquire_link, unbind, MO
      messages and anything unusual still go through the library's handlers and hook.
    - PDUs are read a buffer at a time rather than with two reads each.
    - Responses never wait for room in the socket's buffer. The library's receive loop
      awaited ``drain()`` after each deliver_sm_resp: with the buffer full of submit_sm, an
      SMSC that finishes writing its receipts before it reads again would wait for us while
      we waited for it. A response is written and the loop reads on; submit_sm still waits
      for room (that is backpressure).
    - A lighter keepalive, writers closed on reconnect and stop, and no failure when a PDU
      meets a session that has just closed (see each method).
    """

    def __init__(
        self,
        *args: Any,
        message_path: MessagePath | None = None,
        quick_ack: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.message_path = message_path
        self.quick_ack = quick_ack

    async def connect(self) -> None:
        # aiosmpplib drops the previous session's writer without closing it.
        if self._writer is not None and self._session_state != self.bind_mode.session_state:
            self._writer.close()
        await super().connect()

    async def _disconnect(self) -> None:
        writer = self._writer
        try:
            await super()._disconnect()
        finally:
            if writer is not None:
                writer.close()  # the library only half-closes it

    async def _connection_keeper(self) -> None:
        """Keep the session alive: an enquire_link after an interval in which the SMSC sent
        nothing, and the session ends if no PDU at all comes back within ``socket_timeout``.

        aiosmpplib's own keeper starts two tasks and a wait for every PDU received (thousands
        a second under a job, a few per cent of a worker's CPU); this one wakes once per
        interval, so a silent link is probed after one to two intervals.
        """
        try:
            while True:
                self._data_received.clear()
                await asyncio.sleep(self.enquire_link_interval)
                if not self._session_open():
                    return
                if self._data_received.is_set():
                    continue
                async with asyncio.timeout(self.socket_timeout):
                    await self._send_data(EnquireLink())
                    await self._data_received.wait()
        except TimeoutError:
            self._logger.error("Timed out while waiting for ENQUIRE_LINK response")

    def _session_open(self) -> bool:
        return not self._is_shutting_down and self._session_state == self.bind_mode.session_state

    # -- sending --------------------------------------------------------------------------------
    async def _dequeue_messages(self) -> dict[str, Any]:
        """Send the sender's parts: throttle check, shared rate, sequence number, write."""
        path = self.message_path
        if path is None:
            result: dict[str, Any] = await super()._dequeue_messages()
            return result
        throttle = self.throttle_handler
        while self._session_open():
            out = await path.next_submit()
            if not await throttle.allow_request():
                await self._wait_out_throttling()
            if self.rate_limiter is not None:
                await self.rate_limiter.limit()
            writer = self._writer
            if writer is None or not self._session_open():
                # The session closed while this part waited. The sender still holds it and
                # sends it again after the next bind (or leaves its entry pending).
                break
            sequence = self.sequence_generator.next_sequence()
            path.submit_written(sequence, out.token)
            writer.write(wire.frame(wire.SUBMIT_SM, sequence, out.body))
            async with self._drain_lock:
                await writer.drain()  # waiting for room is backpressure
        return {"reason": "shutdown"}

    async def _wait_out_throttling(self) -> None:
        """The SMSC throttled too many submits lately: pause as the library's handler says."""
        allowed = False
        while not allowed:
            await asyncio.sleep(await self.throttle_handler.throttle_delay())
            allowed = await self.throttle_handler.allow_request()

    async def _send_data(self, smpp_message: SmppMessage) -> None:
        if self._writer is None:
            # The session closed (a stop, a lost link) while this PDU waited. The task that
            # sent it is ended with the session; failing here made every orderly stop log an
            # error.
            await asyncio.get_running_loop().create_future()
        if smpp_message.smpp_command in COMMAND_RESPONSE_MAP:
            await super()._send_data(smpp_message)  # a request: waiting for room is backpressure
            return
        pdu = smpp_message.pdu()
        await self.hook.sending(smpp_message, pdu, self.client_id)
        self._writer.write(pdu)  # a response: small, one per request the SMSC sent

    def _answer(self, pdu: bytes) -> None:
        if self._writer is not None:
            self._writer.write(pdu)

    # -- receiving ------------------------------------------------------------------------------
    async def _receive_data(self) -> bytes | None:
        reader = self._reader
        assert reader is not None
        buf = bytearray()
        while self._session_open():
            chunk = await reader.read(_READ_SIZE)
            if not chunk:
                raise asyncio.IncompleteReadError(bytes(buf), None)
            self._data_received.set()  # for the connection keeper
            if self.quick_ack:
                self._ack_now()
            buf += chunk
            at = 0
            while len(buf) - at >= wire.HEADER_LENGTH:
                try:
                    length = wire.pdu_length(buf, at)
                except wire.BadPdu as exc:  # a ValueError: the library ends the session
                    log.error(  # the would-be header only: a body may hold phone numbers
                        "SMSC sent what is not SMPP (%s, header %s); leaving the session",
                        exc,
                        bytes(buf[at : at + wire.HEADER_LENGTH]).hex(),
                    )
                    raise
                if len(buf) - at < length:
                    break
                pdu = bytes(buf[at : at + length])
                at += length
                if not await self._on_pdu(pdu):
                    return None
            del buf[:at]
        return None

    def _ack_now(self) -> None:
        """ACK what the SMSC sent at once. SMPP trades small PDUs both ways; with delayed ACKs
        here and Nagle on an SMSC that does not set TCP_NODELAY (the simulator's library does
        not), the second of two back-to-back responses waited 40 ms for our ACK. Linux
        clears TCP_QUICKACK on its own, so it is set again after each read."""
        sock = self._writer.get_extra_info("socket") if self._writer is not None else None
        if sock is not None and hasattr(socket, "TCP_QUICKACK"):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)

    async def _on_pdu(self, pdu: bytes) -> bool:
        """Handle one PDU; False when the SMSC ended the session (unbind)."""
        path = self.message_path
        if path is not None:
            _, command, status, sequence = wire.HEADER.unpack_from(pdu)
            if command == wire.SUBMIT_SM_RESP:
                try:
                    message_id = wire.read_submit_sm_resp(pdu) if status == 0 else ""
                except wire.BadPdu as exc:
                    # The library dropped such an answer too: the part is sent again when
                    # its response time runs out.
                    log.error("submit_sm_resp %d ignored: %s", sequence, exc)
                    return True
                if status in _THROTTLING:
                    await self.throttle_handler.throttled()
                else:
                    await self.throttle_handler.not_throttled()
                await path.submit_answered(sequence, status, message_id)
                return True
            if command == wire.DELIVER_SM:
                fields = read_receipt_pdu(pdu)
                if fields is not None:
                    path.receipt(fields)
                    self._answer(wire.deliver_sm_resp(sequence))
                    return True
            elif command == wire.GENERIC_NACK and await path.submit_nacked(sequence):
                return True
        return await self._library_pdu(pdu)

    async def _library_pdu(self, pdu: bytes) -> bool:
        """What aiosmpplib's receive loop does with one PDU."""
        # An unknown command id raises ValueError here, which ends the session (as before).
        header = SmppMessage.parse_header(pdu)
        request = header.smpp_command in COMMAND_RESPONSE_MAP
        if request:
            message = await self._handle_request(pdu, header)
        else:
            message = await self._handle_response(pdu, header)
        shown = None if message is _SUBMIT_SM_SEGMENT else message
        await self.hook.received(shown, pdu, self.client_id)
        if message is None:
            return True
        if request:
            response = MESSAGE_TYPE_MAP[COMMAND_RESPONSE_MAP[header.smpp_command]]
            await self._send_data(response(header.sequence_num))
        return bool(header.smpp_command != SmppCommand.UNBIND)


_THROTTLING = frozenset({SmppCommandStatus.ESME_RTHROTTLED, SmppCommandStatus.ESME_RMSGQFUL})


class ForwardingHook(AbstractHook):
    """The PDUs that take the library's way (binds, MO, unusual ones) reach the sender here."""

    def __init__(self, events: SenderEvents) -> None:
        self._events = events

    async def sending(self, smpp_message: SmppMessage, pdu: bytes, client_id: str) -> None:
        return None

    async def received(self, smpp_message: SmppMessage | None, pdu: bytes, client_id: str) -> None:
        await self._events.on_received(smpp_message, pdu)

    async def send_error(self, smpp_message: SmppMessage, error: Exception, client_id: str) -> None:
        return None  # the library's send loop is not used when there is a message path


class SharedRateLimiter(AbstractRateLimiter):
    """aiosmpplib calls ``limit()`` before each PDU; the rate is shared through Redis."""

    def __init__(self, rate: SharedRate) -> None:
        self._rate = rate

    async def limit(self) -> None:
        await self._rate.acquire()


class InFlightCorrelator(AbstractCorrelator):
    """Sequence number -> request, for requests still waiting for their response.

    Expiry is driven by the sender (it knows what to do with a part that got no answer),
    so nothing here scans or times out on its own.
    """

    def __init__(self) -> None:
        self._requests: dict[int, SmppMessage] = {}
        self._mo_segments: dict[tuple[str, int], dict[int, str]] = {}

    def clear(self) -> None:
        self._requests.clear()

    def get_cumulated_status(self, ref_num: int) -> int:
        return 0

    async def expired(self, smpp_message: SmppMessage) -> None:
        return None

    async def put(self, smpp_message: SmppMessage) -> None:
        self._requests[smpp_message.sequence_num] = smpp_message

    async def put_delivery(self, smsc_message_id: str, submit_sm: SubmitSm) -> None:
        return None

    async def put_delivery_segmented(self, deliver_sm: DeliverSm) -> DeliverSm | None:
        """Reassemble a multi-part MO message (kept in memory; MO parts arrive together)."""
        ref, seq, total = deliver_sm.get_segmentation_data()
        key = (deliver_sm.source.number, ref)
        parts = self._mo_segments.setdefault(key, {})
        parts[seq] = deliver_sm.short_message or deliver_sm.message_payload
        if len(self._mo_segments) > 10000:
            self._mo_segments.clear()
        if len(parts) < total:
            return None
        del self._mo_segments[key]
        deliver_sm.short_message = "".join(parts[i] for i in sorted(parts))
        return deliver_sm

    async def get(self, response: SmppMessage) -> SmppMessage | None:
        return self._requests.pop(response.sequence_num, None)

    async def get_segmented(
        self, smpp_seq_num: int, remove: bool = False
    ) -> tuple[SegmentStatus | None, int]:
        return None, 0

    async def get_delivery(self, receipt: DeliverSm) -> SubmitSm | None:
        return _RECEIPT_PLACEHOLDER


def tlv(message: Any, tag: int) -> Any:
    """The value of optional parameter ``tag`` on an aiosmpplib message, or None."""
    for p in getattr(message, "optional_params", None) or []:
        if p.tag == tag:
            return p.value
    return None


class CoalescingWriter(asyncio.StreamWriter):
    """The ESME's writer, sending what one loop iteration wrote in one send.

    aiosmpplib writes each PDU with its own send; under load (a submit and a receipt answer
    per message) those sends cost the worker as much as the rest of a message's handling.
    PDUs written in the same iteration of the loop now leave together, one iteration later at
    most; ``drain`` still waits when the transport's buffer is past its high-water mark.
    """

    def __init__(self, inner: asyncio.StreamWriter) -> None:
        super().__init__(
            inner.transport,
            inner._protocol,  # type: ignore[attr-defined]
            inner._reader,  # type: ignore[attr-defined]
            inner._loop,  # type: ignore[attr-defined]
        )
        # Kept: a StreamWriter that is garbage-collected closes its transport.
        self._inner = inner
        self._pending: list[bytes] = []
        self._scheduled = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._pending.append(bytes(data))
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)  # type: ignore[attr-defined]

    def _flush(self) -> None:
        self._scheduled = False
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self.transport.is_closing():
                super().write(data)

    async def drain(self) -> None:
        if len(self._pending) >= 64:
            self._flush()
        await super().drain()

    def write_eof(self) -> None:
        self._flush()
        super().write_eof()

    def close(self) -> None:
        self._flush()
        super().close()
