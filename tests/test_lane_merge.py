"""Merging a stream kept in several lanes by entry time (pure: pages are lists here)."""

from __future__ import annotations

from gateway.store.lane_merge import Entry, before, entry_key, merged, newest_of_lanes

LANES: dict[int, list[str]] = {
    0: ["1-0", "3-0", "3-1", "9-0"],
    1: ["2-0", "3-0"],
    2: [],
    3: ["3-0", "4-5"],
}


def _pager(newest_first: bool, size: int) -> tuple[list[tuple[int, str | None]], object]:
    calls: list[tuple[int, str | None]] = []

    async def page(lane: int, last: str | None) -> list[Entry]:
        calls.append((lane, last))
        ids = LANES[lane][::-1] if newest_first else LANES[lane]
        start = ids.index(last) + 1 if last else 0
        return [(i, {"lane": str(lane)}) for i in ids[start : start + size]]

    return calls, page


async def test_oldest_first_ties_by_lane_each_entry_once() -> None:
    calls, page = _pager(False, 1)
    got = [(lane, eid) async for lane, eid, _ in merged(LANES, page)]  # type: ignore[arg-type]
    assert got == [
        (0, "1-0"), (1, "2-0"), (0, "3-0"), (1, "3-0"), (3, "3-0"), (0, "3-1"), (3, "4-5"),
        (0, "9-0"),
    ]  # fmt: skip
    # A lane is asked for its next page only when its last one is used up, after what it
    # handed over.
    assert (0, "3-0") in calls
    assert calls.count((2, None)) == 1


async def test_newest_first_is_the_same_order_reversed() -> None:
    _, page_up = _pager(False, 2)
    _, page_down = _pager(True, 3)
    up = [(lane, eid) async for lane, eid, _ in merged(LANES, page_up)]  # type: ignore[arg-type]
    down = [
        (lane, eid)
        async for lane, eid, _ in merged(LANES, page_down, newest_first=True)  # type: ignore[arg-type]
    ]
    assert down == up[::-1]


def test_the_id_before_an_id() -> None:
    assert before(entry_key("5-3")) == (5, 2)
    assert before(entry_key("5-0")) == (4, 2**64 - 1)
    assert before((0, 0)) == (0, 0)


async def test_a_list_of_each_lane_is_read_as_one_newest_first() -> None:
    lists = {0: [5, 1], 1: [], 2: [9, 4, 2]}

    async def fetch(lane: int) -> list[int]:
        return lists[lane]

    assert await newest_of_lanes(lists, fetch, lambda n: n) == [9, 5, 4, 2, 1]
    assert await newest_of_lanes(lists, fetch, lambda n: n, limit=2) == [9, 5]
