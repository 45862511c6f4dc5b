"""The queue entries a worker settled lately, to know one when it is handed out again.

A Redis failover can roll a consumer group back: the promoted replica had not yet received
the last reads (``XREADGROUP``) and acks of the old primary, so entries this worker already
sent and settled come back as new (``>``). Their outcome is on the replica (it was written,
and confirmed with ``WAIT``, before the entry was settled), so such an entry, checked like a
taken-over one, is acked instead of sent twice.

What a failover rolls back is what replication had not carried yet: the last milliseconds,
at most a second or so, of a worker's settles. Nothing is settled while the store is away,
so the last ``most`` settles are the ones before the outage however long it lasts; 32,768
is about nine seconds of a bulk worker at full speed, and about 5 MB.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

MOST = 32_768


class RecentlySettled:
    def __init__(self, most: int = MOST) -> None:
        self.most = most
        self._order: deque[Hashable] = deque()
        self._ids: set[Hashable] = set()

    def add(self, entry_id: Hashable) -> None:
        self._order.append(entry_id)
        self._ids.add(entry_id)
        if len(self._order) > self.most:
            self._ids.discard(self._order.popleft())

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)
