"""The queue entries a worker settled lately, to know one when it is handed out again.

A Redis failover can roll a consumer group back: the promoted replica had not yet received
the last reads (``XREADGROUP``) and acks of the old primary, so entries this worker already
sent and settled come back as new (``>``). Their outcome is on the replica (it was written,
and confirmed with ``WAIT``, before the entry was settled), so such an entry, checked like a
taken-over one, is acked instead of sent twice. A failover rolls back what replication had
not carried yet, milliseconds to seconds; the horizon covers that many times over.
"""

from __future__ import annotations

import time
from collections import deque


class RecentlySettled:
    def __init__(self, horizon_s: float, most: int = 262_144) -> None:
        self.horizon_s = horizon_s
        self.most = most
        self._order: deque[tuple[float, str]] = deque()
        self._ids: set[str] = set()

    def add(self, entry_id: str) -> None:
        now = time.monotonic()
        self._order.append((now, entry_id))
        self._ids.add(entry_id)
        order, ids = self._order, self._ids
        while order and (order[0][0] < now - self.horizon_s or len(order) > self.most):
            ids.discard(order.popleft()[1])

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)
