"""The events stream, the audit trail and lists kept in several lanes (docs/redis-cluster.md):
read as one, merged by time; a resume from any event's id neither repeats nor skips an entry
of any lane. Entries of lanes 1 and 2 are written straight to their keys (every entity is in
lane 0 until entities are spread over the lanes); lane 0's come from the API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from gateway.core.audit import audit_entry
from gateway.store.apikeys import NewKey
from gateway.store.audit_log import AuditLog
from gateway.store.lane_merge import entry_key
from tests.conftest import Gateway, close_or_dump, free_port, make_settings
from tests.lane_phones import phones_in_lane
from tests.sse import Event, SseReader, open_stream


@pytest.fixture
async def api(redis_server: str, prefix: str) -> AsyncIterator[Gateway]:
    gw = Gateway(
        make_settings(
            redis_server,
            prefix,
            free_port(),
            GATEWAY_REDIS_LANES="3",
            GATEWAY_EVENTS_HEARTBEAT_SECONDS="0.2",
        )
    )
    await gw.start(workers=False)
    gw._admin = await gw.add_key("admin")
    yield gw
    await close_or_dump(gw)


async def _stream(gw: Gateway, key: NewKey, **kw: str) -> SseReader:
    assert gw.http is not None
    resp, reader = await open_stream(gw.http, gw.base + "/v1/events/stream", token=key.token, **kw)
    assert resp.status == 200, await resp.text()
    return reader


async def _event(gw: Gateway, lane: int, name: str, key_id: str = "") -> str:
    """A status event in ``lane``'s stream, as a script of that lane writes it."""
    fields = {"type": "status", "id": name, "status": "queued", "key": key_id}
    eid = str(await gw.redis.xadd(gw.keys.events(lane), fields))
    # The next one a millisecond later: entries of one millisecond go by lane, not by when
    # they were written, and the tests name the order they wrote.
    await asyncio.sleep(0.002)
    return eid


async def _message(gw: Gateway, key: NewKey, lane: int = 0) -> str:
    """A message to a recipient in ``lane``."""
    (to,) = phones_in_lane(gw.keys, lane)
    code, body, _ = await gw.request("POST", "/v1/messages", key, {"to": to, "text": "x"})
    assert code == 202, body
    return str(body["id"])


def _names(events: list[Event]) -> list[str]:
    return [e.data["id"] for e in events]


def _time_order(events: list[Event]) -> list[tuple[int, int, int]]:
    out = []
    for e in events:
        eid, _, lane = e.data["event_id"].partition("@")
        out.append((*entry_key(eid), int(lane)))
    return out


async def test_every_lanes_events_reach_a_stream_and_a_resume_misses_none(api: Gateway) -> None:
    admin = api._admin
    reader = await _stream(api, admin)
    first = [await _message(api, admin), await _event(api, 1, "a1"), await _event(api, 2, "a2")]
    live = await reader.take(3)
    assert set(_names(live)) == {first[0], "a1", "a2"}
    assert sorted(e.data["event_id"].rpartition("@")[2] for e in live) == ["0", "1", "2"]
    assert all(len(e.id.split(",")) == 3 for e in live)  # every lane's position
    reader.resp.close()
    # While the client is away every lane moves on.
    later = []
    for lane in (2, 1, 0, 2, 1):
        later.append(await _event(api, lane, f"b{len(later)}"))
    later_names = [f"b{i}" for i in range(5)]
    again = await _stream(api, admin, last_event_id=live[-1].id)
    got = await again.take(5)
    assert _names(got) == later_names  # written one after another: time order is theirs
    assert _time_order(got) == sorted(_time_order(got))
    # From the first event's id: the two after it, then the five, each once.
    from_first = await (await _stream(api, admin, last_event_id=live[0].id)).take(7)
    assert sorted(_names(from_first)) == sorted(_names(live[1:]) + later_names)
    assert len({e.data["event_id"] for e in from_first}) == 7
    # And the stream goes on live in any lane after the replay.
    await _event(api, 1, "c")
    assert (await again.next()).data["id"] == "c"


