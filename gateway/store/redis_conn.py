"""The Redis connection pool, made from ``RedisSettings``."""

from __future__ import annotations

import redis.asyncio as aioredis

from gateway.settings import RedisSettings


def connect(settings: RedisSettings) -> aioredis.Redis:
    """A client whose replies are ``str`` (all our values are UTF-8 text)."""
    return aioredis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        health_check_interval=30,
        socket_keepalive=True,
        max_connections=512,
    )
