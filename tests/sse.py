"""A small server-sent events reader for the tests and the benchmark (aiohttp client)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass
class Event:
    event: str
    id: str
    data: Any


class SseReader:
    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp
        self.comments = 0
        self.retry = 0

    async def next(self, within: float = 10) -> Event | None:
        """The next event, or None when the stream ended."""
        fields: dict[str, str] = {}
        data: list[str] = []
        async with asyncio.timeout(within):
            while True:
                raw = await self.resp.content.readline()
                if not raw:
                    return None
                line = raw.decode().rstrip("\n")
                if line == "":
                    if data or fields.get("event"):
                        text = "\n".join(data)
                        body = json.loads(text) if text else None
                        return Event(fields.get("event", "message"), fields.get("id", ""), body)
                    continue
                if line.startswith(":"):
                    self.comments += 1
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "data":
                    data.append(value)
                elif name == "retry":
                    self.retry = int(value)
                else:
                    fields[name] = value

    async def take(self, n: int, within: float = 10) -> list[Event]:
        out: list[Event] = []
        async with asyncio.timeout(within):
            while len(out) < n:
                ev = await self.next(within)
                if ev is None:
                    break
                out.append(ev)
        return out


async def open_stream(
    http: aiohttp.ClientSession,
    url: str,
    *,
    token: str = "",
    last_event_id: str = "",
    params: dict[str, str] | None = None,
) -> tuple[aiohttp.ClientResponse, SseReader]:
    headers = {"Accept": "text/event-stream"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    resp = await http.get(url, headers=headers, params=params, timeout=aiohttp.ClientTimeout())
    return resp, SseReader(resp)
