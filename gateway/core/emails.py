"""Email addresses (pure): the check recipients pass, and how they are shown masked."""

from __future__ import annotations

import re
from typing import Final

MAX_LENGTH: Final = 254
_EMAIL: Final = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251})\.[A-Za-z]{2,}$")


def is_email(text: str) -> bool:
    return len(text) <= MAX_LENGTH and bool(_EMAIL.match(text))


def mask_email(address: str) -> str:
    """``zhang.san@example.cn`` -> ``z***@example.cn``: the domain stays, the person does not."""
    local, at, domain = address.rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"
