"""The webhook envelope, and its entry on the signed outbox, for webhooks Python makes.

The Lua scripts build the envelopes of status changes, job ends and clone reports
(``gateway/store/lua/webhook.lua``) with these same fields; a test holds the two together.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def webhook_envelope(
    *,
    id: str,
    kind: str,
    at: str,
    detail: Mapping[str, Any],
    channel: str | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    """What a webhook's body says: the object, what happened to it, when; a field that does
    not apply (a clone report has no channel) is left out."""
    body: dict[str, Any] = {"id": id, "kind": kind}
    if channel is not None:
        body["channel"] = channel
    if status is not None:
        body["status"] = status
    body["at"] = at
    body["detail"] = dict(detail)
    return body


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One webhook waiting on the outbox stream (``Keys.webhook_queue``)."""

    id: str
    key_id: str
    url: str
    body: str
    first_at: str
    attempt: int = 1

    @classmethod
    def of(cls, envelope: Mapping[str, Any], *, key_id: str, url: str) -> OutboxEntry:
        body = json.dumps(envelope, ensure_ascii=False)
        return cls(str(envelope["id"]), key_id, url, body, str(envelope["at"]))

    def fields(self) -> dict[str, str]:
        return {
            "id": self.id,
            "key_id": self.key_id,
            "url": self.url,
            "body": self.body,
            "attempt": str(self.attempt),
            "first_at": self.first_at,
        }
