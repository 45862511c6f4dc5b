"""What an accident reporter's reply SMS says: 1 settled between the parties, 2 send an
officer, anything else is kept as it was written."""

from __future__ import annotations

import unicodedata
from enum import StrEnum


class Reply(StrEnum):
    SELF_SETTLED = "self_settled"
    OFFICER_REQUESTED = "officer_requested"
    OTHER = "other"


# Quotes, brackets and punctuation a handset or a person puts around the digit.
_WRAPPING = " \t\r\n.。,，;；:：!！?？'\"“”‘’「」『』()（）[]【】<>《》"
_DIGITS = {"1": Reply.SELF_SETTLED, "2": Reply.OFFICER_REQUESTED}


def classify(text: str) -> Reply:
    """``1``, ``１``, ``「１」``, `` 2 `` ... are the menu's answers; the rest is ``other``."""
    norm = unicodedata.normalize("NFKC", text or "")
    norm = "".join(norm.split())  # spaces anywhere, full-width ones included
    return _DIGITS.get(norm.strip(_WRAPPING), Reply.OTHER)
