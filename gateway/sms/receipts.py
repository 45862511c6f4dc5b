"""Delivery receipts (pure): the SMPP 3.4 Appendix B text and the receipt TLVs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from gateway.core.statuses import NoticeStatus
from gateway.sms.pdu import DeliverSm, read_deliver_sm

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


# -- a deliver_sm that is a receipt ---------------------------------------------------------
_UCS2: Final = 0x08


@dataclass(frozen=True, slots=True)
class ReceiptFields:
    """What a receipt deliver_sm carries: its text and the two receipt TLVs, if present."""

    text: str
    receipted_message_id: str | None
    message_state: int | None
    source: str = ""  # the receipt's source_addr: the number the message was sent to


def receipt_fields(deliver: DeliverSm) -> ReceiptFields:
    """The receipt fields of a deliver_sm already read (``deliver.is_receipt``)."""
    coding = "utf-16-be" if deliver.data_coding == _UCS2 else "latin-1"
    text = deliver.short_message.decode(coding, "replace")
    return ReceiptFields(text, deliver.receipted_message_id, deliver.message_state, deliver.source)


def read_receipt_pdu(pdu: bytes) -> ReceiptFields | None:
    """The receipt fields of a whole deliver_sm PDU (header included); None when the PDU is
    not a receipt (esm_class) or is not well formed."""
    deliver = read_deliver_sm(pdu)
    if deliver is None or not deliver.is_receipt:
        return None
    return receipt_fields(deliver)
