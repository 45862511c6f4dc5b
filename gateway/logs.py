"""Logging set-up, with a filter that masks any Chinese mobile number and any API key or
secret that slips into a line: the message, its traceback and its stack alike.

The filter sits on the one root handler, so every logger's records pass it: the gateway's,
and aiohttp's access and error loggers (a bad request line carries whatever the client sent,
a full phone number or an ``Authorization`` header included).
"""

from __future__ import annotations

import logging
import re
from typing import IO

_MOBILE = re.compile(r"(?<!\d)(\+?86)?(1[3-9]\d)(\d{4})(\d{4})(?!\d)")
# API keys (gwk_<id>_<secret>: the id stays, it names the key), callback secrets, and
# whatever follows "Bearer" (a token that is not a key of ours is still a credential).
_API_KEY = re.compile(r"(gwk_[0-9a-f]{1,16}_)[A-Za-z0-9_-]+")
_SECRET = re.compile(r"(whsec_)[A-Za-z0-9_-]+")
_BEARER = re.compile(r"(?i)(bearer(?:\s|%20|\+)+)(?!\*\*\*)[^\s'\"\\,;]+")
_PLAIN = logging.Formatter()


def mask_numbers(text: str) -> str:
    return _MOBILE.sub(lambda m: f"{m.group(1) or ''}{m.group(2)}****{m.group(4)}", text)


def mask_secrets(text: str) -> str:
    text = _API_KEY.sub(r"\1***", text)
    text = _SECRET.sub(r"\1***", text)
    return _BEARER.sub(r"\1***", text)


def mask_text(text: str) -> str:
    return mask_numbers(mask_secrets(text))


class MaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        masked = mask_text(msg)
        if masked != msg:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            # Rendered here, masked, and cached where every formatter looks first.
            record.exc_text = _PLAIN.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        return True


def handler(stream: IO[str] | None = None) -> logging.Handler:
    """The gateway's log handler: one line per record, masked."""
    out = logging.StreamHandler(stream)
    out.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    out.addFilter(MaskingFilter())
    return out


def setup(level: str = "INFO") -> None:
    root = logging.getLogger()
    root.handlers[:] = [handler()]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
