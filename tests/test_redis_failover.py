"""A Sentinel failover under a stream of accident alerts: the primary is killed (-9) mid-stream,
the sentinels promote the replica, the old primary comes back as a replica (its supervisor
restarts it). Every alert that got a 202 is delivered, each exactly once at the SMSC; the API
answers 503 meanwhile, and callers retry with the same Idempotency-Key.

The figures (how long 503s were answered, how many requests were retried) are printed; run
with ``-s`` to see them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from gateway.sms.simulator import SmscSimulator
from gateway.store.apikeys import NewKey
from gateway.store.redis_conn import SentinelRedis
from tests.conftest import Gateway, close_or_dump, make_settings
from tests.redis_sentinel import SentinelSet

ALERTS = 240
RATE = 40.0  # alerts a second, so the stream lasts about 6 s
KILL_AT = 60  # the primary dies after this many alerts were started
RETRY_PAUSE = 0.1  # callers retry a 503 after this (shorter than Retry-After: finer figures)


@pytest.fixture
def sentinels() -> Iterator[SentinelSet]:
    stack = SentinelSet()
    try:
        stack.start()
        stack.wait_ready_for_failover()
        yield stack
    finally:
        stack.close()


@dataclass
class Figures:
    codes: Counter[int] = field(default_factory=Counter)
    retried: set[int] = field(default_factory=set)  # alerts that needed more than one POST
    not_replicated: int = 0  # 503s whose notice was stored but not confirmed by a replica
    first_503: float = 0.0
    last_503: float = 0.0
    ids: dict[int, str] = field(default_factory=dict)


def _phone(n: int) -> str:
    return f"1390001{n:04d}"


async def _send(gw: Gateway, key: NewKey, n: int, fig: Figures, start: float) -> None:
    body = {
        "accident_type": "minor_property_damage",
        "reporter_phone": _phone(n),
        "location": "北京路",
        "case_id": f"F-{n}",
    }
    headers = {"Idempotency-Key": f"failover-{n}"}
    while True:
        code, resp, hdrs = await gw.request(
            "POST", "/v1/accident-alerts", key, body, headers=headers
        )
        fig.codes[code] += 1
        if code in (200, 202):
            fig.ids[n] = str(resp["id"])
            return
        assert code == 503, resp  # nothing but "try again" while Redis fails over
        assert resp["error"]["code"] == "store_unavailable"
        assert hdrs["Retry-After"] == "1"
        fig.not_replicated += "replica" in resp["error"]["message"]
        now = time.monotonic() - start
        fig.first_503 = fig.first_503 or now
        fig.last_503 = now
        fig.retried.add(n)
        await asyncio.sleep(RETRY_PAUSE)


async def _fail_over(stack: SentinelSet, at: asyncio.Event, marks: dict[str, float]) -> None:
    """Kill the primary when told; once every sentinel names the replica, restart the old
    primary as the new one's replica (as its supervisor would: docs/reliability.md).

    Not sooner: a sentinel that has not heard of the promotion yet takes its old primary,
    back and saying "replica", for a primary that is down, and can start a second failover
    that undoes the first (seen here: 13 s of 503s, the new primary's latest writes lost,
    63 alerts sent twice). Started as a primary instead, it is turned into a replica by the
    sentinels too, but only after 8 s of saying "master" (Sentinel's guard against flapping);
    with one replica the API answers 503 until a replica is back."""
    await at.wait()
    start = marks["start"]
    old = stack.primary
    old.kill()
    marks["killed"] = time.monotonic() - start
    while (ports := stack.primary_ports()) == {old.port}:
        await asyncio.sleep(0.05)
    marks["promoted"] = time.monotonic() - start  # by one sentinel, at least
    while ports != {stack.replica.port}:
        await asyncio.sleep(0.05)
        ports = stack.primary_ports()
    marks["agreed"] = time.monotonic() - start
    (port,) = ports
    new = stack.node_on(port)
    await asyncio.to_thread(old.start, new.port)
    await asyncio.to_thread(stack.wait_replicated, new, 20.0)
    marks["replica_back"] = time.monotonic() - start


@pytest.mark.serial
async def test_every_accepted_alert_is_delivered_once_across_a_sentinel_failover(
    sentinels: SentinelSet, prefix: str, smsc: SmscSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.store.outage")
    env = sentinels.env
    gw = Gateway(make_settings(env["GATEWAY_REDIS_URL"], prefix, smsc.port, **env))
    assert isinstance(gw.redis, SentinelRedis)
    await gw.start()
    try:
        gw._admin = await gw.add_key("admin")
        centre = await gw.add_key("command_center")
        async with asyncio.timeout(10):
            await smsc.wait_bound()
        fig = Figures()
        start = time.monotonic()
        marks = {"start": start}
        kill = asyncio.Event()
        failover = asyncio.create_task(_fail_over(sentinels, kill, marks))
        senders = []
        for n in range(ALERTS):
            senders.append(asyncio.create_task(_send(gw, centre, n, fig, start)))
            if n == KILL_AT:
                kill.set()
            await asyncio.sleep(1 / RATE)
        async with asyncio.timeout(60):
            await asyncio.gather(*senders)
            await failover
        accepted = time.monotonic() - start

        # Every alert got a 202 (or, retried after a 503 that had stored it, a 200 replay).
        assert sorted(fig.ids) == list(range(ALERTS))
        for nid in fig.ids.values():
            await gw.wait_status(nid, "delivered", within=30)
        counts = Counter(m.destination[-11:] for m in smsc.to(_phone(n) for n in range(ALERTS)))
        twice = {p: c for p, c in counts.items() if c != 1}
        assert gw.workers is not None
        ended = [t.get_name() for t in gw.workers.tasks if t.done()]
        # What waited the outage out inside the gateway, and for how long (Outage.ok's line).
        backs = [r.args for r in caplog.records if "is back after" in str(r.msg)]
        waited = Counter(str(a[0]) for a in backs if isinstance(a, tuple))
        longest = max((float(str(a[1])) for a in backs if isinstance(a, tuple)), default=0.0)
        print(
            f"\nfailover figures: {ALERTS} alerts at {RATE:.0f}/s, all accepted after "
            f"{accepted:.1f} s; primary killed at {marks['killed']:.2f} s, replica promoted "
            f"at {marks['promoted']:.2f} s (every sentinel agreeing at {marks['agreed']:.2f} "
            f"s), old primary back as replica at "
            f"{marks['replica_back']:.2f} s; 503s from {fig.first_503:.2f} s to "
            f"{fig.last_503:.2f} s ({fig.last_503 - fig.first_503:.2f} s), "
            f"{sum(fig.codes[c] for c in fig.codes if c == 503)} of them "
            f"({fig.not_replicated} 'not confirmed by a replica'); {len(fig.retried)} alerts "
            f"retried, {fig.codes[200]} answered by an idempotent replay; responses "
            f"{dict(fig.codes)}; delivered {len(counts)}, lost "
            f"{ALERTS - len(counts)}, sent more than once {len(twice)}; loops that waited "
            f"Redis out: {dict(waited)}, the longest {longest:.1f} s"
        )
        assert len(counts) == ALERTS  # none lost
        assert twice == {}  # none sent twice
        assert ended == []  # no worker gave up
        assert fig.codes[503] > 0  # the failover was felt: the test can fail
    finally:
        await close_or_dump(gw)
