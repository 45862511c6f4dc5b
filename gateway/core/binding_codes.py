"""Binding requests (pure): references, one-time codes, and how the IVR reads things back.

A request's reference is 8 digits, so a caller can key it on a phone and the agent seat can
dial it as the extension of the transfer. The one-time code is 6 digits from ``secrets``; only
a hash of it is stored, keyed by a server-side secret (``GATEWAY_CODE_PEPPER``) and bound to
the reference: a million codes are tried in a second, so without the pepper a copy of Redis
would give the code away.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Final

REF_DIGITS: Final = 8
CODE_DIGITS: Final = 6
_REF: Final = re.compile(rf"^[0-9]{{{REF_DIGITS}}}$")
_CODE: Final = re.compile(rf"^[0-9]{{{CODE_DIGITS}}}$")
_SPOKEN_DIGITS: Final = dict(zip("0123456789", "零一二三四五六七八九", strict=True))


def new_ref(lane: int = 0, lanes: int = 1) -> str:
    """A random reference that is ``lane`` modulo ``lanes`` (the store lane of the request's
    plate: ``Keys.ref_lane`` reads it back)."""
    low, high = 10 ** (REF_DIGITS - 1), 10**REF_DIGITS  # no leading zero: some seats strip it
    n = secrets.randbelow(high - low) + low
    n = n - n % lanes + lane
    if n >= high:
        n -= lanes
    if n < low:
        n += lanes
    return str(n)


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def is_ref(text: str) -> bool:
    return bool(_REF.match(text))


def is_code(text: str) -> bool:
    return bool(_CODE.match(text))


def code_hash(ref: str, code: str, pepper: str) -> str:
    """What is stored and compared instead of the code."""
    mac = hmac.new(pepper.encode(), f"{ref}:{code}".encode(), hashlib.sha256)
    return "p1:" + mac.hexdigest()


def legacy_code_hash(ref: str, code: str) -> str:
    """The hash of requests made before the pepper (keyed by the reference alone): still
    compared, so those pending when the gateway is upgraded can be confirmed."""
    return hmac.new(ref.encode(), code.encode(), hashlib.sha256).hexdigest()


def spoken_digits(digits: str) -> str:
    """``0571`` -> ``零 五 七 一``: digit by digit, as a phone number is read in Mandarin."""
    return " ".join(_SPOKEN_DIGITS.get(d, d) for d in digits)


def spoken_plate(plate: str) -> str:
    """``云A12345`` -> ``云 A 一 二 三 四 五``: each character on its own, never as a number."""
    return " ".join(_SPOKEN_DIGITS.get(c, c) for c in plate)


def readback_text(plate: str, phone: str, has_binding: bool) -> str:
    """What the caller hears first: the plate, the last four digits, and the menu."""
    text = (
        f"您好，这里是交警提醒绑定服务。您正在将车牌 {spoken_plate(plate)} "
        f"绑定到尾号 {spoken_digits(phone[-4:])} 的手机。"
        "输入短信验证码请按1，取消本次绑定请按2。"
    )
    if has_binding:
        text += "该车牌已有绑定，如需用原绑定手机解除现有绑定，请按3。"
    return text


def sms_text(plate: str, code: str, ref: str, minutes: int) -> str:
    return (
        f"【交警提示】验证码{code}，您正在将车牌{plate}绑定到本手机以接收交警提醒，"
        f"业务编号{ref}，{minutes}分钟内有效。如非本人办理，请勿将验证码告诉任何人。"
    )
