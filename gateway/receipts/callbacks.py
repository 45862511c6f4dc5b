"""Callback URL policy (pure): only hosts on the API key's allow-list, no SSRF.

A callback host must be named by the key's allow-list, either exactly or by a ``*.suffix``
wildcard. Loopback, private, link-local and other special addresses are refused unless the
allow-list names that exact address (a test receiver on 127.0.0.1, an internal system on
10.0.0.5): a wildcard never opens them. Only ports 80 and 443 are allowed unless the entry
names the port (``127.0.0.1:8080``, ``[::1]:8080``, ``*.partner.cn:8443``).

This is the check by name, at intake. The dispatcher checks the addresses a name resolves to
again when it connects (``gateway/receipts/pinning.py``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048
DEFAULT_PORTS = (80, 443)


class CallbackRejected(ValueError):
    def __init__(self, code: str, message: str, host: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.host = host  # for callback_host_not_allowed: the entry to put on the allow-list


def special_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback, private, link-local, multicast, reserved, unspecified: never a public host."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return special_address(ip.ipv4_mapped)
    return (
        not ip.is_global
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_private
        or ip.is_unspecified
    )


def _special_host(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost" or host.endswith((".localhost", ".local", ".internal"))
    return special_address(ip)


def normal_host(host: str) -> str:
    """Lower case, no trailing dot, an IP address in its canonical form."""
    host = host.strip().strip("[]").rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def parse_entry(entry: str) -> tuple[str, int | None]:
    """An allow-list entry -> (host, port or None): ``host``, ``host:port``, ``[v6]:port``."""
    entry = entry.strip()
    port: str | None = None
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
    elif entry.count(":") == 1:
        host, port = entry.split(":")
    else:
        host = entry
    return normal_host(host), int(port) if port and port.isdigit() else None


def entries(allowed_hosts: Iterable[str]) -> list[tuple[str, int | None]]:
    return [parse_entry(h) for h in allowed_hosts if h.strip()]


def _port_ok(port: int, entry_port: int | None) -> bool:
    return port in DEFAULT_PORTS if entry_port is None else port == entry_port


def exact_allowed(host: str, port: int, allowed: list[tuple[str, int | None]]) -> bool:
    """The allow-list names this host (or address) itself, with this port."""
    return any(h == host and _port_ok(port, p) for h, p in allowed)


def _wildcard(entry: str, host: str) -> bool:
    return entry.startswith("*.") and host.endswith(entry[1:]) and host != entry[2:]


def url_port(scheme: str, port: int | None) -> int:
    return port if port is not None else (443 if scheme == "https" else 80)


def check_callback_url(url: str, allowed_hosts: Iterable[str]) -> str:
    """Return the normalised URL or raise ``CallbackRejected``."""
    if not isinstance(url, str) or not url:
        raise CallbackRejected("invalid_callback_url", "callback_url must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise CallbackRejected("invalid_callback_url", "callback_url is too long")
    try:
        parts = urlsplit(url)
        explicit_port = parts.port
    except ValueError as exc:
        raise CallbackRejected("invalid_callback_url", f"callback_url: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise CallbackRejected("invalid_callback_url", "callback_url must be http or https")
    if parts.username or parts.password:
        raise CallbackRejected("invalid_callback_url", "callback_url must not carry credentials")
    host = normal_host(parts.hostname or "")
    if not host:
        raise CallbackRejected("invalid_callback_url", "callback_url has no host")
    if explicit_port == 0:
        raise CallbackRejected("invalid_callback_url", "callback_url has an invalid port")
    port = url_port(parts.scheme, explicit_port)
    allowed = entries(allowed_hosts)
    shown = f"[{host}]" if ":" in host else host
    wanted = shown if port in DEFAULT_PORTS else f"{shown}:{port}"
    if exact_allowed(host, port, allowed):
        return url
    special = _special_host(host)
    # Entries naming this host: exactly, or by a wildcard (never for a special address).
    ports = [p for h, p in allowed if h == host or (not special and _wildcard(h, host))]
    if any(_port_ok(port, p) for p in ports):
        return url
    if ports:
        raise CallbackRejected(
            "callback_host_not_allowed",
            f"callback port {port} is not allowed for {shown}: only 80 and 443 unless the "
            "allow-list entry names the port",
            wanted,
        )
    if special:
        raise CallbackRejected(
            "callback_host_not_allowed",
            f"callback host {wanted} is a local or private address not named by this key",
            wanted,
        )
    raise CallbackRejected(
        "callback_host_not_allowed",
        f"callback host {wanted} is not on this key's allow-list",
        wanted,
    )
