"""A webhook endpoint for tests: records what it gets and can fail on purpose."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Receiver:
    """A webhook endpoint that records what it gets and can fail on purpose."""

    url: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)
    fail_first: int = 0
    attempts: int = 0
    event: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        raw = await request.read()
        if self.attempts <= self.fail_first:
            return web.Response(status=503)
        self.calls.append({"headers": dict(request.headers), "raw": raw, "body": json.loads(raw)})
        self.event.set()
        return web.Response(status=204)

    @property
    def allow(self) -> str:
        """The allow-list entry for this receiver: its exact address and port."""
        return self.url.split("/")[2]

    def statuses(self, notice_id: str) -> list[str]:
        return [c["body"]["status"] for c in self.calls if c["body"]["id"] == notice_id]

    async def wait_for(self, notice_id: str, status: str, within: float = 10) -> dict[str, Any]:
        async with asyncio.timeout(within):
            while True:
                for c in self.calls:
                    if c["body"]["id"] == notice_id and c["body"]["status"] == status:
                        return c
                self.event.clear()
                await self.event.wait()
