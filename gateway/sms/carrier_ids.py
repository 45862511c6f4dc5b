"""Carrier message ids as receipts write them (pure).

A carrier answers submit_sm_resp with an id and later names it in the receipt, not always
the same way: hex in the one and decimal in the other, another case, leading zeros. Per link
(``GATEWAY_SMPP_<LINK>_RECEIPT_ID``) the mapping carrier id -> part is stored under one
canonical form, and a receipt's id is turned into the canonical forms it may stand for, best
first; the script tries them in one call (no round trip per form).

- ``exact``: the id as given, nothing else.
- ``auto``: case-folded, without leading zeros; then the receipt's id read as decimal written
  in hex, and as hex written in decimal.
- ``hex``: the submit_sm_resp ids are hex; receipts may give them in decimal.
- ``decimal``: the submit_sm_resp ids are decimal; receipts may give them in hex.
Carriers whose ids differ by case alone need ``exact``.
"""

from __future__ import annotations

import re
from typing import Final

from gateway.core.phones import mask
from gateway.settings.smpp_links import ReceiptId

_HEX: Final = re.compile(r"[0-9A-Fa-f]+")
# Longer digit strings are no carrier's number (and int() of them costs).
_MAX_DIGITS: Final = 40


def _fold(message_id: str) -> str:
    return message_id.strip().lower().lstrip("0") or "0"


def stored_form(message_id: str, mode: ReceiptId) -> str:
    """The form a submit_sm_resp id is stored under."""
    return message_id if mode == "exact" else _fold(message_id)


def receipt_forms(message_id: str, mode: ReceiptId) -> list[str]:
    """The stored forms a receipt's id may match, best first (at least one)."""
    if mode == "exact":
        return [message_id]
    forms = [_fold(message_id)]
    s = message_id.strip()
    if len(s) <= _MAX_DIGITS:
        if mode in ("auto", "hex") and s.isdigit():
            forms.append(_fold(format(int(s), "x")))
        if mode in ("auto", "decimal") and _HEX.fullmatch(s):
            forms.append(_fold(str(int(s, 16))))
    return list(dict.fromkeys(forms))


def recipient_tail(number: str) -> str:
    """What a carrier id's mapping and a receipt both know of the handset: its last eight
    digits (a receipt's source_addr may carry 86, +86 or nothing before them); '' if none.
    A receipt id read in another base is trusted only when these agree: sequential ids make
    one message's id in decimal another's in hex."""
    digits = "".join(c for c in number if c.isdigit())
    return digits[-8:] if len(digits) >= 8 else ""


def mask_id(message_id: str) -> str:
    """A carrier id for logs: a long run of digits could be a phone number."""
    return mask(message_id) if message_id.isdigit() and len(message_id) >= 8 else message_id
