"""SMPP 3.4 PDUs the gateway's ESME sends and reads, framed and read without objects (pure).

Each SMS the gateway sends is four PDUs (its submit_sm, the SMSC's submit_sm_resp, the receipt
deliver_sm and our deliver_sm_resp), thousands a second under a job: these functions build and
read only what the gateway needs of them, with no per-field validation objects. The session's
own PDUs (bind_transceiver, enquire_link, unbind, generic_nack; sections 4.1, 4.2, 4.3, 4.11)
are here too, so ``gateway.sms.session`` only buffers, calls these, and dispatches.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

HEADER: Final = struct.Struct("!IIII")  # command_length, command_id, command_status, sequence
HEADER_LENGTH: Final = 16

RESPONSE: Final = 0x80000000  # the bit that makes a command id a response's
GENERIC_NACK: Final = 0x80000000
BIND_TRANSCEIVER: Final = 0x00000009
BIND_TRANSCEIVER_RESP: Final = 0x80000009
SUBMIT_SM: Final = 0x00000004
SUBMIT_SM_RESP: Final = 0x80000004
DELIVER_SM: Final = 0x00000005
DELIVER_SM_RESP: Final = 0x80000005
UNBIND: Final = 0x00000006
UNBIND_RESP: Final = 0x80000006
ENQUIRE_LINK: Final = 0x00000015
ENQUIRE_LINK_RESP: Final = 0x80000015
ALERT_NOTIFICATION: Final = 0x00000102  # the one request SMPP 3.4 answers with nothing

# For log lines; a command id not in this table is answered with generic_nack.
COMMAND_NAMES: Final = {
    GENERIC_NACK: "generic_nack",
    BIND_TRANSCEIVER: "bind_transceiver",
    BIND_TRANSCEIVER_RESP: "bind_transceiver_resp",
    SUBMIT_SM: "submit_sm",
    SUBMIT_SM_RESP: "submit_sm_resp",
    DELIVER_SM: "deliver_sm",
    DELIVER_SM_RESP: "deliver_sm_resp",
    UNBIND: "unbind",
    UNBIND_RESP: "unbind_resp",
    ENQUIRE_LINK: "enquire_link",
    ENQUIRE_LINK_RESP: "enquire_link_resp",
    ALERT_NOTIFICATION: "alert_notification",
}

# command_status values the ESME itself sends (the SMSC's are read in gateway.core.statuses).
ESME_ROK: Final = 0x00000000
ESME_RINVCMDID: Final = 0x00000003
ESME_RX_P_APPN: Final = 0x00000065  # "permanent error": a deliver_sm we can never read
INTERFACE_VERSION: Final = 0x34
TON_UNKNOWN: Final = 0x00
TON_INTERNATIONAL: Final = 0x01
TON_ALPHANUMERIC: Final = 0x05
NPI_ISDN: Final = 0x01
MAX_SEQUENCE: Final = 0x7FFFFFFF

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


def deliver_sm_resp(sequence: int, status: int = ESME_ROK) -> bytes:
    """The answer to a deliver_sm: message_id unused (a single NUL)."""
    return frame(DELIVER_SM_RESP, sequence, b"\0", status)


def bind_transceiver(sequence: int, system_id: str, password: str, system_type: str) -> bytes:
    """bind_transceiver for SMPP 3.4, any address range (addr_ton, addr_npi 0, range empty)."""
    return frame(
        BIND_TRANSCEIVER,
        sequence,
        b"".join(
            (
                _cstring(system_id, "system_id", 15),
                _cstring(password, "password", 8),
                _cstring(system_type, "system_type", 12),
                bytes((INTERFACE_VERSION, 0, 0)),
                b"\0",
            )
        ),
    )


def bind_transceiver_resp(sequence: int, system_id: str, status: int = ESME_ROK) -> bytes:
    """What an SMSC answers a bind with (tests and the raw SMSCs in them)."""
    return frame(BIND_TRANSCEIVER_RESP, sequence, _cstring(system_id, "system_id", 15), status)


def read_bind_resp(pdu: bytes) -> str:
    """The SMSC's system_id in a bind_transceiver_resp ('' when it sent no body, as it may
    when it refuses the bind). Raises BadPdu when it is not a C-octet string."""
    return read_submit_sm_resp(pdu)  # the same layout: one C-octet string, then TLVs


def enquire_link(sequence: int) -> bytes:
    return frame(ENQUIRE_LINK, sequence)


def unbind(sequence: int) -> bytes:
    return frame(UNBIND, sequence)


def response(command_id: int, sequence: int, status: int = ESME_ROK) -> bytes:
    """The body-less answer to ``command_id`` (enquire_link_resp, unbind_resp)."""
    return frame(command_id | RESPONSE, sequence, b"", status)


def generic_nack(sequence: int, status: int = ESME_RINVCMDID) -> bytes:
    """The answer to a PDU the ESME cannot take (section 4.3)."""
    return frame(GENERIC_NACK, sequence, b"", status)


def _cstring(value: str, name: str, limit: int) -> bytes:
    # The messages name the field, never its value (a number, a password): they reach logs.
    try:
        raw = value.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"{name} is not ASCII") from None
    if len(raw) > limit or b"\0" in raw:
        raise ValueError(f"{name} of {len(raw)} octets is not a valid SMPP field (at most {limit})")
    return raw + b"\0"


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
    return _cstring(number, f"{name} address", _MAX_ADDRESS)


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


# -- deliver_sm (section 4.6.1): receipts and mobile-originated messages ------------------------
_RECEIPTED_MESSAGE_ID: Final = 0x001E
_MESSAGE_STATE: Final = 0x0427
_MESSAGE_PAYLOAD: Final = 0x0424
_SAR_MSG_REF_NUM: Final = 0x020C
_SAR_TOTAL_SEGMENTS: Final = 0x020E
_SAR_SEGMENT_SEQNUM: Final = 0x020F


@dataclass(slots=True)  # not frozen: one per receipt, and a frozen __init__ costs twice as much
class DeliverSm:
    """What the gateway reads of a deliver_sm. ``short_message`` is the message_payload TLV's
    value when short_message is empty; ``sar`` is (reference, total, seq) from the SAR TLVs."""

    source: str
    destination: str
    esm_class: int
    data_coding: int
    short_message: bytes
    receipted_message_id: str | None = None
    message_state: int | None = None
    sar: tuple[int, int, int] | None = None

    @property
    def is_receipt(self) -> bool:
        """esm_class message type 1: an SMSC delivery receipt."""
        return (self.esm_class >> 2) & 0x0F == 1


def _field_end(pdu: bytes, at: int, limit: int) -> int:
    """The offset after the C-octet string at ``at`` (at most ``limit`` octets with its NUL)."""
    return pdu.index(b"\0", at, at + limit) + 1


def read_deliver_sm(pdu: bytes) -> DeliverSm | None:
    """A whole deliver_sm PDU (header included) read, or None when it is not well formed
    (cut short, a string without its NUL, stray octets after the TLVs)."""
    try:
        at = _field_end(pdu, HEADER_LENGTH, 6)  # service_type
        end = _field_end(pdu, at + 2, 21)  # source ton, npi, addr
        source = pdu[at + 2 : end - 1].decode("ascii")
        at = _field_end(pdu, end + 2, 21)  # destination ton, npi, addr
        destination = pdu[end + 2 : at - 1].decode("ascii")
        esm_class = pdu[at]
        at = _field_end(pdu, at + 3, 17)  # esm_class, protocol_id, priority; schedule time
        at = _field_end(pdu, at, 17)  # validity period
        data_coding, sm_length = pdu[at + 2], pdu[at + 4]
        at += 5
        if at + sm_length > len(pdu):
            return None
        raw = pdu[at : at + sm_length]
        at += sm_length
        rid: str | None = None
        state: int | None = None
        sar = [0, 0, 0]
        while at + 4 <= len(pdu):
            tag, length = int.from_bytes(pdu[at : at + 2]), int.from_bytes(pdu[at + 2 : at + 4])
            value = pdu[at + 4 : at + 4 + length]
            if len(value) != length:
                return None
            if tag == _RECEIPTED_MESSAGE_ID:
                rid = value.rstrip(b"\0").decode("ascii")
            elif tag == _MESSAGE_STATE and length == 1:
                state = value[0]
            elif tag == _MESSAGE_PAYLOAD and not raw:
                raw = value
            elif tag == _SAR_MSG_REF_NUM:
                sar[0] = int.from_bytes(value)
            elif tag == _SAR_TOTAL_SEGMENTS:
                sar[1] = int.from_bytes(value)
            elif tag == _SAR_SEGMENT_SEQNUM:
                sar[2] = int.from_bytes(value)
            at += 4 + length
        if at != len(pdu):
            return None
        concat = (sar[0], sar[1], sar[2]) if sar[1] else None
        return DeliverSm(source, destination, esm_class, data_coding, raw, rid, state, concat)
    except (ValueError, IndexError):
        return None
