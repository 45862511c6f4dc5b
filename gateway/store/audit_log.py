"""Reading the audit stream (who notified whom) page by page, and keeping it to its
retention. Entries are written by the scripts that create notices and record follow-ups."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass

import redis.asyncio as aioredis

from gateway.core.audit import expand_entry
from gateway.store.keys import Keys
from gateway.store.lane_merge import Entry, merged

# Entries looked at for one page at most: a filter that matches little still answers quickly,
# with a cursor to go on from.
SCAN_BUDGET = 5000


@dataclass(frozen=True, slots=True)
class AuditPage:
    items: list[dict[str, str]]
    next_cursor: str  # '' at the end of the range


class AuditLog:
    """The trail is kept once per lane (docs/redis-cluster.md); pages merge the lanes newest
    first, entries of one time by lane. With several lanes an entry's id (and a cursor) names
    its lane, ``<entry id>@<lane>``; with one it is the entry id."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.streams = [keys.audit_log(lane) for lane in keys.each_lane()]
        self.key = self.streams[0]  # where the API's own entries go

    def _named(self, lane: int, entry_id: str) -> str:
        return entry_id if len(self.streams) == 1 else f"{entry_id}@{lane}"

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
        back to ``from_ms``. A cursor is an entry's id (exclusive), or ``id/n`` when the page
        ended inside an entry that stands for several (the first n of them were shown)."""
        items: list[dict[str, str]] = []
        named, _, shown = cursor.partition("/")
        eid, _, in_lane = named.partition("@")
        at_lane = int(in_lane or 0)
        skip = int(shown or 0)
        if eid and at_lane >= len(self.streams):
            return AuditPage(items, "")  # a cursor of a deployment with more lanes

        def top(lane: int) -> str:
            if not eid:
                return str(to_ms)
            # Newest first, entries of one time go by lane, highest first: a lower lane's
            # entry of the cursor's time is still to come, a higher one's came.
            inclusive = lane < at_lane or (lane == at_lane and skip)
            return eid if inclusive else f"({eid}"

        async def page(lane: int, last: str | None) -> list[Entry]:
            got: list[Entry] = await self.redis.xrevrange(
                self.streams[lane], f"({last}" if last else top(lane), str(from_ms), count=500
            )
            return got

        looked = 0
        async with contextlib.aclosing(
            merged(range(len(self.streams)), page, newest_first=True)
        ) as entries:
            async for lane, entry_id, fields in entries:
                looked += 1
                named = self._named(lane, entry_id)
                rows = expand_entry(fields)
                first = skip if (entry_id, lane) == (eid, at_lane) else 0
                for i in range(first, len(rows)):
                    row = rows[i]
                    if all(row.get(k) == v for k, v in filters.items()):
                        items.append({"entry_id": named, **row})
                        if len(items) == limit:
                            more = i + 1 < len(rows)
                            return AuditPage(items, f"{named}/{i + 1}" if more else named)
                if looked >= SCAN_BUDGET:
                    return AuditPage(items, named)
        return AuditPage(items, "")

    async def append(self, entry: Mapping[str, str]) -> str:
        """An entry of the API's own (an admin's search by a person's number or plate)."""
        return str(await self.redis.xadd(self.key, dict(entry)))

    async def trim(self, retention_days: int) -> int:
        """Drop entries older than the retention; how many went."""
        oldest_ms = int(time.time() * 1000) - retention_days * 86400 * 1000
        dropped = 0
        for stream in self.streams:
            dropped += int(await self.redis.xtrim(stream, minid=str(oldest_ms), approximate=False))
        return dropped
