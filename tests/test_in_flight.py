"""The SMPP window's accounting (pure)."""

from __future__ import annotations

from gateway.channels.worker import Delivery, Lane
from gateway.sms.encoding import encode_sms
from gateway.sms.in_flight import InFlight, Part


def _part() -> Part:
    delivery = Delivery("1-0", Lane.BULK, "ntc_x", {}, reclaimed=False)
    return Part(delivery, "8613900000001", encode_sms("测试", "ntc_x"), 0)


def test_a_throttled_part_handed_again_does_not_time_out_before_it_is_written_again() -> None:
    """Its previous attempt's write time must not count: expired while it waits for a rate
    token, its next write would find no place and its answer would be ignored, and the
    session's end would send it a second time."""
    flight, part = InFlight(), _part()
    part.token = "t1"
    flight.hand(part)
    flight.written(7, "t1", now=100.0)
    assert flight.answered(7) == (part, False)  # ESME_RTHROTTLED: sent again later
    part.token = "t2"
    flight.hand(part)  # waiting for its rate token, not on the wire yet
    assert flight.expire(written_before=200.0) == []
    flight.written(8, "t2", now=201.0)
    assert flight.answered(8) == (part, False)


def test_a_late_answer_is_reconciled_not_ignored() -> None:
    flight, part = InFlight(), _part()
    part.token = "t1"
    flight.hand(part)
    flight.written(9, "t1", now=100.0)
    assert flight.expire(written_before=104.0) == [part]
    assert len(flight) == 0
    assert flight.late == 1
    assert flight.answered(9) == (part, True)
    assert flight.late == 0


def test_an_accepted_part_holds_its_window_place_until_its_carrier_id_is_stored() -> None:
    """What a crash can make the gateway send twice (accepted by the SMSC, id not yet in
    Redis) is then bounded by the window."""
    flight, part = InFlight(), _part()
    part.token = "t1"
    flight.hand(part)
    flight.written(3, "t1", now=1.0)
    assert flight.answered(3) == (part, False)
    assert len(flight) == 0
    flight.storing(part)
    assert (len(flight), flight.bulk) == (1, 1)
    assert flight.lost() == []  # a new session does not send it again: it was answered
    assert len(flight) == 1  # ... and it still holds its place across the re-bind
    flight.stored(part)
    assert (len(flight), flight.bulk) == (0, 0)


def test_a_lost_session_counts_the_written_parts_it_held() -> None:
    flight, written, handed = InFlight(), _part(), _part()
    written.token, handed.token = "t1", "t2"
    flight.hand(written)
    flight.hand(handed)
    flight.written(1, "t1", now=1.0)
    assert len(flight.lost()) == 2
    assert flight.lost_written == 1  # the one the SMSC may have: a possible duplicate
