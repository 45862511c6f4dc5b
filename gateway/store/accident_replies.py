"""Accident reporters' replies (1 settled, 2 send an officer) matched to their latest alert."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis

from gateway.core.replies import Reply
from gateway.store.keys import Keys
from gateway.store.scripts import Script


@dataclass(frozen=True, slots=True)
class ReplyMatch:
    matched: bool  # False: no alert of this reporter's inside the window
    alert_id: str


class AccidentReplies:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.keys = keys
        self._reply = Script(redis, "accident_reply", keys)

    async def record(
        self,
        *,
        national: str,
        reply: Reply,
        text: str,
        from_masked: str,
        mo_id: str,
        mo_ms: int,
        window_ms: int,
        at: str,
        recipients: Sequence[tuple[str, str]],
    ) -> ReplyMatch:
        """Apply an MO received at ``mo_ms`` (stream entry ``mo_id``) to the reporter's latest
        alert if it came within ``window_ms`` of it; ``recipients`` are command-centre
        (key id, events URL) pairs. An MO applied before counts as matched again."""
        k = self.keys
        lane = k.recipient_lane(national)  # the reporter's, where the alert's mark is
        res = await self._reply(
            keys={
                "latest_alert": k.latest_alert(national),
                "webhooks": k.webhook_queue(lane),
                "events": k.events(lane),
                "replies": k.accident_replies(lane),
            },
            args={
                "reply": reply.value,
                "text": text,
                "from_masked": from_masked,
                "mo_id": mo_id,
                "mo_ms": mo_ms,
                "window_ms": window_ms,
                "at": at,
                "recipients_json": json.dumps([list(r) for r in recipients], ensure_ascii=False),
            },
        )
        return ReplyMatch(res[0] in ("matched", "seen"), str(res[1]))
