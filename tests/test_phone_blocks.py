"""The API's cached phone parsing answers exactly as ``parse_cn_mobile`` does."""

from __future__ import annotations

import random

import pytest

from gateway.core.phones import InvalidPhone, MobileRanges, parse_cn_mobile


def _verdict(parse: object, text: str) -> object:
    try:
        return parse(text)  # type: ignore[operator]
    except InvalidPhone as exc:
        return (exc.code, str(exc))


def test_cached_parse_gives_parse_cn_mobiles_answer_and_error() -> None:
    ranges = MobileRanges()
    rng = random.Random(7)
    texts = [
        "13800138000",
        "+8613800138000",
        "008613800138000",
        "12345678901",
        "abc",
        "+12025550100",
    ]
    for _ in range(3000):
        digits = "1" + str(rng.randint(3, 9)) + "".join(rng.choices("0123456789", k=9))
        texts.append(rng.choice(["", "+86", "86", "0086"]) + digits)
    for text in texts * 2:  # the second time from the cache
        assert _verdict(ranges.parse, text) == _verdict(parse_cn_mobile, text), text


def test_a_bad_block_keeps_its_own_error_message() -> None:
    ranges = MobileRanges()
    with pytest.raises(InvalidPhone) as first:
        ranges.parse("14000000000")
    with pytest.raises(InvalidPhone) as again:
        ranges.parse("14000000001")
    assert str(again.value) == str(first.value) != "not a valid Chinese mobile number"
