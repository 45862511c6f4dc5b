"""A Redis Cluster primary killed (-9) in the middle of a 100,000-row reminder job over three
lanes: the cluster promotes its replica (with the job's own keys and a lane of its rows),
the killed node comes back as the replica of the new primary (its supervisor restarts it),
and the job finishes with every row delivered or reported in its counts, none sent twice.

The figures (when the primary died, when its replica took over, how long the job's sending
stalled) are printed; run with ``-s`` to see them.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from gateway.sms.simulator import ReceivedMessage, SmscSimulator
from tests.conftest import Gateway, close_or_dump, make_settings
from tests.redis_cluster import ClusterSet, running_cluster_set
from tests.test_reminder_jobs import NOW, csv_body, window

ROWS = 100_000
KILL_AFTER = 30_000  # messages at the SMSC when the primary dies
STALL_S = 60.0
FINAL = {"delivered", "failed", "expired", "undeliverable"}


@pytest.fixture
def cluster() -> Iterator[ClusterSet]:
    with running_cluster_set() as stack:
        yield stack


def _phone(n: int) -> str:
    return f"1370{n:07d}"


def _primary_of(stack: ClusterSet, key: str) -> int:
    """The port of the primary that holds ``key``'s slot, as the cluster says now."""
    for node in stack.nodes:
        if node.proc is None:
            continue
        with redis.Redis(port=node.port, decode_responses=True) as r:
            slot = int(r.execute_command("CLUSTER", "KEYSLOT", key))
            for start, end, primary, *_ in r.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return int(primary[1])
    raise AssertionError("no live node answered")


async def _finished(
    gw: Gateway, office: Any, job_id: str, smsc: SmscSimulator, sent: Counter[str]
) -> dict[str, Any]:
    """The job once finished. It runs beside the other tests, so how long it takes depends on
    them (90 s alone, 200 s beside two busy cores): what fails it is a stall, a minute in
    which no row is sent and none settled."""
    seen, still_since = (-1, -1), time.monotonic()
    while True:
        code, body, _ = await gw.request("GET", f"/v1/reminder-jobs/{job_id}", office)
        assert code == 200, body
        if body["status"] == "finished":
            return dict(body)
        settled = sum(n for st, n in body["counts"].items() if st in FINAL)
        now = (sum(sent.values()), settled)
        if now != seen:
            seen, still_since = now, time.monotonic()
        elif time.monotonic() - still_since > STALL_S:
            raise AssertionError(
                f"the job stalled for {STALL_S} s: {body}; at the SMSC {now[0]} sent, "
                f"{smsc.receipts_sent} receipts taken, {smsc.receipts_retried} sent again"
            )
        await asyncio.sleep(0.5)


# Beside the other tests (it asserts no timing): the part run alone stays short.
@pytest.mark.timeout(720)  # a 100,000-row job: 1.5 to 4 minutes here, past the default
async def test_a_primary_killed_mid_job_loses_and_repeats_no_row(
    cluster: ClusterSet, prefix: str, smsc: SmscSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every message the SMSC takes, counted by number (its own list keeps the last 50,000).
    sent: Counter[str] = Counter()
    record = smsc._record

    def counting(msg: ReceivedMessage) -> None:
        sent[msg.destination[-11:]] += 1
        record(msg)

    monkeypatch.setattr(smsc, "_record", counting)
    gw = Gateway(
        make_settings(
            cluster.url,
            prefix,
            smsc.port,
            GATEWAY_REDIS_WAIT_REPLICAS="1",
            GATEWAY_REDIS_WAIT_TIMEOUT_MS="1000",
            # The rows spread over three lanes, most often on three primaries: one of them
            # is killed with the job's own keys, the others go on.
            GATEWAY_REDIS_LANES="3",
            **cluster.env,
        )
    )
    await gw.start()
    try:
        gw._admin = await gw.add_key("admin")
        office = await gw.add_key("back_office")
        async with asyncio.timeout(10):
            await smsc.wait_bound()
        rows = [f"{_phone(i)},人民路,明天,北京路" for i in range(ROWS)]
        assert gw.http is not None
        async with gw.http.post(  # a file-like body: aiohttp warns of 2 MB of raw bytes
            f"{gw.base}/v1/reminder-jobs",
            params={"template": "traffic_conditions", "rate": "5000", "send_window": window(NOW)},
            data=io.BytesIO(csv_body(rows)),
            headers={"Authorization": f"Bearer {office.token}", "Content-Type": "text/csv"},
        ) as resp:
            body = await resp.json()
            assert resp.status == 202, body
        job_id = body["job_id"]
        victim = _primary_of(cluster, gw.keys.job(job_id))
        node = next(n for n in cluster.nodes if n.port == victim)

        start = time.monotonic()
        async with asyncio.timeout(240):  # 30 s alone, 60 s beside two busy cores
            while sum(sent.values()) < KILL_AFTER:
                await asyncio.sleep(0.05)
        node.kill()
        killed = time.monotonic() - start
        sent_at_kill = sum(sent.values())
        while _primary_of(cluster, gw.keys.job(job_id)) == victim:
            await asyncio.sleep(0.1)
        promoted = time.monotonic() - start
        # Its supervisor restarts it: it rejoins as the replica of the promoted node, and
        # writes waiting for one replica's confirmation go on.
        await asyncio.to_thread(node.start)
        await asyncio.to_thread(cluster.wait_ok, 30.0)
        back = time.monotonic() - start
        sent_at_back = sum(sent.values())

        job = await _finished(gw, office, job_id, smsc, sent)
        finished = time.monotonic() - start
        await asyncio.sleep(1.0)  # any late resend would reach the SMSC by now
        counts = sent
        twice = {p: c for p, c in counts.items() if c != 1}
        reported = sum(job["counts"].values())
        assert gw.workers is not None
        ended = [t.get_name() for t in gw.workers.tasks if t.done()]
        print(
            f"\ncluster failover figures: {ROWS} rows; primary :{victim} killed at "
            f"{killed:.2f} s ({sent_at_kill} sent), its replica promoted at {promoted:.2f} s, "
            f"the killed node back as a replica at {back:.2f} s ({sent_at_back} sent by "
            f"then), job finished at {finished:.2f} s; counts {job['counts']}; receipts "
            f"left unanswered and sent again {smsc.receipts_retried}; distinct "
            f"numbers at the SMSC {len(counts)}, sent more than once {len(twice)} "
            f"({sum(twice.values()) - len(twice)} extra messages)"
        )
        assert reported == ROWS  # every row delivered or reported
        assert set(job["counts"]) <= FINAL
        assert len(counts) == job["counts"].get("delivered", 0)
        assert twice == {}  # none twice
        assert ended == []  # no worker gave up
    finally:
        await close_or_dump(gw)