async def test_each_event_id_resumes_exactly_after_it(api: Gateway) -> None:
    admin = api._admin
    names = [f"e{i}" for i in range(6)]
    for i, name in enumerate(names):
        await _event(api, (i * 2) % 3, name)
    everything = await (await _stream(api, admin, last_event_id="0-0,0-0,0-0")).take(6)
    assert _names(everything) == names
    for i, ev in enumerate(everything):
        reader = await _stream(api, admin, last_event_id=ev.id)
        rest = await reader.take(6 - i - 1, within=5) if i < 5 else []
        assert _names(rest) == names[i + 1 :], ev.id
        reader.resp.close()


async def test_backlog_is_the_last_events_of_every_lane_by_time(api: Gateway) -> None:
    cc = await api.add_key("command_center")
    for i, lane in enumerate((0, 1, 2, 1, 0)):
        await _event(api, lane, f"m{i}", cc.key.id)
    await _event(api, 2, "not-theirs", "someone-else")
    reader = await _stream(api, cc, params={"backlog": "3"})
    got = await reader.take(3)
    assert _names(got) == ["m2", "m3", "m4"]
    reader.resp.close()
    await _event(api, 2, "after", cc.key.id)
    resumed = await (await _stream(api, cc, last_event_id=got[-1].id)).take(1)
    assert _names(resumed) == ["after"]  # not m2..m4 again, nothing missed
    from_middle = await (await _stream(api, cc, last_event_id=got[0].id)).take(3)
    assert _names(from_middle) == ["m3", "m4", "after"]


async def test_a_client_that_saw_more_of_a_lane_than_this_process_gets_ids_that_keep_it(
    api: Gateway,
) -> None:
    # Another API process had read further in lane 1 (a later id there): this one skips what
    # the client says it saw and keeps that position in the ids it hands out.
    admin = api._admin
    await _event(api, 1, "seen-elsewhere")
    ahead = "99999999999999-0"
    reader = await _stream(api, admin, last_event_id=f"0-0,{ahead},0-0")
    await _event(api, 1, "also-seen")
    await _event(api, 0, "z0")
    await _event(api, 2, "z2")
    got = await reader.take(2)
    assert _names(got) == ["z0", "z2"]
    assert all(e.id.split(",")[1] == ahead for e in got)


async def test_a_lane_trimmed_past_the_resume_point_is_told_as_a_gap(api: Gateway) -> None:
    admin = api._admin
    old = await _event(api, 2, "old")
    await _event(api, 2, "kept")
    await _event(api, 0, "zero")
    ms, seq = entry_key(old)
    await api.redis.xtrim(api.keys.events(2), minid=f"{ms}-{seq + 1}", approximate=False)
    got = await (await _stream(api, admin, last_event_id="1-0,1-0,1-0")).take(3)
    assert got[0].event == "gap"
    assert got[0].data["lane"] == 2
    assert sorted(_names(got[1:])) == ["kept", "zero"]


async def test_bad_resume_ids_are_refused(api: Gateway) -> None:
    for bad in ("1-0,2-0", "1-0,x,2-0", "1-0,2-0,3-0,4-0", "1-0,,2-0"):
        code, body, _ = await api.request(
            "GET", "/v1/events/stream", api._admin, headers={"Last-Event-ID": bad}
        )
        assert (code, body["error"]["code"]) == (400, "invalid_last_event_id"), bad


