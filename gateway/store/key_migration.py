"""Moving keys of the gateway before hash-tagged lanes to their names now (one time).

Until lanes (docs/redis-cluster.md), keys were named ``<prefix>:n:{ntc_x}``, API keys
``<prefix>:apikey:<hash>`` and so on; now every key a script touches is in lane 0,
``<prefix>:{<prefix>.L0}:n:ntc_x``, and API keys share ``{<prefix>.apikeys}``. A gateway
upgraded over an old store would not see its API keys, notices, jobs or queues. ``gateway
migrate-keys``, run once with every gateway process stopped, renames them (``RENAMENX``: a key
whose new name exists already is left and reported); streams keep their consumer groups.
It walks the keyspace with ``SCAN``: not for a running gateway's hot path.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from gateway.store.keys import Keys

# The key is dropped: it is remade within seconds (a bound link's mark), or holds nothing
# while every process is stopped (call slots).
DROP = ""
# Keys whose names did not change: limiters, heartbeats, console sessions, the per-phone
# binding-request counters (their lane tag came and went again).
_UNCHANGED = ("rate:", "hb:", "console:", "breq-day:", "lanes")


def new_name(keys: Keys, key: str) -> str | None:
    """The name now of ``key`` in the old scheme; ``None`` to leave it (already new, or
    never renamed); ``DROP`` to delete it."""
    head = f"{keys.prefix}:"
    if not key.startswith(head):
        return None
    rest = key[len(head) :]
    if rest == f"{keys.lane_tag(0)}:voice:active":  # lane 0's call slots: now one key of its own
        return DROP
    if rest.startswith("{") or rest.startswith(_UNCHANGED):
        return None
    if rest.startswith("smpp:bound:") or rest == "voice:active":
        return DROP
    if rest.startswith("apikey:"):
        return keys.api_key(rest.removeprefix("apikey:"))
    if rest == "apikeys":
        return keys.api_key_index
    return keys.in_lane(0) + rest.replace("{", "").replace("}", "")


@dataclass
class Report:
    renamed: Counter[str] = field(default_factory=Counter)  # by kind: the part before ':'
    dropped: int = 0
    conflicts: list[str] = field(default_factory=list)  # new name taken: old key left


async def migrate(redis: Any, keys: Keys, *, dry_run: bool = False) -> Report:
    report = Report()
    async for key in redis.scan_iter(match=f"{keys.prefix}:*", count=1000):
        target = new_name(keys, key)
        if target is None:
            continue
        kind = key.split(":", 2)[1]
        if target == DROP:
            report.dropped += 1
            if not dry_run:
                await redis.delete(key)
            continue
        if dry_run or await redis.renamenx(key, target):
            report.renamed[kind] += 1
        else:
            report.conflicts.append(key)
    return report
