"""Logging set-up, with a filter that masks any Chinese mobile number that slips into a line."""

from __future__ import annotations

import logging
import re

_MOBILE = re.compile(r"(?<!\d)(\+?86)?(1[3-9]\d)(\d{4})(\d{4})(?!\d)")


def mask_numbers(text: str) -> str:
    return _MOBILE.sub(lambda m: f"{m.group(1) or ''}{m.group(2)}****{m.group(4)}", text)


class MaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        masked = mask_numbers(msg)
        if masked != msg:
            record.msg, record.args = masked, None
        return True


# aiosmpplib logs whole PDUs as JSON on errors (e.g. a submit cut off by a shutdown): the text
# may be a binding code or a citizen's notice, so it is blanked out with the numbers.
_MESSAGE_FIELDS = re.compile(r'("(?:short_message|message_payload)":\s*)"(?:[^"\\]|\\.)*"')


def redact_messages(text: str) -> str:
    return _MESSAGE_FIELDS.sub(r'\1"<redacted>"', text)


class SmppLogFilter(logging.Filter):
    """For aiosmpplib's logger (it has its own handler, so the root's filter never sees it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = mask_numbers(redact_messages(msg))
        if clean != msg:
            record.msg, record.args = clean, None
        return True


def guard_smpp_logger(logger: logging.Logger) -> None:
    if not any(isinstance(f, SmppLogFilter) for f in logger.filters):
        logger.addFilter(SmppLogFilter())


def setup(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
