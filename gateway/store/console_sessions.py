"""Console sessions: an API key exchanged for a server-side session at login.

The browser holds only a random session token (an HttpOnly cookie); Redis holds its SHA-256,
with the key's hash, role and the session's CSRF token, under a TTL that each request the
operator makes renews (the idle timeout). The API key itself never reaches the browser again.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from gateway.store.apikeys import ApiKey
from gateway.store.keys import Keys


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    session_hash: str
    key_hash: str  # the API key's hash (ApiKeyStore.by_hash): a revoked key ends the session
    key_id: str
    role: str
    csrf: str
    created_at: float


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ConsoleSessions:
    def __init__(self, redis: aioredis.Redis, keys: Keys, idle_seconds: float) -> None:
        self.redis = redis
        self.keys = keys
        self.idle_ms = max(1, int(idle_seconds * 1000))

    async def create(self, key_hash: str, key: ApiKey) -> tuple[str, ConsoleSession]:
        """A new session for ``key``: (the cookie's token, the session)."""
        token = secrets.token_urlsafe(32)
        session = ConsoleSession(
            _hash(token), key_hash, key.id, key.role, secrets.token_urlsafe(32), time.time()
        )
        name = self.keys.console_session(session.session_hash)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(
            name,
            mapping={
                "key_hash": key_hash,
                "key_id": key.id,
                "role": key.role,
                "csrf": session.csrf,
                "created_at": f"{session.created_at:.3f}",
            },
        )
        pipe.pexpire(name, self.idle_ms)
        await pipe.execute()
        return token, session

    async def get(self, token: str, *, renew: bool = True) -> ConsoleSession | None:
        """The live session of a cookie token, its idle time renewed unless ``renew`` is
        False (the page's own background refreshes)."""
        if not token or len(token) > 128:
            return None
        h = _hash(token)
        name = self.keys.console_session(h)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hgetall(name)
        if renew:
            pipe.pexpire(name, self.idle_ms)
        raw = (await pipe.execute())[0]
        if not raw or "key_hash" not in raw:
            return None
        return ConsoleSession(
            h,
            raw["key_hash"],
            raw["key_id"],
            raw["role"],
            raw["csrf"],
            float(raw.get("created_at", "0")),
        )

    async def alive(self, session: ConsoleSession) -> bool:
        return bool(await self.redis.exists(self.keys.console_session(session.session_hash)))

    async def end(self, session_hash: str) -> bool:
        """Log out: the session is gone from Redis; its cookie is refused from now on."""
        return bool(await self.redis.delete(self.keys.console_session(session_hash)))

    @staticmethod
    def hash_of(token: str) -> str:
        return _hash(token)
