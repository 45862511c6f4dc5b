"""Binding requests in Redis: created, checked, confirmed or closed, each with its audit entry.

A request lives at ``<prefix>:breq:<ref>`` until a week after it expires, so agents and
admins can still see how it ended. Every state change is one Lua call (see ``lua.py``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from gateway.core.binding_codes import code_hash
from gateway.store import lua
from gateway.store.keys import Keys
from gateway.store.notices import now_iso

KEEP_AFTER_EXPIRY = 7 * 86400


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts on a request, as the audit trail records it."""

    channel: str  # api | website | ivr | admin
    key_id: str = ""
    agent_id: str = ""
    caller_id: str = ""

    def base(self, ref: str = "") -> str:
        """The audit entry's common fields, stamped with the time of the step (UTC, ms)."""
        record = {k: v for k, v in asdict(self).items() if v}
        record["at"] = now_iso()
        if ref:
            record["ref"] = ref
        return json.dumps(record, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Verified:
    outcome: str  # ok | confirmed | wrong | failed | expired | not_pending | unknown
    attempts_left: int
    status: str
    replaced: bool = False


class BindingRequestStore:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._create = redis.register_script(lua.BREQ_CREATE)
        self._verify = redis.register_script(lua.BREQ_VERIFY)
        self._close = redis.register_script(lua.BREQ_CLOSE)
        self._remove = redis.register_script(lua.BINDING_REMOVE_IF_PHONE)

    async def create(
        self,
        *,
        ref: str,
        code: str,
        plate: str,
        phone: str,
        email: str,
        actor: Actor,
        ttl_seconds: int,
        daily_limit: int,
    ) -> tuple[str, dict[str, Any]]:
        """``ok`` | ``limit`` (too many requests for this phone today) | ``collision``."""
        now = time.time()
        record: dict[str, Any] = {
            "ref": ref,
            "plate": plate,
            "phone": phone,
            "email": email,
            "agent_id": actor.agent_id,
            "key_id": actor.key_id,
            "status": "pending",
            "code_hash": code_hash(ref, code),
            "attempts": 0,
            "created_at": now_iso(),
            "expires_ms": int((now + ttl_seconds) * 1000),
        }
        day = datetime.now(UTC).strftime("%Y%m%d")
        outcome, _ = await self._create(
            keys=[self.keys.binding_request(ref), self.keys.binding_requests_per_day(phone, day)],
            args=[
                self.keys.prefix,
                plate,
                daily_limit,
                ttl_seconds + KEEP_AFTER_EXPIRY,
                2 * 86400,
                actor.base(ref),
                json.dumps(record, ensure_ascii=False),
            ],
        )
        return str(outcome), record

    async def set_code_notice(self, ref: str, notice_id: str) -> None:
        await self.redis.hset(self.keys.binding_request(ref), "code_notice_id", notice_id)

    async def get(self, ref: str) -> dict[str, str] | None:
        raw = await self.redis.hgetall(self.keys.binding_request(ref))
        if not raw:
            return None
        record = dict(raw)
        if record["status"] == "pending" and time.time() * 1000 > int(record["expires_ms"]):
            record["status"] = "expired"  # as it reads; the next verify records it
        return record

    async def verify(
        self, ref: str, code: str, actor: Actor, *, confirm: bool, max_attempts: int
    ) -> Verified:
        outcome, left, status = await self._verify(
            keys=[self.keys.binding_request(ref)],
            args=[
                self.keys.prefix,
                "confirm" if confirm else "check",
                code_hash(ref, code),
                int(time.time() * 1000),
                max_attempts,
                now_iso(),
                actor.base(ref),
            ],
        )
        if outcome == "confirmed":
            return Verified("confirmed", 0, "confirmed", replaced=left == "1")
        return Verified(str(outcome), int(left), str(status))

    async def close(self, ref: str, status: str, actor: Actor, reason: str) -> str:
        """Pending -> ``status`` (cancelled ...); returns ``ok`` or the status it already had."""
        return str(
            await self._close(
                keys=[self.keys.binding_request(ref)],
                args=[self.keys.prefix, status, now_iso(), actor.base(ref), reason],
            )
        )

    async def remove_binding(self, plate: str, caller_phone: str, actor: Actor, ref: str) -> str:
        """Remove the plate's binding only if ``caller_phone`` is the bound phone:
        ``removed`` | ``refused`` | ``no_binding``."""
        return str(
            await self._remove(
                args=[self.keys.prefix, plate, caller_phone, actor.base(ref)],
            )
        )
