"""GET /v1/events/stream: what each key sees, reconnecting by Last-Event-ID, the capped
stream's gap, heartbeats, and streams ending with the app."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from gateway.core.statuses import NoticeStatus
from gateway.store.apikeys import ApiKeyStore
from gateway.store.notice_scripts import NoticeScripts
from gateway.store.notices import now_iso
from gateway.store.voice_scripts import VoiceScripts
from tests.conftest import Gateway, close_or_dump, free_port, make_settings
from tests.lane_phones import phones_in_lane
from tests.sse import Event, SseReader, open_stream


@pytest.fixture(params=[1, 3], ids=["one-lane", "three-lanes"])
async def api(
    redis_server: str, prefix: str, request: pytest.FixtureRequest
) -> AsyncIterator[Gateway]:
    """The API alone (no workers): statuses are moved by the store's scripts directly. With
    three lanes every event is still in lane 0, and the stream reads and resumes all three."""
    gw = Gateway(
        make_settings(
            redis_server,
            prefix,
            free_port(),
            GATEWAY_EVENTS_HEARTBEAT_SECONDS="0.2",
            GATEWAY_REDIS_LANES=str(request.param),
        )
    )
    await gw.start(workers=False)
    gw._admin = await gw.add_key("admin")
    yield gw
    await close_or_dump(gw)


async def _message(gw: Gateway, key: object, to: str = "13800138000") -> str:
    code, body, _ = await gw.request(
        "POST", "/v1/messages", key, {"to": to, "text": "路面结冰，注意安全"}
    )
    assert code == 202, body
    return str(body["id"])


async def _parking(gw: Gateway, officer: object, plate: str) -> str:
    await gw.request("POST", "/v1/bindings", gw._admin, {"plate": plate, "phone": "13900139000"})
    code, body, _ = await gw.request(
        "POST",
        "/v1/parking-notices",
        officer,
        {"plate": plate, "location": "青年路", "move_within_minutes": 15, "officer_id": "K7"},
    )
    assert code == 202, body
    return str(body["id"])


async def _move(gw: Gateway, notice_id: str, *statuses: NoticeStatus) -> None:
    scripts = NoticeScripts(gw.redis, gw.keys)
    for status in statuses:
        assert await scripts.set_status(notice_id=notice_id, status=status, at=now_iso(), detail={})


async def _stream(gw: Gateway, token: str, **kw: str) -> SseReader:
    assert gw.http is not None
    resp, reader = await open_stream(gw.http, gw.base + "/v1/events/stream", token=token, **kw)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "text/event-stream"
    return reader


def _seen(events: list[Event]) -> set[tuple[str, str, str]]:
    return {(e.event, e.data["id"], e.data["status"]) for e in events}


async def test_each_key_sees_its_own_notices_command_centres_every_cloned_plate_admin_all(
    api: Gateway,
) -> None:
    cc1, cc2 = await api.add_key("command_center"), await api.add_key("command_center")
    officer = await api.add_key("officer")
    streams = {
        "cc1": await _stream(api, cc1.token),
        "cc2": await _stream(api, cc2.token),
        "officer": await _stream(api, officer.token),
        "admin": await _stream(api, api._admin.token),
    }
    mine, theirs = await _message(api, cc1), await _message(api, cc2, "13700137000")
    await _move(api, mine, NoticeStatus.SUBMITTED, NoticeStatus.DELIVERED)
    await _move(api, theirs, NoticeStatus.SUBMITTED)
    parking = await _parking(api, officer, "云A5C678")
    await _move(api, parking, NoticeStatus.DIALING, NoticeStatus.ANSWERED, NoticeStatus.DISPUTED)
    count = await VoiceScripts(api.redis, api.keys).record_suspected_clone(
        notice_id=parking, at=now_iso(), recipients=[]
    )
    assert count == 1
    clone = ("suspected_cloned_plate", parking, "disputed")
    own = {
        "cc1": {("status", mine, s) for s in ("queued", "submitted", "delivered")},
        "cc2": {("status", theirs, s) for s in ("queued", "submitted")},
        "officer": {("status", parking, s) for s in ("queued", "dialing", "answered", "disputed")},
    }
    want = {
        "cc1": own["cc1"] | {clone},
        "cc2": own["cc2"] | {clone},
        "officer": own["officer"] | {clone},  # its own notice's report
        "admin": own["cc1"] | own["cc2"] | own["officer"] | {clone},
    }
    for name, reader in streams.items():
        got = await reader.take(len(want[name]), within=10)
        assert _seen(got) == want[name], name
        # Nothing else follows: the next thing on the stream is a heartbeat, not an event.
        with pytest.raises(TimeoutError):
            await reader.next(within=0.6)
        assert reader.comments >= 1, name
    first = (await _stream(api, cc1.token, last_event_id="0-0")).take(4)
    events = await first
    assert [e.data["status"] for e in events[:3]] == ["queued", "submitted", "delivered"]
    assert events[0].data["to"] == "138****8000"  # masked, as everywhere
    assert "key" not in events[0].data
    assert events[3].event == "suspected_cloned_plate"
    assert (events[3].data["plate"], events[3].data["count"]) == ("云A5C678", 1)


async def test_a_client_that_reconnects_with_last_event_id_misses_nothing(api: Gateway) -> None:
    cc = await api.add_key("command_center")
    reader = await _stream(api, cc.token)
    ids = [await _message(api, cc, f"1380013{n:04d}") for n in range(3)]
    first = await reader.take(3)
    assert [e.data["id"] for e in first] == ids
    await reader.resp.release()
    reader.resp.close()  # the connection drops; meanwhile more happens
    for nid in ids:
        await _move(api, nid, NoticeStatus.SUBMITTED)
    later = [await _message(api, cc, f"1390013{n:04d}") for n in range(2)]
    again = await _stream(api, cc.token, last_event_id=first[-1].id)
    got = await again.take(5)
    assert [(e.data["id"], e.data["status"]) for e in got] == [
        *((nid, "submitted") for nid in ids),
        *((nid, "queued") for nid in later),
    ]
    assert len({e.id for e in first + got}) == 8  # no event twice
    live = await _message(api, cc)
    assert (await again.next()).data["id"] == live  # and then on, live


async def test_a_resume_point_older_than_the_capped_stream_is_told_as_a_gap(api: Gateway) -> None:
    cc = await api.add_key("command_center")
    old = await _message(api, cc)
    events = api.keys.events(api.keys.notice_lane(old))  # the next message's lane too
    entries = await api.redis.xrange(events)
    await _message(api, cc)
    first_ms = entries[-1][0].split("-")[0]
    await api.redis.xtrim(events, minid=first_ms + "-1", approximate=False)
    await _move(api, old, NoticeStatus.SUBMITTED)
    reader = await _stream(api, cc.token, last_event_id="1-0")
    got = await reader.take(3)
    assert got[0].event == "gap"
    assert [e.data["status"] for e in got[1:]] == ["queued", "submitted"]


async def test_bad_resume_ids_and_backlog_get_clear_errors(api: Gateway) -> None:
    cc = await api.add_key("command_center")
    code, body, _ = await api.request(
        "GET", "/v1/events/stream", cc, headers={"Last-Event-ID": "yesterday"}
    )
    assert (code, body["error"]["code"]) == (400, "invalid_last_event_id")
    code, body, _ = await api.request("GET", "/v1/events/stream?backlog=5000", cc)
    assert (code, body["error"]["code"]) == (400, "invalid_query")
    code, _, _ = await api.request("GET", "/v1/events/stream")
    assert code == 401


async def test_backlog_starts_a_fresh_stream_with_the_keys_last_events(api: Gateway) -> None:
    cc, other = await api.add_key("command_center"), await api.add_key("command_center")
    mine = [await _message(api, cc) for _ in range(4)]
    await _message(api, other)
    reader = await _stream(api, cc.token, params={"backlog": "3"})
    got = await reader.take(3)
    assert [e.data["id"] for e in got] == mine[1:]


async def test_open_streams_end_when_the_app_stops(api: Gateway) -> None:
    readers = [await _stream(api, api._admin.token) for _ in range(3)]
    assert api.runner is not None
    async with asyncio.timeout(5):
        await api.runner.cleanup()
        api.runner = None
        for reader in readers:
            while await reader.next(within=5) is not None:
                pass
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("event-hub")]


async def test_a_stream_ends_within_a_heartbeat_once_its_key_is_revoked(api: Gateway) -> None:
    cc = await api.add_key("command_center")
    reader = await _stream(api, cc.token)
    await _message(api, cc)
    assert (await reader.next()).event == "status"
    assert await ApiKeyStore(api.redis, api.keys).revoke(cc.key.id)
    ended = await reader.next(within=5)
    assert ended is not None
    assert ended.event == "session_ended"
    assert await reader.next(within=5) is None


async def test_a_client_too_far_behind_is_closed_and_resumes_without_loss(
    api: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.api import event_hub

    monkeypatch.setattr(event_hub, "MAX_BUFFERED", 3)
    cc = await api.add_key("command_center")
    reader = await _stream(api, cc.token)
    # The hub hands entries over in one batch; more than 3 waiting closes the client.
    scripts = NoticeScripts(api.redis, api.keys)
    # Two recipients in one lane: its stream has the four changes at once.
    ids = [await _message(api, cc, phone) for phone in phones_in_lane(api.keys, 0, 2)]
    pipe = api.redis.pipeline(transaction=True)  # one MULTI: the hub reads all four at once
    for nid in ids:
        for status in (NoticeStatus.SUBMITTED, NoticeStatus.DELIVERED):
            await scripts._set_status(
                keys=api.keys.notice_step(nid),
                args={"id": nid, "status": status.value, "at": now_iso(), "detail_json": "{}"},
                client=pipe,
            )
    got = await reader.take(2)
    await pipe.execute()
    while (event := await reader.next()) is not None and event.event != "reconnect":
        got.append(event)
    assert event is not None
    assert event.data == {"reason": "too_slow"}
    again = await _stream(api, cc.token, last_event_id=got[-1].id)
    got += await again.take(6 - len(got))
    assert [(e.data["id"], e.data["status"]) for e in got] == [
        (ids[0], "queued"), (ids[1], "queued"),
        (ids[0], "submitted"), (ids[0], "delivered"), (ids[1], "submitted"), (ids[1], "delivered"),
    ]  # fmt: skip


async def test_a_client_resumed_past_what_this_process_read_gets_each_events_own_position(
    api: Gateway,
) -> None:
    # Another API process had read further (the client resumes from there): the entries it
    # saw are skipped, and each later event's id still says where that event is, even when
    # the hub reads them all at once.
    base = int(time.time() * 1000) + 60_000
    ids = [f"{base}-{n}" for n in range(1, 7)]

    def resume_from(eid: str) -> str:
        return ",".join([eid, *(["0-0"] * (api.keys.lanes - 1))])

    reader = await _stream(api, api._admin.token, last_event_id=resume_from(ids[2]))
    pipe = api.redis.pipeline(transaction=True)  # one MULTI: the hub reads all six at once
    for n, eid in enumerate(ids):
        pipe.xadd(api.keys.events(0), {"type": "status", "id": f"x{n}", "status": "queued"}, id=eid)
    await pipe.execute()
    got = await reader.take(3)
    assert [e.data["id"] for e in got] == ["x3", "x4", "x5"]
    assert [e.id.split(",")[0] for e in got] == ids[3:]
    reader.resp.close()
    again = await (await _stream(api, api._admin.token, last_event_id=got[0].id)).take(2)
    assert [e.data["id"] for e in again] == ["x4", "x5"]
