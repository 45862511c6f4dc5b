"""Webhook signatures (pure): HMAC-SHA256 over ``timestamp + "." + raw body``."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Gateway-Signature"
TIMESTAMP_HEADER = "X-Gateway-Timestamp"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The value of ``X-Gateway-Signature`` for this body."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """Constant-time check of a received signature (for receivers, and our tests)."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)
