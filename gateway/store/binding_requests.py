"""Binding requests in Redis: created, checked, confirmed or closed, each with its audit entry.

A request lives at ``<prefix>:breq:<ref>`` until a week after it expires, so agents and
admins can still see how it ended. Every state change is one script call with its audit
entries (the wrappers here, one per script in ``lua/``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from gateway.core.binding_codes import code_hash, legacy_code_hash
from gateway.store.keys import Keys
from gateway.store.notices import now_iso
from gateway.store.scripts import scripts

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
    def __init__(self, redis: aioredis.Redis, keys: Keys, pepper: str) -> None:
        self.redis = redis
        self.keys = keys
        self.pepper = pepper
        self._create, self._verify, self._close, self._remove = scripts(
            redis,
            keys,
            "create_binding_request",
            "verify_binding_request",
            "close_binding_request",
            "remove_binding_if_phone",
        )

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
            "code_hash": code_hash(ref, code, self.pepper),
            "attempts": 0,
            "created_at": now_iso(),
            "expires_ms": int((now + ttl_seconds) * 1000),
        }
        day = datetime.now(UTC).strftime("%Y%m%d")
        k = self.keys
        per_day = k.binding_requests_per_day(phone, day)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.incr(per_day)
            pipe.expire(per_day, 2 * 86400)
            count, _ = await pipe.execute()
        outcome, _ = await self._create(
            keys={
                "request": k.binding_request(ref),
                "audit": k.binding_audit(k.ref_lane(ref)),
                "plate_audit": k.binding_audit_of(plate),
            },
            args={
                "plate": plate,
                "count": count,
                "daily_limit": daily_limit,
                "request_ttl_s": ttl_seconds + KEEP_AFTER_EXPIRY,
                "audit_base_json": actor.base(ref),
                "record_json": json.dumps(record, ensure_ascii=False),
            },
        )
        if outcome != "ok" and await self.redis.decr(per_day) < 0:
            # Refused: it does not count (an error before here errs high). Below 0, the
            # count was lost meanwhile (a failover): gone, not negative.
            await self.redis.delete(per_day)
        return str(outcome), record

    def _audit(self, ref: str) -> str:
        """The binding audit trail of the request's lane."""
        return self.keys.binding_audit(self.keys.ref_lane(ref))

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
            keys={"request": self.keys.binding_request(ref), "audit": self._audit(ref)},
            args={
                "mode": "confirm" if confirm else "check",
                "code_hash": code_hash(ref, code, self.pepper),
                "legacy_hash": legacy_code_hash(ref, code),
                "now_ms": int(time.time() * 1000),
                "max_attempts": max_attempts,
                "at": now_iso(),
                "audit_base_json": actor.base(ref),
            },
        )
        if outcome == "confirmed":
            return Verified("confirmed", 0, "confirmed", replaced=left == "1")
        return Verified(str(outcome), int(left), str(status))

    async def close(self, ref: str, status: str, actor: Actor, reason: str) -> str:
        """Pending -> ``status`` (cancelled ...); returns ``ok`` or the status it already had."""
        return str(
            await self._close(
                keys={"request": self.keys.binding_request(ref), "audit": self._audit(ref)},
                args={
                    "status": status,
                    "at": now_iso(),
                    "audit_base_json": actor.base(ref),
                    "reason": reason,
                },
            )
        )

    async def remove_binding(self, plate: str, caller_phone: str, actor: Actor, ref: str) -> str:
        """Remove the plate's binding only if ``caller_phone`` is the bound phone:
        ``removed`` | ``refused`` | ``no_binding``."""
        return str(
            await self._remove(
                keys={
                    "binding": self.keys.binding(plate),
                    "audit": self.keys.binding_audit(self.keys.plate_lane(plate)),
                    "plate_audit": self.keys.binding_audit_of(plate),
                },
                args={"plate": plate, "phone": caller_phone, "audit_base_json": actor.base(ref)},
            )
        )
