"""Reading the audit stream (who notified whom) page by page, and keeping it to its
retention. Entries are written by the scripts that create notices and record follow-ups."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import redis.asyncio as aioredis

from gateway.core.audit import expand_entry
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
        # Lane 0's trail: with one lane (every deployment today), the whole trail. Pages
        # merged over several lanes' trails are not built yet (docs/redis-cluster.md).
        self.key = keys.audit_log(0)

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
        back to ``from_ms``. A cursor is an entry id (exclusive), or ``id/n`` when the page
        ended inside an entry that stands for several (the first n of them were shown)."""
        items: list[dict[str, str]] = []
        eid, _, shown = cursor.partition("/")
        skip = int(shown or 0)
        top = (eid if skip else f"({eid}") if eid else str(to_ms)
        looked = 0
        while looked < SCAN_BUDGET:
            batch = await self.redis.xrevrange(self.key, top, str(from_ms), count=500)
            if not batch:
                return AuditPage(items, "")
            for entry_id, fields in batch:
                looked += 1
                rows = expand_entry(fields)
                for i in range(skip if entry_id == eid else 0, len(rows)):
                    row = rows[i]
                    if all(row.get(k) == v for k, v in filters.items()):
                        items.append({"entry_id": entry_id, **row})
                        if len(items) == limit:
                            more = i + 1 < len(rows)
                            return AuditPage(items, f"{entry_id}/{i + 1}" if more else entry_id)
            top = f"({batch[-1][0]}"
        return AuditPage(items, top[1:])

    async def append(self, entry: Mapping[str, str]) -> str:
        """An entry of the API's own (an admin's search by a person's number or plate)."""
        return str(await self.redis.xadd(self.key, dict(entry)))

    async def trim(self, retention_days: int) -> int:
        """Drop entries older than the retention; how many went."""
        oldest_ms = int(time.time() * 1000) - retention_days * 86400 * 1000
        return int(await self.redis.xtrim(self.key, minid=str(oldest_ms), approximate=False))
