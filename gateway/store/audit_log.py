"""Reading the audit stream (who notified whom) page by page, and keeping it to its
retention. Entries are written by the scripts that create notices and record follow-ups."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import redis.asyncio as aioredis

from gateway.store.keys import Keys

# Entries looked at for one page at most: a filter that matches little still answers quickly,
# with a cursor to go on from.
SCAN_BUDGET = 5000


@dataclass(frozen=True, slots=True)
class AuditPage:
    items: list[dict[str, str]]
    next_cursor: str  # '' at the end of the range


class AuditLog:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.key = keys.audit_log

    async def page(
        self,
        *,
        filters: Mapping[str, str],
        from_ms: int,
        to_ms: int,
        cursor: str,
        limit: int,
    ) -> AuditPage:
        """Entries newest first whose fields equal every one of ``filters``, from ``cursor``
        (an entry id, exclusive) back to ``from_ms``."""
        top = f"({cursor}" if cursor else str(to_ms)
        items: list[dict[str, str]] = []
        looked = 0
        while looked < SCAN_BUDGET:
            batch = await self.redis.xrevrange(self.key, top, str(from_ms), count=500)
            if not batch:
                return AuditPage(items, "")
            for eid, fields in batch:
                looked += 1
                if all(fields.get(k) == v for k, v in filters.items()):
                    items.append({"entry_id": eid, **fields})
                    if len(items) == limit:
                        return AuditPage(items, eid)
            top = f"({batch[-1][0]}"
        return AuditPage(items, top[1:])

    async def append(self, entry: Mapping[str, str]) -> str:
        """An entry of the API's own (an admin's search by a person's number or plate)."""
        return str(await self.redis.xadd(self.key, dict(entry)))

    async def trim(self, retention_days: int) -> int:
        """Drop entries older than the retention; how many went."""
        oldest_ms = int(time.time() * 1000) - retention_days * 86400 * 1000
        return int(await self.redis.xtrim(self.key, minid=str(oldest_ms), approximate=False))
