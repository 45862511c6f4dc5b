"""Parking follow-ups on the real stack (Asterisk calls the owner, who presses 1): strikes are
warning slips, never calls; exactly once; each follow-up a signed webhook."""

from __future__ import annotations

import time
from typing import Any

from gateway.receipts.signing import verify
from gateway.store.follow_ups import LATE_AFTER_MS, FollowUpResult, FollowUpStore
from gateway.store.notices import FOLLOW_UP_MISSING_AFTER_MS
from tests.conftest import Gateway, Receiver
from tests.test_parking_notices import _bind, _notice

DAY_MS = 86400 * 1000


async def _post(gw: Gateway, officer: Any, plate: str, **extra: Any) -> dict[str, Any]:
    code, body, _ = await gw.request(
        "POST", "/v1/parking-notices", officer, _notice(plate, **extra)
    )
    assert code == 202, body
    return dict(body)


async def _follow_up(
    gw: Gateway, key: Any, notice_id: str, outcome: str, **headers: str
) -> tuple[int, Any]:
    code, body, _ = await gw.request(
        "POST",
        f"/v1/parking-notices/{notice_id}/follow-up",
        key,
        {"outcome": outcome, "officer_id": "K1234"},
        headers=headers,
    )
    return code, body


async def _stats(gw: Gateway) -> dict[str, Any]:
    code, body, _ = await gw.request("GET", "/v1/stats", gw._admin)
    assert code == 200, body
    return dict(body["total"])


async def test_a_plate_moved_after_every_call_is_never_due_a_penalty(
    voice_gateway: Gateway, receiver: Receiver
) -> None:
    gw = voice_gateway
    await _bind(gw, "云D10001", "13800138001")  # the sink callee presses 1
    officer = await gw.add_key("officer", [receiver.allow])
    for _ in range(3):
        made = await _post(gw, officer, "云D10001", callback_url=receiver.url)
        assert (made["warnings_so_far"], made["penalty_if_not_moved"]) == (0, False)
        await gw.wait_status(made["id"], "acknowledged", within=30)
        code, body = await _follow_up(gw, officer, made["id"], "moved")
        assert code == 200, body
        assert (body["status"], body["warning_number"], body["penalty_due"]) == (
            "moved",
            None,
            False,
        )
        notice = await gw.wait_status(made["id"], "moved")
        assert [h["status"] for h in notice["history"]][-2:] == ["acknowledged", "moved"]
        call = await receiver.wait_for(made["id"], "moved")
        assert call["body"]["kind"] == "parking_follow_up"
        assert call["body"]["detail"]["outcome"] == "moved"
        h = call["headers"]
        assert verify(
            officer.callback_secret,
            h["X-Gateway-Timestamp"],
            call["raw"],
            h["X-Gateway-Signature"],
        )
    parking = (await _stats(gw))["parking"]
    assert (parking["moved"], parking["warnings"], parking["penalties_due"]) == (3, 0, 0)


async def test_the_third_warning_slip_is_due_a_penalty_and_so_is_a_fourth(
    voice_gateway: Gateway,
) -> None:
    gw = voice_gateway
    await _bind(gw, "云D20002", "13800138001")
    officer = await gw.add_key("officer")
    answers = []
    for n in range(4):
        made = await _post(gw, officer, "云D20002")
        assert (made["warnings_so_far"], made["penalty_if_not_moved"]) == (n, n >= 2)
        code, body = await _follow_up(gw, officer, made["id"], "still_parked")
        assert code == 200, body
        answers.append((body["warning_number"], body["penalty_due"]))
    assert answers == [(1, False), (2, False), (3, True), (4, True)]
    parking = (await _stats(gw))["parking"]
    assert (parking["warnings"], parking["penalties_due"]) == (4, 2)


