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