async def test_audit_pages_walk_every_lanes_trail_newest_first_once(api: Gateway) -> None:
    at = "2026-12-03T08:00:00.000Z"
    written = []
    for i, lane in enumerate((0, 2, 1, 1, 0, 2, 2)):
        entry = audit_entry("notice_created", at=at, key_id="k", key_name="k", notice_id=f"n{i}")
        await api.redis.xadd(api.keys.audit_log(lane), entry)
        written.append(f"n{i}")
        await asyncio.sleep(0.002)  # one millisecond each: the order written is the time order
    # One entry standing for three notices (a job's slice), so a page can end inside it.
    made = [[f"j{n}", "138****8000", "d"] for n in range(3)]
    slice_entry = audit_entry("notices_created", at=at, key_id="k", key_name="k")
    await api.redis.xadd(api.keys.audit_log(1), {**slice_entry, "notices": json.dumps(made)})
    want = ["j2", "j1", "j0", *reversed(written)]
    log = AuditLog(api.redis, api.keys)
    seen: list[str] = []
    cursor = ""
    while True:
        page = await log.page(filters={}, from_ms=0, to_ms=2**63 - 1, cursor=cursor, limit=2)
        seen += [row["notice_id"] for row in page.items]
        if not page.next_cursor:
            break
        assert "@" in page.next_cursor
        cursor = page.next_cursor
    assert seen == want
    # The API takes the cursors it hands out.
    code, body, _ = await api.request("GET", "/v1/admin/audit?limit=4", api._admin)
    assert code == 200, body
    code, more, _ = await api.request(
        "GET", f"/v1/admin/audit?limit=50&cursor={body['next_cursor']}", api._admin
    )
    assert code == 200, more
    assert [r["notice_id"] for r in body["items"] + more["items"]] == want


async def test_lists_kept_per_lane_are_read_newest_first_across_lanes(api: Gateway) -> None:
    # Dead letters, accident replies and suspected clones written in three lanes, as each
    # lane's scripts write them; each route reads them as one list.
    for i, lane in enumerate((1, 0, 2, 1)):
        dead = {"id": f"w{i}", "dead_at": f"2026-12-03T08:00:0{i}.000Z", "body": "{}"}
        await api.redis.lpush(api.keys.webhook_dead(lane), json.dumps(dead))
        reply = {"at": f"2026-12-03T08:00:0{i}.000Z", "case_id": f"c{i}", "text": "1"}
        await api.redis.lpush(api.keys.accident_replies(lane), json.dumps(reply))
        clone = {"plate": f"云A{i}", "last_at": f"2026-12-03T08:00:0{i}.000Z", "count": 1}
        await api.redis.hset(api.keys.suspected_clones(lane), f"云A{i}", json.dumps(clone))
    code, body, _ = await api.request("GET", "/v1/admin/webhook-dead-letters?limit=3", api._admin)
    assert code == 200, body
    assert [i["id"] for i in body["items"]] == ["w3", "w2", "w1"]
    code, body, _ = await api.request("GET", "/v1/accident-replies", api._admin)
    assert code == 200, body
    assert [i["case_id"] for i in body["items"]] == ["c3", "c2", "c1", "c0"]
    code, body, _ = await api.request("GET", "/v1/suspected-cloned-plates", api._admin)
    assert code == 200, body
    assert [i["plate"] for i in body["items"]] == ["云A3", "云A2", "云A1", "云A0"]


async def test_a_resume_from_any_live_event_gets_exactly_what_came_after_it(
    api: Gateway,
) -> None:
    # Each lane's reader reads a batch of its own, in whatever order the readers wake: the
    # order of live events is not the time order, and a resume from any of them must still
    # give exactly the events that came after it live.
    admin = api._admin
    reader = await _stream(api, admin)
    names = []
    for batch in range(3):
        pipe = api.redis.pipeline(transaction=True)
        for lane in (2, 0, 1):
            for n in range(3):
                name = f"r{batch}-{lane}-{n}"
                names.append(name)
                fields = {"type": "status", "id": name, "status": "queued", "key": ""}
                pipe.xadd(api.keys.events(lane), fields)
        await pipe.execute()
        await asyncio.sleep(0.01)
    live = await reader.take(len(names))
    assert sorted(_names(live)) == sorted(names)
    reader.resp.close()
    for i, ev in enumerate(live[:-1]):
        want = _names(live[i + 1 :])
        again = await _stream(api, admin, last_event_id=ev.id)
        got = await again.take(len(want), within=5)
        assert sorted(_names(got)) == sorted(want), (i, ev.id)
        with pytest.raises(TimeoutError):
            await again.next(within=0.1)  # and nothing more
        again.resp.close()
