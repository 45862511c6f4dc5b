"""Which text encoding an uploaded CSV is in, and its lines decoded (pure, streaming).

Back offices save CSV from Excel: "CSV UTF-8" (a BOM, CRLF), plain "CSV" on a Chinese Windows
(GB18030/GBK, no BOM, nothing declared) or "Unicode text" (UTF-16 with a BOM). The order: a
BOM, then the charset the request declares, then a sniff of the first lines (UTF-8 if they
decode as UTF-8, else GB18030 if they decode as that). GBK and GB2312 are read as GB18030,
which contains both.
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final

SNIFF_BYTES: Final = 64 * 1024
# No CSV row is this long; an upload whose newlines were stripped is (curl -d strips them).
MAX_LINE: Final = 1024 * 1024
_GB: Final = frozenset({"gbk", "gb2312", "gb18030", "cp936", "hz"})
_BOMS: Final = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class UnknownCharset(ValueError):
    pass


class NotText(ValueError):
    """A stream in a wide encoding (UTF-16) that does not decode, or a line longer than
    ``MAX_LINE``: no line can be trusted."""


def _too_long() -> NotText:
    return NotText(
        f"a line of the upload is longer than {MAX_LINE // 1024} KiB: its newlines were "
        "probably stripped (curl -d does that); send the file with curl --data-binary "
        "@file.csv, or with gateway jobs submit"
    )


class _Lines:
    """Splits a stream into lines in linear time: a line that spans many chunks is kept as
    parts and joined once (re-joining the tail per chunk is quadratic in the line's length)."""

    def __init__(self, newline: Any) -> None:
        self.newline = newline
        self.parts: list[Any] = []
        self.pending = 0

    def feed(self, chunk: Any) -> list[Any]:
        if self.newline not in chunk:
            self.parts.append(chunk)
            self.pending += len(chunk)
            if self.pending > MAX_LINE:
                raise _too_long()
            return []
        lines: list[Any] = chunk.split(self.newline)
        if self.parts:
            lines[0] = chunk[:0].join([*self.parts, lines[0]])
        if len(lines[0]) > MAX_LINE:
            raise _too_long()
        tail = lines.pop()
        self.parts, self.pending = ([tail], len(tail)) if tail else ([], 0)
        return lines

    def rest(self, empty: Any) -> Any:
        return empty.join(self.parts)


@dataclass(frozen=True, slots=True)
class Encoding:
    name: str  # a Python codec name
    label: str  # as the error messages say it: UTF-8, GB18030, UTF-16
    # Byte-oriented encodings keep b"\n" for a newline and never inside a character (UTF-8,
    # GB18030): lines are split as bytes and each decoded alone, so one bad row is one bad
    # line. Wide ones (UTF-16) are decoded as a stream.
    bytewise: bool


def declared(charset: str | None) -> Encoding | None:
    """The encoding a Content-Type charset names; raises ``UnknownCharset``."""
    if not charset:
        return None
    try:
        name = codecs.lookup(charset.strip().strip('"')).name
    except LookupError:
        raise UnknownCharset(f"unknown charset {charset!r}") from None
    if name in _GB:
        name = "gb18030"
    return _encoding(name)


def _encoding(name: str) -> Encoding:
    bytewise = "\n".encode(name) == b"\n" and not name.startswith(("utf-16", "utf-32"))
    label = {"utf-8": "UTF-8", "gb18030": "GB18030"}.get(name, name.upper())
    return Encoding(name, label, bytewise)


def sniff(head: bytes, charset: str | None, complete: bool) -> tuple[Encoding, int]:
    """The encoding of a stream that starts with ``head``, and how many BOM bytes to skip."""
    for bom, name in _BOMS:
        if head.startswith(bom):
            return _encoding(name), len(bom) if name == "utf-8" else 0
    named = declared(charset)
    if named is not None:
        return named, 0
    # Whole lines only: the buffer may end inside a character.
    sample = head if complete else head[: head.rfind(b"\n") + 1] or head
    for name in ("utf-8", "gb18030"):
        try:
            sample.decode(name)
        except UnicodeDecodeError:
            continue
        return _encoding(name), 0
    return _encoding("utf-8"), 0


async def decoded_lines(
    chunks: AsyncIterator[bytes], charset: str | None
) -> AsyncIterator[tuple[list[str | None], Encoding, bool]]:
    """Batches of lines (without line ends); ``None`` for a line that does not decode. The
    flag is True on the line after the body's last newline (the only one, if it has none)."""
    head = b""
    it = chunks.__aiter__()
    complete = False
    while len(head) < SNIFF_BYTES:
        try:
            head += await it.__anext__()
        except StopAsyncIteration:
            complete = True
            break
    enc, skip = sniff(head, charset, complete)
    rest = _rest(head[skip:], it, complete)
    if enc.bytewise:
        split = _Lines(b"\n")
        async for chunk in rest:
            yield [_decode(b, enc.name) for b in split.feed(chunk)], enc, False
        if tail := split.rest(b""):
            yield [_decode(tail, enc.name)], enc, True
        return
    decoder = codecs.getincrementaldecoder(enc.name)()
    texts = _Lines("\n")
    try:
        async for chunk in rest:
            yield [t.rstrip("\r") for t in texts.feed(decoder.decode(chunk))], enc, False
        if last := texts.feed(decoder.decode(b"", final=True)):
            yield [t.rstrip("\r") for t in last], enc, False
    except UnicodeDecodeError as exc:
        raise NotText(f"the upload is not valid {enc.label} text: {exc.reason}") from None
    if text_tail := texts.rest(""):
        yield [text_tail.rstrip("\r")], enc, True


def _decode(line: bytes, name: str) -> str | None:
    try:
        return line.decode(name).rstrip("\r")
    except UnicodeDecodeError:
        return None


async def _rest(head: bytes, it: AsyncIterator[bytes], complete: bool) -> AsyncIterator[bytes]:
    if head:
        yield head
    if not complete:
        async for chunk in it:
            yield chunk
