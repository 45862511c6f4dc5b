"""Helpers for SMPP tests: a bare scriptable SMSC, a do-nothing message path, a gateway on a
given SMSC port, and notices sent through the API."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from typing import Self

from aiosmpplib import PhoneNumber
from aiosmpplib.protocol import DeliverSm

from gateway.sms.message_path import Answer, MessagePath, OutgoingSubmit
from gateway.sms.mo import MoMessage
from gateway.sms.receipts import ReceiptFields, format_receipt
from gateway.sms.session import Rate, SessionSettings, SmppSession
from tests.conftest import Gateway, make_settings


async def send_notices(gw: Gateway, n: int, start: int = 0, **extra: str) -> list[str]:
    # A callback receiver is allowed by its exact address and port.
    hook = extra.get("callback_url", "")
    key = await gw.add_key("command_center", [hook.split("/")[2]] if hook else [])
    ids = []
    for i in range(start, start + n):
        code, body, _ = await gw.request(
            "POST", "/v1/messages", key, {"to": f"1390000{i:04d}", "text": f"通知{i}", **extra}
        )
        assert code == 202, body
        ids.append(body["id"])
    return ids


@contextlib.asynccontextmanager
async def gateway_on(redis_server: str, prefix: str, port: int) -> AsyncIterator[Gateway]:
    """A gateway (API and worker) bound to the SMSC on ``port``, with an admin key."""
    gw = Gateway(make_settings(redis_server, prefix, port))
    await gw.start()
    try:
        gw._admin = await gw.add_key("admin")
        yield gw
    finally:
        await gw.close()


class RawSmsc:
    """A bare SMPP server on an ephemeral port: answers bind_transceiver and unbind, records
    every PDU it receives (command id, status, sequence), and leaves the others to
    ``answer``, which returns True to hang up."""

    def __init__(self) -> None:
        self.pdus: list[tuple[int, int, int]] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    @property
    def commands(self) -> list[int]:
        return [command for command, _, _ in self.pdus]

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    @staticmethod
    def respond(writer: asyncio.StreamWriter, command: int, seq: int, body: bytes = b"") -> None:
        writer.write(struct.pack("!IIII", 16 + len(body), command | 0x80000000, 0, seq) + body)

    def bound(self, writer: asyncio.StreamWriter) -> None:
        """Called after each bind is answered."""

    def answer(self, writer: asyncio.StreamWriter, command: int, seq: int) -> bool | None:
        """What to do with a PDU other than a bind or an unbind; True to hang up."""
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                length, command, status, seq = struct.unpack("!IIII", await reader.readexactly(16))
                await reader.readexactly(length - 16)
                self.pdus.append((command, status, seq))
                if command == 0x09:
                    self.respond(writer, command, seq, b"smsc\0")
                    self.bound(writer)
                elif command == 0x06:  # unbind: answered, then the SMSC hangs up
                    self.respond(writer, command, seq)
                    break
                elif self.answer(writer, command, seq):
                    break
        writer.close()


def receipt_pdu(message_id: str, seq: int, text: str | None = None) -> bytes:
    """A text-only receipt deliver_sm for ``message_id``."""
    return DeliverSm(
        short_message=text or format_receipt(message_id, "DELIVRD"),
        source=PhoneNumber("8613900000000"),
        destination=PhoneNumber("12122"),
        esm_class=0x04,
        sequence_num=seq,
    ).pdu()


class IdlePath:
    """A message path with nothing to send (the session's own duties only)."""

    def __init__(self) -> None:
        self.binds = 0

    async def next_submit(self) -> OutgoingSubmit:
        await asyncio.get_running_loop().create_future()
        raise AssertionError("never")

    def submit_written(self, sequence: int, token: str) -> None: ...

    async def submit_answered(self, sequence: int, status: int, message_id: str) -> None: ...

    async def submit_nacked(self, sequence: int) -> bool:
        return False

    def receipt(self, fields: ReceiptFields, sequence: int, answer: Answer) -> None:
        answer(sequence)

    async def mo_received(self, mo: MoMessage) -> bool:
        return True

    def on_new_session(self) -> None:
        self.binds += 1


def session_on(
    port: int, path: MessagePath, rate: Rate | None = None, unanswered_max: int = 5000
) -> SmppSession:
    settings = SessionSettings(
        "127.0.0.1",
        port,
        "t",
        "t",
        enquire_link_interval=0.2,
        response_timeout=0.5,
        reconnect_min=0.1,
        reconnect_max=0.2,
        unanswered_max=unanswered_max,
    )
    return SmppSession(settings, path, rate)
