"""Secrets sealed at rest (pure): AES-256-GCM under a key from the environment.

Callback-signing secrets are stored sealed, so a copy of Redis alone cannot forge webhooks.
``GATEWAY_SECRET_KEY`` holds one or more comma-separated passphrases: the first seals, each
of them opens (to change it, put the new one first, run ``gateway keys seal-secrets``, then
drop the old one). Each passphrase is stretched to a 256-bit key with HKDF. A sealed value is
bound to the record it belongs to (the API key's id is the associated data), so it cannot be
moved onto another key. Values stored before sealing existed read as they are.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "enc1:"
_NONCE = 12


class SealedUnreadable(ValueError):
    """A sealed value that none of the configured keys opens."""


def _derive(passphrase: str) -> AESGCM:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"notice-gateway secrets v1")
    return AESGCM(hkdf.derive(passphrase.encode()))


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)


class SecretBox:
    def __init__(self, passphrases: str) -> None:
        keys = [p.strip() for p in passphrases.split(",") if p.strip()]
        if not keys:
            raise ValueError("GATEWAY_SECRET_KEY is empty")
        self._keys = [_derive(k) for k in keys]

    def seal(self, bound_to: str, plaintext: str) -> str:
        nonce = os.urandom(_NONCE)
        sealed = self._keys[0].encrypt(nonce, plaintext.encode(), bound_to.encode())
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def is_current(self, bound_to: str, stored: str) -> bool:
        """Sealed under the first key (the one that seals now)."""
        try:
            raw = base64.urlsafe_b64decode(stored[len(PREFIX) :])
            self._keys[0].decrypt(raw[:_NONCE], raw[_NONCE:], bound_to.encode())
        except (ValueError, binascii.Error, InvalidTag):
            return False
        return True

    def open(self, bound_to: str, stored: str) -> str:
        """The secret; a value stored before sealing (plain text) comes back as it is."""
        if not is_sealed(stored):
            return stored
        try:
            raw = base64.urlsafe_b64decode(stored[len(PREFIX) :])
        except (ValueError, binascii.Error):
            raise SealedUnreadable("a sealed secret is not valid base64") from None
        for key in self._keys:
            try:
                return key.decrypt(raw[:_NONCE], raw[_NONCE:], bound_to.encode()).decode()
            except InvalidTag:
                continue
        raise SealedUnreadable("no key in GATEWAY_SECRET_KEY opens this sealed secret")
