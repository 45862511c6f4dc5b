"""The gateway against two SMSCs nobody here wrote: node-smpp's server and Net::SMPP (Perl),
each scripted (tests/interop/) for what carriers do: receipt ids in other forms, with and
without TLVs, throttling every Nth submit, an unknown command, an unbind mid-burst, receipts
before the submit_sm_resp, MO. Every case: every notice final, no duplicate at the SMSC."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Gateway, close_or_dump, make_settings
from tests.test_reminder_jobs import NOW, csv_body, post_csv, wait_job, window

HERE = Path(__file__).parent / "interop"
SERVERS = {
    "node-smpp": ["node", str(HERE / "node" / "smsc.js")],
    "net-smpp": ["perl", str(HERE / "perl" / "smsc.pl")],
}
BACKOFF = 0.5


class Smsc:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self.port = 0

    async def start(self) -> None:
        assert self.proc.stdout is not None
        first = json.loads(await asyncio.wait_for(self.proc.stdout.readline(), 10))
        assert first["e"] == "listening"
        self.port = int(first["port"])

    async def read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.events.append(json.loads(line))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["e"] == kind]

    def duplicates(self) -> list[tuple[str, str]]:
        seen = Counter((e["to"], e["body"]) for e in self.of("submit"))
        return [k for k, n in seen.items() if n > 1]


async def run_smsc(server: str, **cfg: Any) -> AsyncIterator[Smsc]:
    proc = await asyncio.create_subprocess_exec(
        *SERVERS[server],
        json.dumps({"port": 0, **cfg}),
        stdout=asyncio.subprocess.PIPE,
    )
    smsc = Smsc(proc)
    reader = None
    try:
        await smsc.start()
        reader = asyncio.create_task(smsc.read())
        yield smsc
    finally:
        proc.terminate()
        await proc.wait()
        if reader is not None:
            await asyncio.wait([reader], timeout=5)


async def gateway_on(redis_server: str, prefix: str, smsc: Smsc, **extra: str) -> Gateway:
    gw = Gateway(
        make_settings(
            redis_server,
            prefix,
            smsc.port,
            GATEWAY_SMPP_TPS="400",
            GATEWAY_SMPP_THROTTLE_BACKOFF=str(BACKOFF),
            # The configured back-off is the longest a part waits (no doubling here).
            GATEWAY_SMPP_THROTTLE_BACKOFF_MAX=str(BACKOFF),
            GATEWAY_SMPP_RESPONSE_TIMEOUT="3",
            **extra,
        )
    )
    await gw.start()
    gw._admin = await gw.add_key("admin")
    return gw


async def send_job(gw: Gateway, n: int) -> tuple[Any, str]:
    office = await gw.add_key("back_office", hosts=["127.0.0.1"])
    rows = [f"1390{i:07d},人民路,明天8时至18时,北京路" for i in range(n)]
    code, body = await post_csv(
        gw, office, csv_body(rows), channel="sms", rate="5000", send_window=window(NOW)
    )
    assert code == 202, body
    return office, str(body["job_id"])


async def post_alert(gw: Gateway) -> str:
    centre = await gw.add_key("command_center")
    code, body, _ = await gw.request(
        "POST",
        "/v1/accident-alerts",
        centre,
        {
            "accident_type": "injury",
            "reporter_phone": "13900001111",
            "location": "北京路",
            "case_id": "A-18",
        },
    )
    assert code == 202, body
    return str(body["id"])


def _ms(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


def sending_gaps(smsc: Smsc) -> float:
    times = [e["t"] / 1000 for e in smsc.events if e["e"] in ("submit", "throttled")]
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


@pytest.mark.parametrize("server", sorted(SERVERS))
async def test_every_7th_submit_throttled_1000_delivered_no_stall_no_duplicate_alert_within_1s(
    redis_server: str, prefix: str, server: str
) -> None:
    async for smsc in run_smsc(server, throttle_every=7):
        # A quick recovery keeps the run short; the cuts still happen (counted below).
        gw = await gateway_on(redis_server, prefix, smsc, GATEWAY_SMPP_THROTTLE_INCREASE="0.5")
        try:
            office, job_id = await send_job(gw, 1000)
            async with asyncio.timeout(60):
                while len(smsc.of("submit")) < 400:
                    await asyncio.sleep(0.05)
            # Created -> submitted from each alert's own history (it may be delivered before a
            # poll sees it submitted). The SMSC throttles every 7th submit, an alert's too (then
            # it waits its 0.5 s back-off, twice in one case of 49): the middle one of three
            # shows whether alerts wait behind the job.
            waits = []
            for _ in range(3):
                notice = await gw.wait_status(await post_alert(gw), "delivered", within=10)
                stamps = {h["status"]: _ms(h["at"]) for h in notice["history"]}
                waits.append(stamps["submitted"] - stamps["queued"])
            assert sorted(waits)[1] < 1000, waits
            job = await wait_job(gw, office, job_id, "finished", within=120)
            assert job["counts"] == {"delivered": 1000}
            assert len(smsc.of("throttled")) >= 140
            assert gw.metrics.smpp_rate_cuts.labels("main")._value.get() >= 1
            assert smsc.duplicates() == []
            # The longest pause is a lone retried part's back-off, plus scheduling slack.
            assert sending_gaps(smsc) < BACKOFF + 0.1
            text = (await gw.request("GET", "/metrics", None))[1]
            assert "gateway_sms_parts_throttled_total" in str(text)
        finally:
            await close_or_dump(gw)


@pytest.mark.parametrize("server", sorted(SERVERS))
async def test_every_2nd_submit_throttled_sends_no_duplicate(
    redis_server: str, prefix: str, server: str
) -> None:
    async for smsc in run_smsc(server, throttle_every=2):
        gw = await gateway_on(redis_server, prefix, smsc)
        try:
            office, job_id = await send_job(gw, 200)
            job = await wait_job(gw, office, job_id, "finished", within=90)
            assert job["counts"] == {"delivered": 200}
            assert len(smsc.of("submit")) == 200
            assert smsc.duplicates() == []
        finally:
            await close_or_dump(gw)


VARIANTS = [
    # (submit_sm_resp id, receipt id, TLVs, the link's setting)
    ("HEX", "dec", False, "auto"),
    ("HEX0", "dec", False, "hex"),
    ("dec", "hex", False, "decimal"),
    ("HEX", "hex", False, "auto"),
    ("HEX0", "HEX", False, "auto"),
    ("dec0", "dec", False, "auto"),
    ("HEX", "dec", True, "auto"),
    ("dec0", "dec", True, "exact"),
]


@pytest.mark.parametrize("server", sorted(SERVERS))
@pytest.mark.parametrize(("resp", "receipt", "tlv", "mode"), VARIANTS)
async def test_receipt_id_variants_are_delivered(
    redis_server: str, prefix: str, server: str, resp: str, receipt: str, tlv: bool, mode: str
) -> None:
    cfg = {"resp_form": resp, "receipt_form": receipt, "tlv": tlv}
    async for smsc in run_smsc(server, **cfg):
        gw = await gateway_on(redis_server, prefix, smsc, GATEWAY_SMPP_MAIN_RECEIPT_ID=mode)
        try:
            office, job_id = await send_job(gw, 20)
            job = await wait_job(gw, office, job_id, "finished", within=30)
            assert job["counts"] == {"delivered": 20}
            assert smsc.duplicates() == []
        finally:
            await close_or_dump(gw)


@pytest.mark.parametrize("server", sorted(SERVERS))
@pytest.mark.parametrize(
    "case",
    [{"unknown_at": 10}, {"unbind_at": 40}, {"receipt_first": True}],
    ids=["unknown-command", "unbind-mid-burst", "receipts-before-resp"],
)
async def test_nothing_is_lost_on_an_smsc_that_does_not_resend(
    redis_server: str, prefix: str, server: str, case: dict[str, Any]
) -> None:
    async for smsc in run_smsc(server, **case):
        gw = await gateway_on(redis_server, prefix, smsc)
        try:
            office, job_id = await send_job(gw, 100)
            job = await wait_job(gw, office, job_id, "finished", within=60)
            assert job["counts"] == {"delivered": 100}
            assert smsc.duplicates() == []
            assert len(smsc.of("bound")) == (2 if "unbind_at" in case else 1)
        finally:
            await close_or_dump(gw)


@pytest.mark.parametrize("server", sorted(SERVERS))
async def test_mo_is_stored_and_answered(redis_server: str, prefix: str, server: str) -> None:
    mo = [{"from": "8613700001111", "to": "12122", "text": "TD"}]
    async for smsc in run_smsc(server, mo=mo):
        gw = await gateway_on(redis_server, prefix, smsc)
        try:
            async with asyncio.timeout(10):
                while not smsc.of("mo_answered"):
                    await asyncio.sleep(0.05)
            entries = await gw.redis.xrange(gw.keys.mo_queue(0))
            assert [(e[1]["from"], e[1]["text"]) for e in entries] == [("8613700001111", "TD")]
        finally:
            await close_or_dump(gw)
