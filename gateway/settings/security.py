"""Secrets that protect what Redis holds: a copy of Redis alone must not give away a pending
binding code or let anyone forge a webhook."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from gateway.settings.base import config

# Public (this repository): GATEWAY_ENV=production refuses them.
SHIPPED_SECRET_KEY = "local-secret-key"  # noqa: S105
SHIPPED_CODE_PEPPER = "local-code-pepper"


class SecuritySettings(BaseSettings):
    model_config = config()
    # Seals callback-signing secrets at rest (AES-256-GCM). Comma-separated: the first seals,
    # each opens, so a new one can be put first while the old still reads.
    secret_key: SecretStr = Field(SecretStr(SHIPPED_SECRET_KEY), min_length=1)
    # The server-side key of binding codes' hashes: without it a stored hash cannot be
    # brute-forced (a million codes take a second otherwise).
    code_pepper: SecretStr = Field(SecretStr(SHIPPED_CODE_PEPPER), min_length=1)
