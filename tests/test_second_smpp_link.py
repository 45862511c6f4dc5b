"""A second carrier is a settings entry: a link named in GATEWAY_SMPP_LINKS carries the lane
routed to it, over its own bind, with no code of its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.sms.simulator import Script, SmscSimulator
from tests.conftest import Gateway, close_or_dump, free_port, make_settings
from tests.test_reminder_jobs import NOW, csv_body, post_csv, wait_job, window


@pytest.fixture
async def second_smsc() -> AsyncIterator[SmscSimulator]:
    sim = SmscSimulator("127.0.0.1", free_port(), Script(receipt_delay=0.05))
    await sim.start()
    task = asyncio.create_task(sim.serve())
    yield sim
    task.cancel()
    await asyncio.wait([task], timeout=10)


async def test_a_second_smpp_link_configured_only_in_settings_carries_the_bulk_lane(
    redis_server: str, prefix: str, smsc: SmscSimulator, second_smsc: SmscSimulator
) -> None:
    gw = Gateway(
        make_settings(
            redis_server,
            prefix,
            smsc.port,
            GATEWAY_SMPP_LINKS="main,carrier2",
            GATEWAY_SMPP_CARRIER2_PORT=str(second_smsc.port),
            GATEWAY_SMPP_CARRIER2_SYSTEM_ID="bulk-acct",
            GATEWAY_SMPP_CARRIER2_LANES="bulk",
        )
    )
    await gw.start()
    gw._admin = await gw.add_key("admin")
    try:
        async with asyncio.timeout(10):
            await smsc.wait_bound()
            await second_smsc.wait_bound()
        assert gw.workers is not None
        assert sorted(gw.workers.channels) == ["email", "sms:carrier2", "sms:main"]
        centre = await gw.add_key("command_center")
        code, alert, _ = await gw.request(
            "POST",
            "/v1/accident-alerts",
            centre,
            {
                "accident_type": "injury",
                "reporter_phone": "13900001111",
                "location": "北京路",
                "case_id": "A-7",
            },
        )
        assert code == 202, alert
        office = await gw.add_key("back_office")
        rows = [f"1360{i:07d},人民路,明天,北京路" for i in range(30)]
        code, job = await post_csv(gw, office, csv_body(rows), send_window=window(NOW))
        assert code == 202, job
        finished = await wait_job(gw, office, job["job_id"], "finished", within=30)
        assert finished["counts"] == {"delivered": 30}
        await gw.wait_status(alert["id"], "delivered")
        assert {m.destination for m in smsc.messages} == {"8613900001111"}
        assert len(second_smsc.messages) == 30
        assert {m.destination for m in second_smsc.messages} == {
            f"861360{i:07d}" for i in range(30)
        }
    finally:
        await close_or_dump(gw)
