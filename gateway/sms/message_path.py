"""What the SMPP session and the sender say to each other about a message's round trip."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

from gateway.sms.mo import MoMessage
from gateway.sms.receipts import ReceiptFields

Answer = Callable[[int], None]
"""Sends deliver_sm_resp for the deliver_sm of that sequence number (on its own connection)."""


class OutgoingSubmit(NamedTuple):
    """A submit_sm ready to go but for its sequence number: the sender's token for the part,
    and the PDU body (``pdu.submit_sm_body``)."""

    token: str
    body: bytes


class MessagePath(Protocol):
    """The sender's side of a message's round trip, called by the session."""

    async def next_submit(self) -> OutgoingSubmit:
        """The next part to send, once the window has room."""
        ...

    def submit_written(self, sequence: int, token: str) -> None: ...

    async def submit_answered(self, sequence: int, status: int, message_id: str) -> None: ...

    async def submit_nacked(self, sequence: int) -> bool:
        """A generic_nack: True if it answered one of the sender's submit_sm."""
        ...

    def receipt(self, fields: ReceiptFields, sequence: int, answer: Answer) -> None:
        """A receipt: store it, then ``answer(sequence)`` (at once if there is nothing to
        store); never answer what is not stored."""
        ...

    async def mo_received(self, mo: MoMessage) -> bool:
        """An MO message (or one part of one): True once stored, False if it never will be
        by this process (it is then not answered)."""
        ...

    def on_new_session(self) -> None:
        """A bind succeeded: what was in flight on the previous session is sent again."""
        ...
