"""Which lane an entity is kept in (docs/redis-cluster.md, stage 3): a notice's lane is
written in its id; a recipient's follows from their number; an idempotency key's record is
in its notice's lane, found again through the lane written first."""

from __future__ import annotations

import re
from collections import Counter

import pytest
import redis.asyncio as aioredis

from gateway.api.routes_notices import NOTICE_ID
from gateway.core.binding_codes import is_ref, new_ref
from gateway.core.records import Notice
from gateway.store.keys import Keys, hashed_lane
from gateway.store.notice_scripts import CreateOutcome
from gateway.store.notices import IdempotencyConflict, NoticeStore, new_notice_id

AT = "2026-12-03T08:00:00.000Z"


@pytest.mark.parametrize("lanes", [1, 2, 3, 7, 64])
def test_a_notice_id_names_the_lane_it_was_made_for(lanes: int) -> None:
    keys = Keys("gw", lanes)
    for lane in keys.each_lane():
        tails = Counter()
        for _ in range(200):
            notice_id = new_notice_id(keys, lane)
            assert NOTICE_ID.match(notice_id)
            assert keys.notice_lane(notice_id) == lane
            assert keys.notice(notice_id).startswith(keys.in_lane(lane))
            tails[notice_id[-2:]] += 1
        # The byte that names the lane takes each of the values that name it.
        assert len(tails) >= min(20, 256 // lanes)


def test_with_one_lane_ids_and_keys_are_what_they_were() -> None:
    keys = Keys("gw")
    notice_id = new_notice_id(keys, 0)
    assert re.fullmatch(r"ntc_[0-9a-z]+[0-9a-f]{16}", notice_id)
    assert keys.notice(notice_id) == f"gw:{{gw.L0}}:n:{notice_id}"
    assert keys.recipient_lane("13800000001") == 0
    assert keys.carrier_lane("0a1b") == 0


def test_recipients_and_carrier_ids_spread_over_the_lanes_the_same_way_everywhere() -> None:
    keys = Keys("gw", 4)
    lanes = Counter(keys.recipient_lane(f"1380000{i:04d}") for i in range(4000))
    assert set(lanes) == {0, 1, 2, 3}
    assert min(lanes.values()) > 800
    assert keys.recipient_lane("13800000001") == hashed_lane("13800000001", 4)
    assert keys.latest_alert("13800000001").startswith(
        keys.in_lane(keys.recipient_lane("13800000001"))
    )


def _message(keys: Keys, to: str) -> Notice:
    return Notice(
        id=new_notice_id(keys, keys.recipient_lane(to)),
        kind="message",
        channel="sms",
        to=to,
        created_at=AT,
        key_id="k",
    )


def _two_recipients_in_two_lanes(keys: Keys) -> tuple[str, str]:
    first = "13800000001"
    for i in range(2, 100):
        other = f"138000000{i:02d}"
        if keys.recipient_lane(other) != keys.recipient_lane(first):
            return first, other
    raise AssertionError("no two lanes")


async def test_an_idempotency_key_is_answered_from_its_notices_lane(
    r: aioredis.Redis, prefix: str
) -> None:
    keys = Keys(prefix, 3)
    store = NoticeStore(r, keys)
    a, b = _two_recipients_in_two_lanes(keys)
    first = _message(keys, a)
    made = await store.create(first, keys.sms_queue(keys.notice_lane(first.id)),
                              idempotency_key="idem-1", body_hash="h-a")  # fmt: skip
    assert made.outcome is CreateOutcome.CREATED
    # The same request again (same recipient, so the same lane): the notice made before.
    again = _message(keys, a)
    replay = await store.create(again, keys.sms_queue(keys.notice_lane(again.id)),
                                idempotency_key="idem-1", body_hash="h-a")  # fmt: skip
    assert (replay.outcome, replay.notice_id) == (CreateOutcome.EXISTING, first.id)
    # Another body, whose notice would be in another lane: a conflict, and nothing made.
    other = _message(keys, b)
    with pytest.raises(IdempotencyConflict) as caught:
        await store.create(other, keys.sms_queue(keys.notice_lane(other.id)),
                           idempotency_key="idem-1", body_hash="h-b")  # fmt: skip
    assert caught.value.notice_id == first.id
    assert await store.get(other.id) is None
    assert await store.get(again.id) is None


async def test_an_idempotency_key_whose_first_notice_was_never_stored_is_a_conflict_elsewhere(
    r: aioredis.Redis, prefix: str
) -> None:
    """The lane was written, and the process died before the notice: the same request
    again makes it (in that lane); one whose notice would be in another lane is refused."""
    keys = Keys(prefix, 3)
    store = NoticeStore(r, keys)
    a, b = _two_recipients_in_two_lanes(keys)
    await r.set(keys.idempotency_lane("k", "idem-2"), keys.recipient_lane(a))
    other = _message(keys, b)
    with pytest.raises(IdempotencyConflict):
        await store.create(other, keys.sms_queue(keys.notice_lane(other.id)),
                           idempotency_key="idem-2", body_hash="h-b")  # fmt: skip
    retried = _message(keys, a)
    made = await store.create(retried, keys.sms_queue(keys.notice_lane(retried.id)),
                              idempotency_key="idem-2", body_hash="h-a")  # fmt: skip
    assert made.outcome is CreateOutcome.CREATED
    assert await store.get(retried.id) is not None


def test_a_lane_outside_the_lanes_is_refused() -> None:
    keys = Keys("gw", 3)
    with pytest.raises(ValueError, match="lane 3"):
        keys.stamp_lane("00ff", 3)
    with pytest.raises(ValueError, match="needs the Keys"):
        new_notice_id(None, 1)


@pytest.mark.parametrize("lanes", [1, 3, 7])
def test_a_binding_reference_names_its_plates_lane(lanes: int) -> None:
    keys = Keys("gw", lanes)
    for plate in ("云A12345", "云B00001", "京C99999", "粤Z1234港"):
        lane = keys.plate_lane(plate)
        for _ in range(50):
            ref = new_ref(lane, lanes)
            assert is_ref(ref)
            assert keys.ref_lane(ref) == lane
            assert keys.binding_request(ref).startswith(keys.in_lane(lane))
        assert keys.binding(plate).startswith(keys.in_lane(lane))
        assert keys.warnings(plate).startswith(keys.in_lane(lane))
