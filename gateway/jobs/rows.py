"""Recipient rows of a reminder job (pure): header checks, row checks, the stored form.

A row is stored as one tab-separated string, ``to`` then the template's parameters in the
template's order, so a million rows stay compact in Redis and cheap to read back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from gateway.core.emails import is_email
from gateway.core.phones import InvalidPhone, MobileRanges
from gateway.core.templates import Template, TemplateError

MAX_PARAM_LEN: Final = 200
_FORBIDDEN: Final = re.compile(r"[\t\r\n\x00]")


class BadRow(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Columns:
    """Where ``to`` and each template parameter sit in the uploaded header."""

    to: int
    params: tuple[int, ...]


def expected_header(template: Template) -> str:
    return ",".join(("to", *template.params))


def _header_error(code: str, problem: str, names: list[str], template: Template) -> TemplateError:
    """The problem, the header the template wants and the one that was read."""
    want = expected_header(template)
    hint = ""
    if len(names) == 1:
        sep = next((s for s in (";", "\t", "|") if s in names[0]), "")
        if sep:
            hint = f"; the file is separated by {sep!r}: save it as CSV with commas"
    return TemplateError(
        code,
        f"{problem}; expected the header {want}, read {','.join(names)[:200]}{hint}",
        {"expected": want.split(","), "read": names[:50]},
    )


def check_header(header: list[str], template: Template) -> Columns:
    """A missing or extra column is a TemplateError naming it and the expected header."""
    names = [h.strip() for h in header]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise _header_error("duplicate_columns", f"duplicate columns: {dupes}", names, template)
    if "to" not in names:
        raise _header_error("missing_params", "the header has no 'to' column", names, template)
    missing = [p for p in template.params if p not in names]
    if missing:
        raise _header_error(
            "missing_params", f"missing template parameters: {missing}", names, template
        )
    extra = [n for n in names if n != "to" and n not in template.params]
    if extra:
        raise _header_error(
            "unknown_params", f"columns not in the template: {extra}", names, template
        )
    return Columns(names.index("to"), tuple(names.index(p) for p in template.params))


class RowChecker:
    """Checks one row at a time; returns its stored form or raises BadRow."""

    def __init__(self, template: Template, channel: str) -> None:
        self.template = template
        self.channel = channel
        self.mobiles = MobileRanges()

    def recipient(self, to: str) -> str:
        to = to.strip()
        if self.channel == "email":
            if not is_email(to):
                raise BadRow(f"to: {to[:40]!r} is not an email address")
            return to
        try:
            return self.mobiles.national(to)
        except InvalidPhone as exc:
            raise BadRow(f"to: {exc}") from None

    def stored(self, to: str, params: list[str]) -> str:
        out = [self.recipient(to)]
        for name, value in zip(self.template.params, params, strict=True):
            value = value.strip()
            if not value:
                raise BadRow(f"{name}: empty")
            if len(value) > MAX_PARAM_LEN or _FORBIDDEN.search(value):
                raise BadRow(f"{name}: longer than {MAX_PARAM_LEN} or has control characters")
            out.append(value)
        return "\t".join(out)

    def row(self, fields: list[str], columns: Columns) -> str:
        if len(fields) != len(columns.params) + 1:
            raise BadRow(f"{len(fields)} fields, the header has {len(columns.params) + 1}")
        return self.stored(fields[columns.to], [fields[i] for i in columns.params])


def split_stored(row: str) -> tuple[str, list[str]]:
    to, *params = row.split("\t")
    return to, params
