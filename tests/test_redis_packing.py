"""Commands packed by hiredis: the same bytes as redis-py's packer, its errors kept."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from gateway.settings import RedisSettings
from gateway.store.redis_conn import _Connection, connect

COMMANDS = [
    ("EVALSHA", "a" * 40, 2, "gw:{n1}:notice", "gw:q", 1.5, 0.1, 100000.0, -1, "交警", b"\x00\xff"),
    ("XREADGROUP", "GROUP", "g", "c", "COUNT", 100, "STREAMS", "s", ">"),
    ("CLIENT SETINFO", "LIB-NAME", "x"),  # a name with a space: redis-py splits it
    ("SET", "k", 12345678901234567890),
]


@pytest.mark.parametrize("args", COMMANDS)
def test_same_bytes_as_redis_py(args: tuple[object, ...]) -> None:
    ours, theirs = _Connection(), Connection()
    assert b"".join(ours.pack_command(*args)) == b"".join(theirs.pack_command(*args))


@pytest.mark.parametrize("bad", [None, True, object()])
def test_a_value_redis_refuses_is_still_its_error(bad: object) -> None:
    with pytest.raises(DataError):
        _Connection().pack_command("SET", "k", bad)


async def test_the_gateways_client_uses_it(redis_server: str) -> None:
    redis = connect(RedisSettings(redis_url=redis_server))
    try:
        assert redis.connection_pool.connection_class is _Connection
        assert await redis.set("k", "交警")
        assert await redis.get("k") == "交警"
        pipe = redis.pipeline(transaction=False)
        pipe.set("n", 5).incrbyfloat("n", 0.5)
        assert await pipe.execute() == [True, 5.5]
    finally:
        await redis.aclose()
