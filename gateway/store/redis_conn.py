"""The Redis connection pool, made from ``RedisSettings``."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.driver_info import DriverInfo

from gateway.settings import RedisSettings
from gateway.store.outage import STORE_DOWN


def connect(settings: RedisSettings) -> aioredis.Redis:
    """A client whose replies are ``str`` (all our values are UTF-8 text).

    A command that meets a dropped connection is sent again a few times within about half a
    second (a reconnect, a short blip); longer outages are waited out by the loops around the
    commands (``gateway.store.outage``) and answered 503 by the API.

    The client's name and version (CLIENT SETINFO) are looked up once, here: left to the
    pool, each new connection read the package's metadata from disk (1.2 ms a connection;
    4.6% of the API process's CPU when a burst of requests opened connections).
    """
    return aioredis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        health_check_interval=30,
        socket_keepalive=True,
        max_connections=512,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=3),
        retry_on_error=list(STORE_DOWN),
        driver_info=DriverInfo(),
    )
