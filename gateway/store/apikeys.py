"""API keys: only a hash of each key is stored; the callback-signing secret is kept, sealed
(``gateway/core/secret_box.py``), to sign webhooks."""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

import redis.asyncio as aioredis

from gateway.core.secret_box import SecretBox, is_sealed
from gateway.store.keys import Keys
from gateway.store.notices import now_iso

log = logging.getLogger(__name__)

ROLES: Final = ("officer", "command_center", "back_office", "binding_agent", "admin")


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    role: str
    callback_hosts: tuple[str, ...]
    # As stored: sealed (``enc1:...``), or plain text from before sealing. The plain secret
    # comes from ``ApiKeyStore.signing_secret`` (and once from ``add``/``rotate_secret``).
    callback_secret: str = field(repr=False)
    rate: float
    burst: int
    created_at: str
    revoked: bool = False
    # Where gateway-wide events (suspected cloned plates) are POSTed for this key.
    events_url: str = ""
    # The statuses its notices' webhooks are for when a request does not say (comma
    # separated, gateway.core.status_events; empty: every one).
    status_events: str = ""


@dataclass(frozen=True, slots=True)
class NewKey:
    key: ApiKey
    token: str = field(repr=False)
    callback_secret: str = field(repr=False, default="")  # plain, shown once


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ApiKeyStore:
    """Key records in Redis, with a short in-process cache for the request hot path."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        box: SecretBox | None = None,
        cache_seconds: float = 5.0,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.box = box  # needed to make keys and to sign; not to authenticate
        self._generation = 0  # counts evictions: a read that overlapped one is not cached
        # Called with the hash of a key that changed (None: any may have): other caches of
        # key records (the webhook dispatcher's) follow changes through these.
        self.listeners: list[Callable[[str | None], None]] = []
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}

    async def add(
        self,
        name: str,
        role: str,
        callback_hosts: list[str],
        rate: float,
        burst: int,
        events_url: str = "",
        status_events: str = "",
    ) -> NewKey:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
        key_id = "key_" + secrets.token_hex(6)
        token = f"gwk_{key_id[4:]}_{secrets.token_urlsafe(32)}"
        secret = new_callback_secret()
        record = ApiKey(
            id=key_id,
            name=name,
            role=role,
            callback_hosts=tuple(callback_hosts),
            callback_secret=self._box().seal(key_id, secret),
            rate=rate,
            burst=burst,
            created_at=now_iso(),
            events_url=events_url,
            status_events=status_events,
        )
        h = hash_token(token)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.keys.api_key(h), mapping=_to_hash(record))
        pipe.hset(self.keys.api_key_index, key_id, h)
        await pipe.execute()
        return NewKey(record, token, secret)

    def _box(self) -> SecretBox:
        if self.box is None:
            raise RuntimeError("this ApiKeyStore has no SecretBox (GATEWAY_SECRET_KEY)")
        return self.box

    def signing_secret(self, key: ApiKey) -> str:
        """The plain callback secret of ``key`` (sealed or, from before sealing, plain)."""
        return self._box().open(key.id, key.callback_secret)

    async def rotate_secret(self, key_id: str) -> tuple[ApiKey, str] | None:
        """A new callback secret for the key, sealed; the plain one is returned once."""
        h = await self.redis.hget(self.keys.api_key_index, key_id)
        if not h or not await self.redis.exists(self.keys.api_key(h)):
            return None
        secret = new_callback_secret()
        sealed = self._box().seal(key_id, secret)
        await self.redis.hset(self.keys.api_key(h), "callback_secret", sealed)
        await self._changed(h)
        key = await self.by_id(key_id)
        assert key is not None
        return key, secret

    async def seal_all(self) -> int:
        """Seal secrets stored in plain text, and re-seal others under the first key of
        GATEWAY_SECRET_KEY; returns how many changed."""
        box = self._box()
        changed = 0
        for key in await self.list():
            plain = box.open(key.id, key.callback_secret)
            if is_sealed(key.callback_secret) and box.is_current(key.id, key.callback_secret):
                continue
            h = await self.redis.hget(self.keys.api_key_index, key.id)
            await self.redis.hset(self.keys.api_key(h), "callback_secret", box.seal(key.id, plain))
            await self._changed(h)
            changed += 1
        return changed

    async def authenticate(self, token: str) -> ApiKey | None:
        if not token.startswith("gwk_") or len(token) > 200:
            return None
        return await self.by_hash(hash_token(token))

    async def by_hash(self, h: str) -> ApiKey | None:
        """The live key whose token hashes to ``h`` (a console session holds only that)."""
        hit = self._cache.get(h)
        now = time.monotonic()
        if hit and hit[0] > now:
            return hit[1]
        generation = self._generation
        raw = await self.redis.hgetall(self.keys.api_key(h))
        key = _from_hash(raw) if raw else None
        if key and key.revoked:
            key = None
        if generation == self._generation:
            self._cache[h] = (now + self.cache_seconds, key)
        if len(self._cache) > 10000:
            self._cache.clear()
        return key

    async def _changed(self, h: str) -> None:
        """Tell every process's cache that the key with hash ``h`` changed."""
        self._evict(h)
        await self.redis.publish(self.keys.api_key_events, h)

    def _evict(self, h: str | None) -> None:
        self._generation += 1
        if h is None:
            self._cache.clear()
        else:
            self._cache.pop(h, None)
        for listener in self.listeners:
            listener(h)

    async def follow_changes(self, retry_seconds: float = 1.0) -> None:
        """Evict the keys other processes revoke or change, as they do (Redis pub/sub), so a
        revoked key stops working at once. While the subscription is down the cache still
        expires after ``cache_seconds``; after it is back the whole cache is dropped."""
        while True:
            try:
                async with self.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self.keys.api_key_events)
                    self._evict(None)  # whatever was missed while not subscribed
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._evict(str(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: the cache's own expiry still holds
                log.warning("API key changes not followed (%r); again in %.0fs", exc, retry_seconds)
                await asyncio.sleep(retry_seconds)

    async def by_id(self, key_id: str) -> ApiKey | None:
        h = await self.redis.hget(self.keys.api_key_index, key_id)
        if not h:
            return None
        raw = await self.redis.hgetall(self.keys.api_key(h))
        return _from_hash(raw) if raw else None

    async def list(self) -> list[ApiKey]:
        index = await self.redis.hgetall(self.keys.api_key_index)
        out = []
        for h in index.values():
            raw = await self.redis.hgetall(self.keys.api_key(h))
            if raw:
                out.append(_from_hash(raw))
        return sorted(out, key=lambda k: k.created_at)

    async def update(
        self,
        key_id: str,
        *,
        callback_hosts: Sequence[str] | None = None,
        add_callback_hosts: Sequence[str] = (),
        rate: float | None = None,
        burst: int | None = None,
        events_url: str | None = None,
        status_events: str | None = None,
    ) -> ApiKey | None:
        """Change a key's allow-list, rate limit, events URL or default status events; None
        if there is no such key.
        API processes see the change at once (``follow_changes``)."""
        h = await self.redis.hget(self.keys.api_key_index, key_id)
        raw = await self.redis.hgetall(self.keys.api_key(h)) if h else {}
        if not raw:
            return None
        key = _from_hash(raw)
        hosts = list(key.callback_hosts if callback_hosts is None else callback_hosts)
        hosts += [x for x in add_callback_hosts if x not in hosts]
        new = replace(
            key,
            callback_hosts=tuple(hosts),
            rate=key.rate if rate is None else rate,
            burst=key.burst if burst is None else burst,
            events_url=key.events_url if events_url is None else events_url,
            status_events=key.status_events if status_events is None else status_events,
        )
        await self.redis.hset(self.keys.api_key(h), mapping=_to_hash(new))
        await self._changed(h)
        return new

    async def event_recipients(self) -> builtins.list[tuple[str, str]]:
        """(key id, events URL) of every live command-centre key with an events URL: where
        gateway-wide events (cloned plates, accident replies) go."""
        return [
            (k.id, k.events_url)
            for k in await self.list()
            if k.role == "command_center" and k.events_url and not k.revoked
        ]

    async def revoke(self, key_id: str) -> bool:
        h = await self.redis.hget(self.keys.api_key_index, key_id)
        if not h:
            return False
        await self.redis.hset(self.keys.api_key(h), "revoked", "1")
        await self._changed(h)
        return True


def new_callback_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def _to_hash(k: ApiKey) -> dict[str, str]:
    return {
        "id": k.id,
        "name": k.name,
        "role": k.role,
        "callback_hosts": json.dumps(list(k.callback_hosts)),
        "callback_secret": k.callback_secret,
        "rate": str(k.rate),
        "burst": str(k.burst),
        "created_at": k.created_at,
        "revoked": "1" if k.revoked else "0",
        "events_url": k.events_url,
        "status_events": k.status_events,
    }


def _from_hash(raw: dict[str, str]) -> ApiKey:
    return ApiKey(
        id=raw["id"],
        name=raw["name"],
        role=raw["role"],
        callback_hosts=tuple(json.loads(raw.get("callback_hosts", "[]"))),
        callback_secret=raw["callback_secret"],
        rate=float(raw["rate"]),
        burst=int(raw["burst"]),
        created_at=raw["created_at"],
        revoked=raw.get("revoked") == "1",
        events_url=raw.get("events_url", ""),
        status_events=raw.get("status_events", ""),
    )
