"""Plate -> phone bindings, each with who made it, when and how, and an audit trail."""

from __future__ import annotations

import json
from typing import Any, Final

import redis.asyncio as aioredis

from gateway.core.phones import mask
from gateway.logs import mask_numbers
from gateway.store.keys import Keys
from gateway.store.lane_merge import newest_of_lanes
from gateway.store.notices import now_iso

# Audit fields that hold a whole phone number; they are stored whole and masked when read.
PHONE_FIELDS: Final = frozenset({"phone", "previous_phone", "caller_id"})


def masked_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """An audit entry as a reader sees it: numbers as 138****8000."""
    out: dict[str, Any] = {}
    for k, v in entry.items():
        if isinstance(v, str):
            v = mask(v) if k in PHONE_FIELDS and v.isdigit() else mask_numbers(v)
        out[k] = v
    return out


class BindingStore:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def get(self, plate: str) -> dict[str, str] | None:
        raw = await self.redis.hgetall(self.keys.binding(plate))
        return dict(raw) if raw else None

    async def put(
        self,
        plate: str,
        phone: str,
        email: str,
        *,
        by_key: str,
        channel: str,
        agent_id: str = "",
        caller_id: str = "",
    ) -> tuple[dict[str, str], bool]:
        """Create or replace; returns the binding and whether it replaced another."""
        record = {
            "plate": plate,
            "phone": phone,
            "email": email,
            "created_at": now_iso(),
            "created_by": by_key,
            "channel": channel,
            "agent_id": agent_id,
        }
        pipe = self.redis.pipeline(transaction=True)
        pipe.exists(self.keys.binding(plate))
        pipe.delete(self.keys.binding(plate))
        pipe.hset(self.keys.binding(plate), mapping=record)
        existed = bool((await pipe.execute())[0])
        await self.audit(
            "replaced" if existed else "created",
            plate,
            by_key=by_key,
            channel=channel,
            agent_id=agent_id,
            caller_id=caller_id,
        )
        return record, existed

    async def delete(
        self, plate: str, *, by_key: str, channel: str, agent_id: str = "", caller_id: str = ""
    ) -> bool:
        removed = bool(await self.redis.delete(self.keys.binding(plate)))
        if removed:
            await self.audit(
                "removed",
                plate,
                by_key=by_key,
                channel=channel,
                agent_id=agent_id,
                caller_id=caller_id,
            )
        return removed

    async def audit(self, event: str, plate: str, **detail: Any) -> None:
        """One audit entry, in the global trail and (with a plate) in the plate's own."""
        record = {"event": event, "at": now_iso(), **detail}
        if plate:
            record["plate"] = plate
        entry = json.dumps(record, ensure_ascii=False)
        trail = self.keys.binding_audit(self.keys.plate_lane(plate) if plate else 0)
        pipe = self.redis.pipeline(transaction=False)
        pipe.lpush(trail, entry)
        pipe.ltrim(trail, 0, 999_999)
        if plate:
            pipe.lpush(self.keys.binding_audit_of(plate), entry)
            pipe.ltrim(self.keys.binding_audit_of(plate), 0, 9_999)
        await pipe.execute()

    async def read_audit(
        self, plate: str | None, limit: int, *, unmasked_for: str = ""
    ) -> list[dict[str, Any]]:
        """Newest first: one plate's trail, or the whole gateway's, numbers masked. With
        ``unmasked_for`` (the reading key's id) numbers are whole, and the reading is audited."""

        async def trail(lane: int) -> list[dict[str, Any]]:
            key = self.keys.binding_audit_of(plate) if plate else self.keys.binding_audit(lane)
            return [json.loads(e) for e in await self.redis.lrange(key, 0, limit - 1)]

        # One plate's trail, or the whole gateway's: every lane's, merged.
        lanes = [0] if plate else self.keys.each_lane()
        entries = await newest_of_lanes(lanes, trail, lambda e: str(e.get("at", "")), limit)
        if not unmasked_for:
            return [masked_entry(e) for e in entries]
        await self.audit(
            "audit_read_unmasked", plate or "", key_id=unmasked_for, channel="admin", limit=limit
        )
        return entries
