"""Where this worker's FastAGI server is reached, and who may reach it."""

from __future__ import annotations

import logging
import socket
from ipaddress import IPv4Network, IPv6Network, ip_network

from gateway.settings import AgiSettings, Settings

log = logging.getLogger(__name__)

_WILDCARDS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 (names them, binds nothing)


def agi_allow(settings: Settings) -> list[IPv4Network | IPv6Network]:
    """Who may open FastAGI sessions: ``GATEWAY_AGI_ALLOW``, or Asterisk's host (the AMI
    host, resolved now) and loopback."""
    wanted = [a.strip() for a in settings.agi.agi_allow.split(",") if a.strip()]
    if not wanted:
        wanted = ["127.0.0.0/8", "::1", settings.ami.ami_host]
    nets: list[IPv4Network | IPv6Network] = []
    for item in wanted:
        try:
            nets.append(ip_network(item, strict=False))
        except ValueError:  # a host name: its addresses now
            try:
                infos = socket.getaddrinfo(item, None, proto=socket.IPPROTO_TCP)
            except OSError as exc:
                log.warning("GATEWAY_AGI_ALLOW: %s does not resolve (%s); skipped", item, exc)
                continue
            nets.extend(ip_network(str(info[4][0])) for info in infos)
    return nets


def advertised_agi(agi: AgiSettings, port: int) -> str:
    """host:port at which Asterisk reaches this process's FastAGI server (every Originate
    carries it, so a call's result comes back to the worker that placed it)."""
    if agi.agi_advertise:
        return agi.agi_advertise
    host = socket.gethostname() if agi.agi_host in _WILDCARDS else agi.agi_host
    return f"{host}:{port}"
