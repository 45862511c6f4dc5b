"""SMS text encoding and segmentation (pure).

GSM 03.38 (data_coding 0, one octet per septet on the SMPP link, as SMSCs expect) when every
character is in the GSM alphabet, UCS-2 (data_coding 8) otherwise. Long texts are split into
parts that carry a concatenation UDH (IEI 0x00, 8-bit reference): 153 septets or 67 UCS-2
characters a part. A surrogate pair or a GSM escape sequence is never cut in two.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from aiosmpplib import GSM7BitCodec
from aiosmpplib.codec import GSM_BASIC_ENCODE_MAP, GSM_EXTENDED_ENCODE_MAP

DATA_CODING_GSM7: Final = 0x00
DATA_CODING_UCS2: Final = 0x08
ESM_CLASS_UDHI: Final = 0x40

_GSM_SINGLE: Final = 160
_GSM_PART: Final = 153
_UCS2_SINGLE: Final = 70
_UCS2_PART: Final = 67
MAX_PARTS: Final = 255

_GSM = GSM7BitCodec.get_codec_info()
_GSM_CHARS: Final = frozenset(GSM_BASIC_ENCODE_MAP) | frozenset(GSM_EXTENDED_ENCODE_MAP)


class TextTooLong(ValueError):
    """The text needs more parts than a concatenated SMS can have."""


@dataclass(frozen=True, slots=True)
class SmsPart:
    """One submit_sm's worth of message: UDH (if any) followed by the encoded text."""

    index: int  # 0-based
    payload: bytes
    text: str


@dataclass(frozen=True, slots=True)
class EncodedSms:
    data_coding: int
    esm_class: int
    parts: tuple[SmsPart, ...]

    @property
    def count(self) -> int:
        return len(self.parts)

    @property
    def encoding(self) -> str:
        return "ucs2" if self.data_coding == DATA_CODING_UCS2 else "gsm7"


def _gsm_encode(text: str) -> bytes | None:
    if not _GSM_CHARS.issuperset(text):  # most of our texts: Chinese, decided in C
        return None
    try:
        return bytes(_GSM.encode(text, "strict")[0])
    except (UnicodeEncodeError, ValueError):
        return None


def reference_for(key: str) -> int:
    """A concatenation reference derived from the notice id, so a re-sent part matches."""
    return hashlib.blake2s(key.encode(), digest_size=1).digest()[0]


def _udh(ref: int, total: int, seq: int) -> bytes:
    return bytes((0x05, 0x00, 0x03, ref, total, seq))


def _chunks_gsm(text: str, size: int) -> list[str]:
    chunks: list[str] = []
    current: list[str] = []
    used = 0
    for ch in text:
        width = len(_GSM.encode(ch, "strict")[0])
        if used + width > size:
            chunks.append("".join(current))
            current, used = [], 0
        current.append(ch)
        used += width
    if current:
        chunks.append("".join(current))
    return chunks


def _chunks_ucs2(text: str, size: int) -> list[str]:
    chunks: list[str] = []
    current: list[str] = []
    used = 0
    for ch in text:
        width = 2 if ord(ch) > 0xFFFF else 1  # UTF-16 code units
        if used + width > size:
            chunks.append("".join(current))
            current, used = [], 0
        current.append(ch)
        used += width
    if current:
        chunks.append("".join(current))
    return chunks


def encode_sms(text: str, reference_key: str = "") -> EncodedSms:
    """Choose the coding for ``text`` and split it into parts."""
    if not text:
        raise ValueError("empty SMS text")
    gsm = _gsm_encode(text)
    ref = reference_for(reference_key or text)
    if gsm is not None:
        if len(gsm) <= _GSM_SINGLE:
            return EncodedSms(DATA_CODING_GSM7, 0, (SmsPart(0, gsm, text),))
        chunks = _chunks_gsm(text, _GSM_PART)
        coding = DATA_CODING_GSM7
    else:
        if len(text.encode("utf-16-be")) <= 2 * _UCS2_SINGLE:
            return EncodedSms(DATA_CODING_UCS2, 0, (SmsPart(0, text.encode("utf-16-be"), text),))
        chunks = _chunks_ucs2(text, _UCS2_PART)
        coding = DATA_CODING_UCS2
    total = len(chunks)
    if total > MAX_PARTS:
        raise TextTooLong(f"text needs {total} parts, at most {MAX_PARTS} are possible")
    parts = []
    for i, chunk in enumerate(chunks):
        body = _gsm_encode(chunk) if coding == DATA_CODING_GSM7 else chunk.encode("utf-16-be")
        assert body is not None
        parts.append(SmsPart(i, _udh(ref, total, i + 1) + body, chunk))
    return EncodedSms(coding, ESM_CLASS_UDHI, tuple(parts))


def decode_payload(
    payload: bytes, data_coding: int, esm_class: int
) -> tuple[str, tuple[int, int, int] | None]:
    """Decode a received short_message: the text and (reference, total, seq) if it has a UDH."""
    concat: tuple[int, int, int] | None = None
    body = payload
    if esm_class & ESM_CLASS_UDHI and payload:
        udhl = payload[0]
        udh = payload[1 : 1 + udhl]
        body = payload[1 + udhl :]
        i = 0
        while i + 1 < len(udh):
            iei, length = udh[i], udh[i + 1]
            data = udh[i + 2 : i + 2 + length]
            if iei == 0x00 and length == 3:
                concat = (data[0], data[1], data[2])
            elif iei == 0x08 and length == 4:
                concat = ((data[0] << 8) | data[1], data[2], data[3])
            i += 2 + length
    if data_coding == DATA_CODING_UCS2:
        text = body.decode("utf-16-be", errors="replace")
    elif data_coding in (DATA_CODING_GSM7, 0x01):
        try:
            text = str(_GSM.decode(body, "replace")[0])
        except ValueError:
            text = body.decode("latin-1")
    else:
        text = body.decode("latin-1")
    return text, concat


def count_parts(text: str) -> int:
    """How many SMS parts ``text`` needs, as ``encode_sms`` would split it (without building
    the payloads: cheap enough for a million rows)."""
    gsm = _gsm_encode(text)
    if gsm is not None:
        return 1 if len(gsm) <= _GSM_SINGLE else len(_chunks_gsm(text, _GSM_PART))
    units = len(text.encode("utf-16-le")) // 2
    if units <= _UCS2_SINGLE:
        return 1
    if units == len(text):  # no surrogate pairs: every cut falls on a character
        return -(-units // _UCS2_PART)
    return len(_chunks_ucs2(text, _UCS2_PART))
