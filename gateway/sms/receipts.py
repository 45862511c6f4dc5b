"""Delivery receipts (pure): the SMPP 3.4 Appendix B text and the receipt TLVs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from gateway.core.statuses import NoticeStatus

# message_state TLV values (SMPP 3.4 section 5.2.28) and the receipt text's stat field.
_MESSAGE_STATE: Final = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}
STAT_TO_STATUS: Final = {
    "DELIVRD": NoticeStatus.DELIVERED,
    "UNDELIV": NoticeStatus.UNDELIVERABLE,
    "EXPIRED": NoticeStatus.EXPIRED,
    "REJECTD": NoticeStatus.REJECTED,
    "DELETED": NoticeStatus.UNDELIVERABLE,
    "UNKNOWN": NoticeStatus.UNDELIVERABLE,
}
# Receipts that are not final (the message is still on its way).
NON_FINAL_STATS: Final = frozenset({"ENROUTE", "ACCEPTD"})

_NAMES = r"id|sub|dlvrd|submit date|done date|stat|err|text"
_FIELD = re.compile(rf"(?i)\b({_NAMES}):(.*?)(?=\s+(?:{_NAMES}):|$)")
_ERR = re.compile(r"(?i)\berr:(\S*)")
_DONE = re.compile(r"(?i)\bdone date:(\d*)")


class BadReceipt(ValueError):
    """The deliver_sm claims to be a receipt but has no message id or state."""


@dataclass(frozen=True, slots=True)
class Receipt:
    message_id: str
    stat: str
    err: str
    text: str = ""

    @property
    def final(self) -> bool:
        return self.stat not in NON_FINAL_STATS

    @property
    def status(self) -> NoticeStatus:
        """The notice status this receipt leads to."""
        return STAT_TO_STATUS.get(self.stat, NoticeStatus.UNDELIVERABLE)

    @property
    def done_at(self) -> datetime | None:
        """The text's done date (read only when asked: receipts are a hot path)."""
        m = _DONE.search(self.text)
        done = m.group(1) if m else ""
        fmt = {10: "%y%m%d%H%M", 12: "%y%m%d%H%M%S"}.get(len(done))
        if not fmt:
            return None
        try:
            return datetime.strptime(done, fmt)
        except ValueError:
            return None


def format_receipt(
    message_id: str,
    stat: str,
    err: int = 0,
    submitted: datetime | str | None = None,
    done: datetime | str | None = None,
    text: str = "",
    sub: int = 1,
) -> str:
    """The receipt text an SMSC sends (Appendix B)."""
    s = submitted.strftime("%y%m%d%H%M") if isinstance(submitted, datetime) else submitted or ""
    d = done.strftime("%y%m%d%H%M") if isinstance(done, datetime) else done or ""
    dlvrd = sub if stat == "DELIVRD" else 0
    return (
        f"id:{message_id} sub:{sub:03d} dlvrd:{dlvrd:03d} submit date:{s} done date:{d} "
        f"stat:{stat} err:{err:03d} text:{text[:20]}"
    )


def parse_receipt(
    text: str, receipted_message_id: str | None = None, message_state: int | None = None
) -> Receipt:
    """Parse receipt text; the TLVs, when present, take precedence over the text."""
    text = text or ""
    stat = _MESSAGE_STATE.get(message_state or 0, "")
    if receipted_message_id and stat:
        # Both TLVs: only the error code is read from the text.
        m = _ERR.search(text)
        return Receipt(receipted_message_id.strip(), stat, m.group(1) if m else "000", text)
    fields = {m.group(1).lower(): m.group(2).strip() for m in _FIELD.finditer(text)}
    message_id = (receipted_message_id or fields.get("id") or "").strip()
    stat = stat or fields.get("stat", "").upper()
    if not message_id:
        raise BadReceipt("receipt without a message id")
    if not stat:
        raise BadReceipt(f"receipt for {message_id} without a state")
    return Receipt(message_id, stat, fields.get("err", "000"), text)


# -- a deliver_sm that is a receipt, read straight from the PDU -------------------------------
_RECEIPTED_MESSAGE_ID: Final = 0x001E
_MESSAGE_STATE_TAG: Final = 0x0427
_MESSAGE_PAYLOAD: Final = 0x0424
_UCS2: Final = 0x08


@dataclass(frozen=True, slots=True)
class ReceiptFields:
    """What a receipt deliver_sm carries: its text and the two receipt TLVs, if present."""

    text: str
    receipted_message_id: str | None
    message_state: int | None


def _cstring(pdu: bytes, at: int, limit: int) -> int:
    """The offset after the C-octet string at ``at`` (at most ``limit`` octets with its NUL)."""
    end = pdu.index(b"\0", at, at + limit)
    return end + 1


def read_receipt_pdu(pdu: bytes) -> ReceiptFields | None:
    """The receipt fields of a whole deliver_sm PDU (header included), without building a
    message object: receipts come once per message sent, and the general parser decodes and
    validates every field of them. None when the PDU is not a receipt (esm_class) or is not
    well formed; the caller then leaves it to the general parser, which answers bad PDUs."""
    try:
        at = _cstring(pdu, 16, 6)  # service_type
        at = _cstring(pdu, at + 2, 21)  # source ton, npi, addr
        at = _cstring(pdu, at + 2, 21)  # destination ton, npi, addr
        esm_class = pdu[at]
        if (esm_class >> 2) & 0x0F != 1:
            return None
        at = _cstring(pdu, at + 3, 17)  # esm_class, protocol_id, priority; schedule time
        at = _cstring(pdu, at, 17)  # validity period
        data_coding, sm_length = pdu[at + 2], pdu[at + 4]
        at += 5
        if at + sm_length > len(pdu):
            return None
        raw = pdu[at : at + sm_length]
        at += sm_length
        rid: str | None = None
        state: int | None = None
        while at + 4 <= len(pdu):
            tag, length = int.from_bytes(pdu[at : at + 2]), int.from_bytes(pdu[at + 2 : at + 4])
            value = pdu[at + 4 : at + 4 + length]
            if len(value) != length:
                return None
            if tag == _RECEIPTED_MESSAGE_ID:
                rid = value.rstrip(b"\0").decode("ascii")
            elif tag == _MESSAGE_STATE_TAG and length == 1:
                state = value[0]
            elif tag == _MESSAGE_PAYLOAD and not raw:
                raw = value
            at += 4 + length
        if at != len(pdu):
            return None
        text = raw.decode("utf-16-be" if data_coding == _UCS2 else "latin-1", "replace")
        return ReceiptFields(text, rid, state)
    except (ValueError, IndexError):
        return None
