"""Callback addresses checked when the dispatcher connects, and pinned.

The name was checked at intake (``callbacks.py``); here the addresses it resolves to are: a
loopback, private, link-local, multicast or reserved result is refused unless the key's
allow-list names that exact address (with the port rule). The request then goes to the
address that passed, never to the name, so there is no second lookup for DNS rebinding to
answer differently; the name stays in the Host header and, for https, in SNI and the
certificate check (``server_hostname``).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp.abc import AbstractResolver
from yarl import URL

from gateway.receipts.callbacks import (
    CallbackRejected,
    check_callback_url,
    entries,
    exact_allowed,
    normal_host,
    special_address,
    url_port,
)


class AddressRefused(Exception):
    """The callback's host resolved only to addresses the key does not allow."""


@dataclass(frozen=True, slots=True)
class Pinned:
    url: str  # the callback URL with the checked address in place of the name
    host_header: str
    server_hostname: str | None  # https to a name: SNI and the certificate's name
    address: str


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def pin(url: str, allowed_hosts: Iterable[str], resolver: AbstractResolver) -> Pinned:
    """The address to connect to for ``url``; ``AddressRefused`` if none may be used.

    A lookup failure raises ``OSError`` (the delivery is retried later).
    """
    hosts = list(allowed_hosts)
    try:
        check_callback_url(url, hosts)  # the allow-list may have changed since intake
    except CallbackRejected as exc:
        raise AddressRefused(str(exc)) from None
    u = URL(url)
    host = normal_host(u.raw_host or "")
    port = url_port(u.scheme, u.explicit_port)
    allowed = entries(hosts)
    if _is_ip(host):
        found = [host]
    else:
        results = await resolver.resolve(host, port, family=socket.AF_UNSPEC)
        found = [normal_host(r["host"]) for r in results]
    usable = [
        a
        for a in dict.fromkeys(found)
        if not special_address(ipaddress.ip_address(a)) or exact_allowed(a, port, allowed)
    ]
    if not usable:
        raise AddressRefused(
            f"callback host {host} resolves to {', '.join(found) or 'nothing'}: a local or "
            f"private address this key's allow-list does not name (with port {port})"
        )
    address = usable[0]
    return Pinned(
        url=str(u.with_host(address)),
        host_header=u.host_port_subcomponent or host,
        server_hostname=u.raw_host if u.scheme == "https" and not _is_ip(host) else None,
        address=address,
    )
