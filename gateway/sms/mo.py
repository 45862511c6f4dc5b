"""Mobile-originated SMS read from a deliver_sm (pure): its text, and its place among parts."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.sms.encoding import decode_payload
from gateway.sms.pdu import DeliverSm


@dataclass(frozen=True, slots=True)
class MoMessage:
    source: str
    destination: str
    text: str
    # (reference, total, seq) of one part of a concatenated message (UDH or SAR TLVs);
    # None for a whole message.
    concat: tuple[int, int, int] | None = None


def read_mo(deliver: DeliverSm) -> MoMessage:
    """GSM 7-bit, UCS-2 or 8-bit text, with its UDH (if any) taken off."""
    text, concat = decode_payload(deliver.short_message, deliver.data_coding, deliver.esm_class)
    concat = concat or deliver.sar
    if concat is not None and not (concat[1] > 1 and 1 <= concat[2] <= concat[1]):
        concat = None  # "1 of 1", or numbering no reassembly can use: taken as it is
    return MoMessage(deliver.source, deliver.destination, text, concat)
