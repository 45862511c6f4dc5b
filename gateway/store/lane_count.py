"""A store's lane count is fixed (docs/redis-cluster.md): the first process writes it, and one
set to another count refuses to start. A notice, a plate or a binding request is kept in the
lane its id, name or reference gives for the lane count; with another count the gateway
would look for it elsewhere and not find it (bindings never expire). Moving a store to
another lane count is not built."""

from __future__ import annotations

import redis.asyncio as aioredis

from gateway.store.keys import Keys


class LaneCountChanged(RuntimeError):
    pass


async def check_lane_count(redis: aioredis.Redis, keys: Keys) -> None:
    """Write the lane count on a new store; raise ``LaneCountChanged`` if the store has
    another (a store from before the mark, with notices in it, has one lane)."""
    stored = await redis.get(keys.lane_count)
    if stored is None:
        made_before = await redis.exists(keys.events(0))
        if made_before and keys.lanes != 1:
            stored = "1"
        else:
            await redis.set(keys.lane_count, keys.lanes, nx=True)
            stored = await redis.get(keys.lane_count)
    if int(stored) != keys.lanes:
        raise LaneCountChanged(
            f"the store under prefix {keys.prefix!r} is kept in {int(stored)} lane(s), and "
            f"GATEWAY_REDIS_LANES is {keys.lanes}: its notices, plates and bindings would be "
            f"looked for in other lanes. Set GATEWAY_REDIS_LANES={int(stored)} (moving a "
            "store to another lane count is not built)"
        )
