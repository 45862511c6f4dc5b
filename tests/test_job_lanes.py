"""A reminder job over several lanes (docs/redis-cluster.md, stage 3): each row is admitted
in its recipient's lane, the lanes' progress is summed, and the job ends once, in its own
lane. A lane that refuses the job's slices holds the job's cursor there without losing or
repeating a row of the other lanes."""

from __future__ import annotations

import asyncio
from collections import Counter

from gateway.jobs.dispatcher import CHUNK, reminder_notice_id
from gateway.sms.simulator import SmscSimulator
from gateway.store.optouts import OptOutStore
from tests.conftest import Gateway, Receiver, close_or_dump, make_settings
from tests.test_reminder_jobs import NOW, csv_body, post_csv, wait_job, window

LANES = 3
ROWS = 900


async def test_a_job_over_three_lanes_sends_every_row_once_through_a_lane_that_refuses(
    redis_server: str, prefix: str, smsc: SmscSimulator, receiver: Receiver
) -> None:
    gw = Gateway(make_settings(redis_server, prefix, smsc.port, GATEWAY_REDIS_LANES=str(LANES)))
    await gw.start()
    try:
        keys, r = gw.keys, gw.redis
        office = await gw.add_key("back_office", hosts=[receiver.allow])
        numbers = [f"1392{i:07d}" for i in range(ROWS)]
        lane_of = {n: keys.recipient_lane(n) for n in numbers}
        assert set(lane_of.values()) == set(range(LANES))
        opted = numbers[10:15]
        optouts = OptOutStore(r, keys)
        for n in opted:
            await optouts.add(n, "sms")
        # Lane ``broken``'s copy of the opt-out set is made unreadable: every slice of the
        # job admitted there fails before it writes anything.
        broken = lane_of[numbers[3]]
        await r.delete(keys.opt_outs(broken))
        await r.set(keys.opt_outs(broken), "not a set")
        first_broken = next(i for i, n in enumerate(numbers) if lane_of[n] == broken)

        rows = [f"{n},人民路,明天,北京路" for n in numbers]
        code, body = await post_csv(
            gw, office, csv_body(rows), rate="5000", send_window=window(NOW),
            callback_url=receiver.url,
        )  # fmt: skip
        assert code == 202, body
        job_id = body["job_id"]
        assert keys.job(job_id).startswith(keys.in_lane(keys.job_lane(job_id)))

        # The other lanes' rows of the first chunk go out; the job's cursor waits at the
        # broken lane's first row, and nothing of that lane is sent.
        window_rows = numbers[first_broken : first_broken + CHUNK]
        others = [n for n in window_rows if lane_of[n] != broken and n not in opted]
        async with asyncio.timeout(30):
            while len(smsc.to(others)) < len(others):
                await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # dispatch steps go on failing meanwhile
        job = await wait_job(gw, office, job_id, "running")
        assert job["dispatched"] == first_broken
        assert smsc.to([n for n in numbers if lane_of[n] == broken]) == []
        assert len(smsc.to(numbers)) == len(others) + len(
            [n for n in numbers[:first_broken] if n not in opted]
        )

        # The lane mends: the job goes on from the held row and finishes.
        mend = r.pipeline(transaction=True)  # in one step: an empty set would send to them
        mend.delete(keys.opt_outs(broken))
        mend.sadd(keys.opt_outs(broken), *opted)
        await mend.execute()
        finished = await receiver.wait_for(job_id, "finished", within=60)
        want = {"delivered": ROWS - len(opted), "opted_out": len(opted)}
        assert finished["body"]["detail"] == {"total": ROWS, "counts": want}
        job = await wait_job(gw, office, job_id, "finished")
        assert (job["done"], job["counts"]) == (ROWS, want)

        # Every row once, in its recipient's lane; no second webhook for the job.
        sent = Counter(m.destination[-11:] for m in smsc.messages)
        assert sorted(sent) == sorted(n for n in numbers if n not in opted)
        assert set(sent.values()) == {1}
        for i, n in enumerate(numbers):
            notice_id = reminder_notice_id(keys, job_id, i, lane_of[n])
            assert keys.notice_lane(notice_id) == lane_of[n]
            stored = await r.hget(keys.notice(notice_id), "status")
            assert stored == (None if n in opted else "delivered"), (i, n)
        per_lane = [await r.hgetall(keys.job_counts(job_id, lane)) for lane in keys.each_lane()]
        assert all(per_lane)
        assert sum(int(p.get("delivered", 0)) for p in per_lane) == ROWS - len(opted)
        await asyncio.sleep(0.5)
        assert [c["body"]["status"] for c in receiver.calls if c["body"]["id"] == job_id] == [
            "finished"
        ]
    finally:
        await close_or_dump(gw)
