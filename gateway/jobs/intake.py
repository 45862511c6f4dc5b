"""Taking a job's recipients in: CSV streamed from the request body, or a JSON list.

Rows are checked one by one; a bad row is reported by its line number (CSV; the header is
line 1) or its index (JSON) and the good rows go on. Rows are appended to Redis in batches,
and the event loop is yielded between slices, so a million-row upload neither holds the rows
in memory nor stalls other requests.
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from gateway.core.templates import Template, TemplateError
from gateway.jobs.charsets import Encoding, NotText, decoded_lines
from gateway.jobs.rows import BadRow, Columns, RowChecker, check_header, split_stored
from gateway.sms.encoding import MAX_PARTS, count_parts
from gateway.store.jobs import JobStore

BATCH = 5000
BAD_REPORTED = 100


class TooManyRows(ValueError):
    pass


class NotCsv(ValueError):
    pass


@dataclass(slots=True)
class Intake:
    """Counts and the first bad rows of one upload."""

    store: JobStore
    job_id: str
    template: Template
    channel: str
    max_rows: int
    total: int = 0
    bad: int = 0
    segments: int = 0
    max_segments: int = 0
    bad_sample: list[dict[str, Any]] = field(default_factory=list)
    _rows: list[str] = field(default_factory=list)
    _bad: list[dict[str, Any]] = field(default_factory=list)
    checker: RowChecker = field(init=False)
    _one_line: bool = False  # the body has no newline at all

    def __post_init__(self) -> None:
        self.checker = RowChecker(self.template, self.channel)

    def _good(self, stored: str) -> None:
        if self.channel == "sms":
            _, params = split_stored(stored)
            text = self.template.text.format_map(
                dict(zip(self.template.params, params, strict=True))
            )
            parts = count_parts(text)
            if parts > MAX_PARTS:
                raise BadRow(f"the message needs {parts} SMS parts, at most {MAX_PARTS}")
            self.segments += parts
            self.max_segments = max(self.max_segments, parts)
        self.total += 1
        if self.total > self.max_rows:
            raise TooManyRows(f"more than {self.max_rows} recipients")
        self._rows.append(stored)

    def _reject(self, where: dict[str, Any], error: str) -> None:
        self.bad += 1
        entry = {**where, "error": error}
        self._bad.append(entry)
        if len(self.bad_sample) < BAD_REPORTED:
            self.bad_sample.append(entry)

    async def flush(self, force: bool = False) -> None:
        if force or len(self._rows) >= BATCH:
            rows, bad, self._rows, self._bad = self._rows, self._bad, [], []
            await self.store.append(self.job_id, rows, bad)

    # -- CSV --------------------------------------------------------------------------------
    async def csv_stream(self, chunks: AsyncIterator[bytes], charset: str | None = None) -> None:
        """Rows from a CSV body in UTF-8, GB18030/GBK or UTF-16 (see ``charsets``)."""
        columns: Columns | None = None
        line_no = 0
        try:
            async for lines, enc, last in decoded_lines(chunks, charset):
                self._one_line = last and line_no == 0
                columns, line_no = self._csv_lines(lines, enc, columns, line_no)
                await self.flush()
                await asyncio.sleep(0)  # let other requests in between slices
        except NotText as exc:
            raise NotCsv(str(exc)) from None
        if columns is None:
            raise NotCsv("the upload has no header row")
        await self.flush(force=True)

    def _csv_lines(
        self, raw: Iterable[str | None], enc: Encoding, columns: Columns | None, line_no: int
    ) -> tuple[Columns | None, int]:
        for text in raw:
            line_no += 1
            if text is None:
                if columns is None:
                    raise NotCsv(f"the header row is not {enc.label} text")
                self._reject({"line": line_no}, f"not {enc.label} text")
                continue
            if not text.strip():
                continue
            try:
                fields = next(csv.reader([text]))
            except csv.Error as exc:
                if columns is None:
                    raise NotCsv(f"the header row is not CSV: {exc}") from None
                self._reject({"line": line_no}, f"not CSV: {exc}")
                continue
            if columns is None:
                columns = self._header(fields, line_no)
                continue
            try:
                self._good(self.checker.row(fields, columns))
            except BadRow as exc:
                self._reject({"line": line_no}, str(exc))
        return columns, line_no

    def _header(self, fields: list[str], line_no: int) -> Columns:
        try:
            return check_header(fields, self.template)  # TemplateError -> 422
        except TemplateError as exc:
            # The whole upload on one line with more fields than a header: curl -d (and
            # --data) strip the file's newlines.
            if line_no == 1 and self._one_line and len(fields) > len(self.template.params) + 1:
                raise TemplateError(
                    "csv_newlines_stripped",
                    f"the upload is a single line of {len(fields)} fields: its newlines were "
                    "stripped (curl -d does that); send the file with curl --data-binary "
                    "@file.csv, or with gateway jobs submit",
                    exc.details,
                ) from None
            raise

    # -- JSON -------------------------------------------------------------------------------
    async def json_list(self, recipients: list[Any]) -> None:
        for i, r in enumerate(recipients):
            try:
                if not isinstance(r, dict) or not isinstance(r.get("to"), str):
                    raise BadRow("each recipient is {to, params}")
                params = r.get("params") or {}
                if not isinstance(params, dict):
                    raise BadRow("params must be an object")
                missing = [p for p in self.template.params if p not in params]
                extra = [p for p in params if p not in self.template.params]
                if missing or extra:
                    raise BadRow(f"missing parameters {missing}, unknown parameters {extra}")
                values = []
                for p in self.template.params:
                    v = params[p]
                    if isinstance(v, bool) or not isinstance(v, str | int | float):
                        raise BadRow(f"{p}: text or a number")
                    values.append(str(v))
                self._good(self.checker.stored(r["to"], values))
            except BadRow as exc:
                self._reject({"index": i}, str(exc))
            if i % 1000 == 999:
                await self.flush()
                await asyncio.sleep(0)
        await self.flush(force=True)


__all__ = ["Intake", "NotCsv", "TemplateError", "TooManyRows"]
