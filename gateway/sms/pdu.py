"""The PDUs of a message's round trip, framed and read without message objects (pure).

Each SMS the gateway sends is four PDUs: its submit_sm, the SMSC's submit_sm_resp, the receipt
deliver_sm and our deliver_sm_resp. aiosmpplib builds, validates and logs a dataclass for each
of them; under a bulk job that was a third of a worker's time. These functions do only what
the gateway needs of those four (SMPP 3.4 sections 4.4, 4.6 and 3.2). Every other PDU (binds,
enquire_link, unbind, MO messages, anything unusual) is still left to the library.
"""

from __future__ import annotations

import struct
from typing import Final

HEADER: Final = struct.Struct("!IIII")  # command_length, command_id, command_status, sequence
HEADER_LENGTH: Final = 16

GENERIC_NACK: Final = 0x80000000
SUBMIT_SM: Final = 0x00000004
SUBMIT_SM_RESP: Final = 0x80000004
DELIVER_SM: Final = 0x00000005
DELIVER_SM_RESP: Final = 0x80000005

# SMPP sets no limit on command_length; a message_payload TLV holds at most 64 KB. A length
# past this is a peer out of step (or not speaking SMPP), and the session is dropped.
MAX_PDU_LENGTH: Final = 70_000
_MAX_ADDRESS: Final = 20  # source_addr / destination_addr, without the NUL
_MAX_SHORT_MESSAGE: Final = 254


class BadPdu(ValueError):
    """Bytes that cannot be an SMPP PDU; the session that sent them is not usable."""


def frame(command_id: int, sequence: int, body: bytes = b"", status: int = 0) -> bytes:
    """A whole PDU: the header, then ``body``."""
    return HEADER.pack(HEADER_LENGTH + len(body), command_id, status, sequence) + body


def deliver_sm_resp(sequence: int) -> bytes:
    """The answer to a deliver_sm: success, message_id unused (a single NUL)."""
    return frame(DELIVER_SM_RESP, sequence, b"\0")


def submit_sm_source(source: str, ton: int, npi: int) -> bytes:
    """The part of a submit_sm body that is the same for every message of a bind:
    service_type (empty), source_addr_ton, source_addr_npi and source_addr."""
    return b"\0" + bytes((ton, npi)) + _address(source, "source")


def submit_sm_body(
    source: bytes,
    destination: str,
    dest_ton: int,
    dest_npi: int,
    esm_class: int,
    data_coding: int,
    short_message: bytes,
    registered_delivery: int = 1,
) -> bytes:
    """A submit_sm body (``source`` from ``submit_sm_source``), the same octets aiosmpplib
    writes for a pre-encoded message: protocol_id, priority_flag, schedule_delivery_time,
    validity_period, replace_if_present_flag and sm_default_msg_id all zero or empty."""
    if len(short_message) > _MAX_SHORT_MESSAGE:
        raise ValueError(f"short_message of {len(short_message)} octets (at most 254)")
    return b"".join(
        (
            source,
            bytes((dest_ton, dest_npi)),
            _address(destination, "destination"),
            bytes((esm_class, 0, 0, 0, 0, registered_delivery, 0, data_coding, 0)),
            bytes((len(short_message),)),
            short_message,
        )
    )


def _address(number: str, name: str) -> bytes:
    # The messages name no number: they end up in logs.
    try:
        raw = number.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"{name} address is not ASCII") from None
    if len(raw) > _MAX_ADDRESS or b"\0" in raw:
        raise ValueError(f"{name} address of {len(raw)} octets is not a valid SMPP address")
    return raw + b"\0"


def pdu_length(buf: bytes | bytearray, at: int) -> int:
    """The command_length of the PDU whose header starts at ``at`` (16 octets must be there).

    Raises BadPdu for a length no PDU can have: shorter than its header, or past
    ``MAX_PDU_LENGTH``."""
    (length,) = struct.unpack_from("!I", buf, at)
    if length < HEADER_LENGTH or length > MAX_PDU_LENGTH:
        raise BadPdu(f"PDU length {length}")
    return int(length)


def read_submit_sm_resp(pdu: bytes) -> str:
    """The message_id of a submit_sm_resp ('' when the SMSC sent no body, as it may when it
    refuses). Raises BadPdu when the id is not an ASCII C-octet string."""
    body = pdu[HEADER_LENGTH:]
    if not body:
        return ""
    end = body.find(b"\0")
    if end < 0 or end > 64:
        raise BadPdu("submit_sm_resp message_id is not a C-octet string of at most 65 octets")
    try:
        return body[:end].decode("ascii")
    except UnicodeDecodeError:
        raise BadPdu("submit_sm_resp message_id is not ASCII") from None