async def test_warning_slips_outside_the_window_do_not_count(voice_gateway: Gateway) -> None:
    gw = voice_gateway
    await _bind(gw, "云D30003", "13800138001")
    officer = await gw.add_key("officer")
    store = FollowUpStore(gw.redis, gw.keys)
    window = gw.settings.voice.reminder_window_days * DAY_MS
    for _ in range(2):  # two slips written a year and a month ago
        made = await _post(gw, officer, "云D30003")
        old = await store.record(
            notice_id=made["id"], plate="云D30003", key_id=officer.key.id, admin=False,
            outcome="still_parked", at="2025-01-01T00:00:00.000Z",
            now_ms=int(time.time() * 1000) - window - 30 * DAY_MS, window_ms=window,
            replay_mark="", detail={}, audit={"event": "follow_up"},
        )  # fmt: skip
        assert old.result is FollowUpResult.RECORDED
    made = await _post(gw, officer, "云D30003")
    assert made["warnings_so_far"] == 0
    code, body = await _follow_up(gw, officer, made["id"], "still_parked")
    assert (code, body["warning_number"], body["penalty_due"]) == (200, 1, False)


async def test_a_follow_up_is_taken_once_from_its_officer_and_refused_with_codes(
    voice_gateway: Gateway,
) -> None:
    gw = voice_gateway
    await _bind(gw, "云D40004", "13800138001")
    officer, other = await gw.add_key("officer"), await gw.add_key("officer")
    made = await _post(gw, officer, "云D40004")
    path = f"/v1/parking-notices/{made['id']}/follow-up"
    bad = [
        ({"outcome": "gone", "officer_id": "K1"}, "validation_error"),
        ({"outcome": "moved"}, "validation_error"),
        ({"outcome": "moved", "officer_id": "K 1"}, "validation_error"),
        ({"outcome": "moved", "officer_id": "K1", "extra": 1}, "validation_error"),
    ]
    for body, error in bad:
        code, answer, _ = await gw.request("POST", path, officer, body)
        assert (code, answer["error"]["code"]) == (422, error), body
    code, answer = await _follow_up(gw, other, made["id"], "moved")
    assert (code, answer["error"]["code"]) == (403, "forbidden")
    code, answer = await _follow_up(gw, officer, "ntc_0000000000000000000000", "moved")
    assert (code, answer["error"]["code"]) == (404, "not_found")

    hdr = {"Idempotency-Key": "handheld-fu-1"}
    first = await _follow_up(gw, officer, made["id"], "still_parked", **hdr)
    retry = await _follow_up(gw, officer, made["id"], "still_parked", **hdr)
    assert first == (200, retry[1])
    assert retry[1]["warning_number"] == 1
    code, answer = await _follow_up(gw, officer, made["id"], "moved")
    assert (code, answer["error"]["code"]) == (409, "follow_up_exists")
    assert answer["error"]["details"]["outcome"] == "still_parked"
    admin = await _follow_up(gw, gw._admin, made["id"], "moved")
    assert admin[0] == 409
    parking = (await _stats(gw))["parking"]
    assert (parking["warnings"], parking["moved"]) == (1, 0)  # the retry counted nothing
    entries = [f for _, f in await gw.redis.xrange(gw.keys.audit_log(0))]
    assert [e["event"] for e in entries if e.get("notice_id") == made["id"]] == [
        "notice_created",
        "follow_up",
    ]


async def test_late_and_missing_follow_ups(voice_gateway: Gateway) -> None:
    gw = voice_gateway
    await _bind(gw, "云D50005", "13800138001")
    officer = await gw.add_key("officer")
    made, late = await _post(gw, officer, "云D50005"), await _post(gw, officer, "云D50005")
    deadline = int(await gw.redis.hget(gw.keys.notice(made["id"]), "deadline_ms") or 0)
    store = FollowUpStore(gw.redis, gw.keys)
    refused = await store.record(
        notice_id=late["id"], plate="云D50005", key_id=officer.key.id, admin=False,
        outcome="moved", at="", now_ms=deadline + LATE_AFTER_MS + 60_000, window_ms=DAY_MS,
        replay_mark="", detail={}, audit={"event": "follow_up"},
    )  # fmt: skip
    assert refused.result is FollowUpResult.TOO_LATE
    # Two hours after the deadline: both count as missing once, however often this runs.
    for _ in range(2):
        await store.count_missing(now_ms=deadline + FOLLOW_UP_MISSING_AFTER_MS + 60_000)
    assert (await _stats(gw))["parking"]["follow_ups_missing"] == 2
    # One found later (inside 24 h) is no longer missing.
    code, _ = await _follow_up(gw, officer, made["id"], "moved")
    assert code == 200
    parking = (await _stats(gw))["parking"]
    assert (parking["follow_ups_missing"], parking["moved"]) == (1, 1)
