"""Who notified whom: the audit stream's entries, built in one place.

An entry is a flat map of strings (a Redis stream entry). The recipient is kept masked, with
a digest beside it so that an admin can find a person's notices by their full number
without the log holding it. The job admission script computes the same digest and mask in
Lua for reminder rows (``job_admit.lua``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from gateway.core.phones import mask


def recipient_digest(to: str) -> str:
    """The digest an entry carries for its recipient (a national number or an address)."""
    # SHA-1 because Lua in Redis has it (redis.sha1hex); a lookup digest, not a secret.
    return hashlib.sha1(f"to:{to}".encode(), usedforsecurity=False).hexdigest()[:16]


def mask_recipient(to: str) -> str:
    """138****8000 for a number; l***@example.com for an address."""
    if "@" in to:
        local, _, domain = to.partition("@")
        return f"{local[:1]}***@{domain}"
    return mask(to)


def audit_entry(
    event: str,
    *,
    at: str,
    key_id: str,
    key_name: str,
    notice_id: str = "",
    kind: str = "",
    to: str = "",
    **extra: Any,
) -> dict[str, str]:
    """One entry; empty values are left out."""
    entry: dict[str, Any] = {
        "event": event,
        "at": at,
        "key_id": key_id,
        "key_name": key_name,
        "notice_id": notice_id,
        "kind": kind,
        **extra,
    }
    if to:
        entry["to"] = mask_recipient(to)
        entry["to_digest"] = recipient_digest(to)
    return {k: str(v) for k, v in entry.items() if v not in ("", None)}


def expand_entry(fields: dict[str, str]) -> list[dict[str, str]]:
    """The entries one stream entry stands for: a 'notices_created' entry (the notices of one
    admitted slice of a reminder job, written by ``job_admit.lua``) is one 'notice_created'
    per notice, newest first like the stream; any other entry is itself."""
    if fields.get("event") != "notices_created":
        return [fields]
    common = {k: v for k, v in fields.items() if k != "notices"}
    common["event"] = "notice_created"
    made = json.loads(fields.get("notices", "[]"))
    return [
        {**common, "notice_id": notice_id, "to": to, "to_digest": digest}
        for notice_id, to, digest in reversed(made)
    ]
