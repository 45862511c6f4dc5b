"""The FastAGI session header (pure): ``agi_*: value`` lines up to a blank line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

MAX_LINE: Final = 1024
MAX_HEADER_LINES: Final = 64


class BadAgiHeader(ValueError):
    """The peer did not send a FastAGI header: wrong protocol, garbage, or too much of it."""


@dataclass(frozen=True, slots=True)
class AgiRequest:
    env: dict[str, str]
    flow: str  # the path of agi://host:port/<flow>


def parse_header(lines: list[str]) -> AgiRequest:
    """Parse the header lines (without the blank terminator)."""
    if len(lines) > MAX_HEADER_LINES:
        raise BadAgiHeader("too many header lines")
    env: dict[str, str] = {}
    for line in lines:
        if len(line) > MAX_LINE:
            raise BadAgiHeader("header line too long")
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep or not key.startswith("agi_") or not key.replace("_", "").isalnum():
            raise BadAgiHeader(f"not an AGI header line: {line[:40]!r}")
        env[key] = value.strip()
    request = env.get("agi_request", "")
    if not request.startswith("agi://"):
        raise BadAgiHeader("agi_request is not a FastAGI URL")
    flow = urlsplit(request).path.strip("/")
    if not flow or not flow.replace("-", "").replace("_", "").isalnum():
        raise BadAgiHeader(f"bad flow name in {request[:60]!r}")
    return AgiRequest(env, flow)
