"""One stream (or list) kept in several lanes, read as one: entries merged by entry time.

Each lane's stream hands out its own ids, ``<ms>-<seq>`` of its shard's clock; the merge takes
them in that order across lanes, and entries of one time go by lane number. A lane is read a
page at a time, only when its next entry is needed (docs/redis-cluster.md).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

Entry = tuple[str, dict[str, str]]
# A lane's next page in the merge's direction, after the entry id given (exclusive), or from
# the reader's own bound when None; an empty page: the lane has no more.
Page = Callable[[int, str | None], Awaitable[list[Entry]]]

T = TypeVar("T")
MAX_SEQ = 2**64 - 1  # the largest sequence part of a stream entry id


def entry_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def entry_id(key: tuple[int, int]) -> str:
    return f"{key[0]}-{key[1]}"


def before(key: tuple[int, int]) -> tuple[int, int]:
    """The entry id just before ``key`` ((0, 0) has none before it: itself)."""
    ms, seq = key
    if seq:
        return ms, seq - 1
    return (ms - 1, MAX_SEQ) if ms else (0, 0)


async def merged(
    lanes: Iterable[int], page: Page, *, newest_first: bool = False
) -> AsyncGenerator[tuple[int, str, dict[str, str]], None]:
    """``(lane, entry id, fields)`` of every lane's entries, oldest first (newest first with
    ``newest_first``), until every lane's pages are empty."""
    last: dict[int, str | None] = dict.fromkeys(lanes)
    open_lanes = set(last)
    buffered: dict[int, deque[Entry]] = {}

    async def fill(lane: int) -> None:
        got = await page(lane, last[lane])
        if got:
            buffered[lane] = deque(got)
        else:
            open_lanes.discard(lane)

    pick = max if newest_first else min
    while True:
        empty = [lane for lane in open_lanes if lane not in buffered]
        if empty:
            await asyncio.gather(*(fill(lane) for lane in empty))
        if not buffered:
            return
        lane = pick(buffered, key=lambda n: (*entry_key(buffered[n][0][0]), n))
        eid, fields = buffered[lane].popleft()
        if not buffered[lane]:
            del buffered[lane]
        last[lane] = eid
        yield lane, eid, fields


async def newest_of_lanes(
    lanes: Iterable[int],
    fetch: Callable[[int], Awaitable[Sequence[T]]],
    order: Callable[[T], Any],
    limit: int | None = None,
) -> list[T]:
    """A list kept once per lane (replies, dead letters, recent jobs ...), read as one: what
    ``fetch`` reads of each lane (the lanes at once), newest first by ``order``, the first
    ``limit``."""
    got = await asyncio.gather(*(fetch(lane) for lane in lanes))
    items = [item for part in got for item in part]
    items.sort(key=order, reverse=True)
    return items if limit is None else items[:limit]
