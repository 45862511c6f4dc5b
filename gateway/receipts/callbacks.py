"""Callback URL policy (pure): only hosts on the API key's allow-list, no SSRF.

A callback host must be named by the key's allow-list, either exactly or by a ``*.suffix``
wildcard. Loopback, private, link-local and other special addresses are refused unless the
allow-list names that exact address (a test receiver on 127.0.0.1, an internal system on
10.0.0.5): a wildcard never opens them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048


class CallbackRejected(ValueError):
    def __init__(self, code: str, message: str, host: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.host = host  # for callback_host_not_allowed: the host to put on the allow-list


def _special_ip(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost" or host.endswith((".localhost", ".local", ".internal"))
    return not ip.is_global


def check_callback_url(url: str, allowed_hosts: Iterable[str]) -> str:
    """Return the normalised URL or raise ``CallbackRejected``."""
    if not isinstance(url, str) or not url:
        raise CallbackRejected("invalid_callback_url", "callback_url must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise CallbackRejected("invalid_callback_url", "callback_url is too long")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise CallbackRejected("invalid_callback_url", f"callback_url: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise CallbackRejected("invalid_callback_url", "callback_url must be http or https")
    if parts.username or parts.password:
        raise CallbackRejected("invalid_callback_url", "callback_url must not carry credentials")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise CallbackRejected("invalid_callback_url", "callback_url has no host")
    if port == 0:
        raise CallbackRejected("invalid_callback_url", "callback_url has an invalid port")
    allowed = [h.strip().lower().rstrip(".") for h in allowed_hosts if h.strip()]
    exact = host in allowed
    if _special_ip(host) and not exact:
        raise CallbackRejected(
            "callback_host_not_allowed",
            f"callback host {host} is a local or private address not named by this key",
            host,
        )
    if not exact and not any(
        a.startswith("*.") and host.endswith(a[1:]) and host != a[2:] for a in allowed
    ):
        raise CallbackRejected(
            "callback_host_not_allowed",
            f"callback host {host} is not on this key's allow-list",
            host,
        )
    return url
