"""The Redis connection pool, made from ``RedisSettings``."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from gateway.settings import RedisSettings
from gateway.store.outage import STORE_DOWN


def connect(settings: RedisSettings) -> aioredis.Redis:
    """A client whose replies are ``str`` (all our values are UTF-8 text).

    A command that meets a dropped connection is sent again a few times within about half a
    second (a reconnect, a short blip); longer outages are waited out by the loops around the
    commands (``gateway.store.outage``) and answered 503 by the API.
    """
    return aioredis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        health_check_interval=30,
        socket_keepalive=True,
        max_connections=512,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=3),
        retry_on_error=list(STORE_DOWN),
    )
