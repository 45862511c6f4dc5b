"""The simulator's files: the receipts it still owes, kept across a crash as a real SMSC keeps
them, and a log of every submit_sm it accepted (what fault tests count duplicates from).

Both are written with one unbuffered ``write`` per record before the submit_sm is answered, so
a ``kill -9`` loses nothing the ESME was told: the page cache keeps what was written.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class OwedReceipt:
    session_id: str
    system_id: str
    destination: str
    source: str
    message_id: str
    stat: str
    submitted: str  # the receipt's YYMMDDhhmm


def _append(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


class ReceiptJournal:
    """Receipts owed, as ``o`` (owed) and ``p`` (paid) lines; ``n`` keeps the next message id.

    Opening it reads what a previous run still owed and rewrites the file with only that.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.owed: dict[str, OwedReceipt] = {}
        self.next_id = 1
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                self._replay(line.split("\t"))
        self._fd = -1
        self._compact()

    def _replay(self, f: list[str]) -> None:
        if f[0] == "o" and len(f) == 7:
            # The session is gone after a restart: the receipt goes to the next bind.
            self.owed[f[1]] = OwedReceipt("", f[2], f[3], f[4], f[1], f[5], f[6])
            self.next_id = max(self.next_id, int(f[1], 16) + 1)
        elif f[0] == "p" and len(f) == 2:
            self.owed.pop(f[1], None)
        elif f[0] == "n" and len(f) == 2:
            self.next_id = max(self.next_id, int(f[1]))
        # anything else: a line cut short by the crash; its submit_sm was never answered

    def _compact(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        lines = [f"n\t{self.next_id}\n"]
        lines += [self._line(p) for p in self.owed.values()]
        tmp.write_text("".join(lines), encoding="utf-8")
        os.replace(tmp, self.path)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = _append(self.path)
        self._written = len(lines)

    @staticmethod
    def _line(p: OwedReceipt) -> str:
        # The session id means nothing to the next run.
        return (
            f"o\t{p.message_id}\t{p.system_id}\t{p.destination}\t{p.source}\t{p.stat}"
            f"\t{p.submitted}\n"
        )

    def owe(self, p: OwedReceipt, next_id: int) -> None:
        self.owed[p.message_id] = p
        self.next_id = next_id
        self._write(self._line(p))

    def paid(self, message_id: str) -> None:
        if self.owed.pop(message_id, None) is not None:
            self._write(f"p\t{message_id}\n")
            # Bounded file: rewrite it once paid lines far outnumber what is still owed.
            if self._written > 100_000 + 4 * len(self.owed):
                self._compact()

    def _write(self, line: str) -> None:
        os.write(self._fd, line.encode())
        self._written += 1

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class AcceptLog:
    """One line per accepted submit_sm: time, message id, destination, part (seq/total)."""

    def __init__(self, path: str | Path) -> None:
        self._fd = _append(Path(path))

    def accepted(self, message_id: str, destination: str, part: str) -> None:
        os.write(self._fd, f"{time.time():.3f}\t{message_id}\t{destination}\t{part}\n".encode())

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def read_accept_log(path: str | Path) -> list[tuple[float, str, str, str]]:
    """The log's lines as (time, message id, destination, part); a cut last line is skipped."""
    out: list[tuple[float, str, str, str]] = []
    p = Path(path)
    if not p.exists():
        return out
    for line in p.read_text(encoding="utf-8").splitlines():
        f = line.split("\t")
        if len(f) == 4:
            out.append((float(f[0]), f[1], f[2], f[3]))
    return out
