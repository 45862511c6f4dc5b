"""One TCP connection of the SMPP session: its coalescing writer and its per-connection state."""

from __future__ import annotations

import asyncio
import contextlib
import socket

from gateway.sms import pdu


class Outbox:
    """The connection's writer: PDUs written in one iteration of the loop leave in one send.

    Under load a submit_sm and a deliver_sm_resp go out per message; one send each cost the
    worker as much as the rest of a message's handling. ``write`` never waits (answers must
    not wait for buffer room: an SMSC that finishes writing before it reads again would wait
    for us while we waited for it); ``drain`` waits while the transport's buffer is past its
    high-water mark, which is the submits' back-pressure."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._transport = writer.transport
        self._loop = asyncio.get_running_loop()
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    async def drain(self) -> None:
        if len(self._pending) >= 64:
            self._flush()
        await self._writer.drain()

    def close(self) -> None:
        self._flush()
        self._writer.close()


class Connection:
    """What the session's three loops share about one connection."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, unanswered_max: int
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.out = Outbox(writer)
        self.open = True
        self.heard = False  # a PDU arrived since the keeper last looked
        self.probe: asyncio.Event | None = None  # set on the next read while probing
        self.paused = False  # not reading on purpose (back-pressure): not a silent link
        self.peer_unbind = asyncio.Event()  # the SMSC sent unbind: no submits, answers go on
        self.unbind_answered = asyncio.Event()  # our own unbind's answer came
        self.dropped = ""  # why we closed it, when we did
        self.unknown = 0  # PDUs answered with generic_nack
        self.unanswered = 0  # deliver_sm read and not yet answered
        self.room = asyncio.Event()  # set when unanswered fell below the budget
        self._max = unanswered_max
        self._sequence = 0

    def next_sequence(self) -> int:
        self._sequence = self._sequence % pdu.MAX_SEQUENCE + 1
        return self._sequence

    def answer(self, sequence: int) -> None:
        """deliver_sm_resp for a deliver_sm now stored; nothing once the connection is gone
        (the SMSC sends what it has no answer for again)."""
        if not self.open:
            return
        self.out.write(pdu.deliver_sm_resp(sequence))
        self.unanswered -= 1
        if self.unanswered < self._max:
            self.room.set()

    @property
    def peer_unbound(self) -> bool:
        return self.peer_unbind.is_set()

    @property
    def full(self) -> bool:
        return self.unanswered >= self._max

    def quick_ack(self) -> None:
        """ACK what the SMSC sent at once. SMPP trades small PDUs both ways; with delayed ACKs
        here and Nagle on an SMSC that does not set TCP_NODELAY, the second of two
        back-to-back responses waited 40 ms for our ACK. Linux clears TCP_QUICKACK on its
        own, so it is set again after each read."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None and hasattr(socket, "TCP_QUICKACK"):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)

    def close(self) -> None:
        if self.open:
            self.open = False
            self.out.close()
