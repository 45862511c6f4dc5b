"""Adapters that plug the gateway into aiosmpplib's ESME.

aiosmpplib pulls messages from a *broker*, reports every PDU to a *hook* and keeps
request/response pairs in a *correlator*. Here the broker hands out parts from the sender's
window, the hook forwards outcomes to the sender, and the correlator keeps only in-flight
requests in memory: receipts are correlated in Redis by the sender, so they survive restarts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiosmpplib import (
    ESME,
    AbstractBroker,
    AbstractCorrelator,
    AbstractHook,
    AbstractRateLimiter,
    SmppMessage,
    SubmitSm,
)
from aiosmpplib.correlator import SegmentStatus
from aiosmpplib.protocol import DeliverSm, EnquireLink, PduHeader, SmppCommand
from aiosmpplib.state import COMMAND_RESPONSE_MAP

from gateway.sms.receipts import ReceiptFields, read_receipt_pdu
from gateway.store.ratelimit import SharedRate

# Receipts are matched by the sender in Redis; aiosmpplib only needs *a* SubmitSm back so that
# it hands the receipt to the hook instead of logging it as uncorrelated.
_RECEIPT_PLACEHOLDER = SubmitSm(short_message="-", log_id="receipt")


class SenderEvents(Protocol):
    async def next_submit(self) -> SubmitSm: ...
    async def on_sending(self, message: SmppMessage) -> None: ...
    async def on_received(self, message: SmppMessage | None, pdu: bytes) -> None: ...
    async def on_send_error(self, message: SmppMessage, error: Exception) -> None: ...


@dataclass
class ReceiptPdu(SmppMessage):
    """A receipt deliver_sm as the gateway reads it: its fields, nothing decoded beyond."""

    fields: ReceiptFields | None = None

    @property
    def smpp_command(self) -> SmppCommand:
        return SmppCommand.DELIVER_SM


class GatewayEsme(ESME):
    """aiosmpplib's ESME, with what a gateway under load needs changed:

    - Receipts are read the short way. The general parser builds a full message for each
      (every field decoded, the text parsed with ``strptime``) and looks up a stored request
      for it: a fifth of a bulk worker's time. The gateway needs three fields and matches
      receipts in Redis; anything else (MO, a malformed PDU) still goes to the library.
    - Responses never wait for room in the socket's buffer. The library's receive loop
      awaited ``drain()`` after each deliver_sm_resp: with the buffer full of submit_sm, an
      SMSC that finishes writing its receipts before it reads again would wait for us while
      we waited for it. A response is written and the loop reads on; submit_sm still waits
      for room (that is backpressure).
    - A lighter keepalive, writers closed on reconnect and stop, and no failure when a PDU
      meets a session that has just closed (see each method).
    """

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
                if self._is_shutting_down or self._session_state != self.bind_mode.session_state:
                    return
                if self._data_received.is_set():
                    continue
                async with asyncio.timeout(self.socket_timeout):
                    await self._send_data(EnquireLink())
                    await self._data_received.wait()
        except TimeoutError:
            self._logger.error("Timed out while waiting for ENQUIRE_LINK response")

    async def _send_data(self, smpp_message: SmppMessage) -> None:
        if self._writer is None:
            # The session closed (a stop, a lost link) while this PDU waited for the rate
            # limiter. The sender still holds its part and sends it on the next session, or
            # leaves its entry pending for the next worker; this task is ended with the
            # session. Failing here instead made every orderly stop log an error.
            await asyncio.get_running_loop().create_future()
        if smpp_message.smpp_command in COMMAND_RESPONSE_MAP:
            await super()._send_data(smpp_message)  # a request: waiting for room is backpressure
            return
        pdu = smpp_message.pdu()
        await self.hook.sending(smpp_message, pdu, self.client_id)
        self._writer.write(pdu)  # a response: small, one per request the SMSC sent

    async def _handle_request(self, pdu: bytes, header: PduHeader) -> SmppMessage | None:
        if header.smpp_command == SmppCommand.DELIVER_SM:
            fields = read_receipt_pdu(pdu)
            if fields is not None:
                return ReceiptPdu(sequence_num=header.sequence_num, fields=fields)
        return await super()._handle_request(pdu, header)


class WindowBroker(AbstractBroker):
    """Gives the ESME the next part once the window has room (the sender decides)."""

    def __init__(self, next_submit: Callable[[], Awaitable[SubmitSm]]) -> None:
        self._next = next_submit

    async def enqueue(self, message: SmppMessage) -> None:
        raise NotImplementedError("the gateway enqueues through Redis Streams")

    async def dequeue(self) -> SmppMessage:
        return await self._next()


class ForwardingHook(AbstractHook):
    def __init__(self, events: SenderEvents) -> None:
        self._events = events

    async def sending(self, smpp_message: SmppMessage, pdu: bytes, client_id: str) -> None:
        await self._events.on_sending(smpp_message)

    async def received(self, smpp_message: SmppMessage | None, pdu: bytes, client_id: str) -> None:
        await self._events.on_received(smpp_message, pdu)

    async def send_error(self, smpp_message: SmppMessage, error: Exception, client_id: str) -> None:
        await self._events.on_send_error(smpp_message, error)


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
