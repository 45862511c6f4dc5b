"""The SMSC simulator keeps the receipts it owes on disk, as a real SMSC does: killed without a
clean shutdown and started again, it sends them to the next bind, and no carrier id twice."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import smpp34
from smpp34._smpp34 import TLV_RECEIPTED_MESSAGE_ID

from gateway.sms import pdu
from gateway.sms.receipts import parse_receipt
from gateway.sms.sim_journal import read_accept_log
from gateway.sms.sim_script import Script
from gateway.sms.simulator import SmscSimulator
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
ESME_RX_T_APPN = 0x64  # "temporary application error": try again later
ESME_RX_P_APPN = 0x65  # "permanent application error": never again


@contextmanager
def _simulator(port: int, tmp: Path, delay: float) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/gateway"),
            "--log-level",
            "WARNING",
            "smsc-sim",
            "--quiet",
            "--port",
            str(port),
            "--receipt-delay",
            str(delay),
            "--state-file",
            str(tmp / "owed"),
            "--accept-log",
            str(tmp / "accepted"),
        ]
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


async def _bind(port: int) -> smpp34.Smsc:
    for _ in range(100):
        try:
            client = smpp34.Client("127.0.0.1", port, "gateway", "secret", bind_type="TRX")
            return await client.connect()
        except (OSError, smpp34.SmppError, RuntimeError):
            await asyncio.sleep(0.1)
    raise TimeoutError("the simulator did not accept a bind")


async def _receipts(smsc: smpp34.Smsc, within: float) -> list[str]:
    """Carrier ids of the receipts that arrive within ``within`` seconds (each is answered)."""
    got: list[str] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (left := deadline - loop.time()) > 0:
        try:
            ev = await asyncio.wait_for(smsc.next(), left)
        except TimeoutError:
            break
        if isinstance(ev, smpp34.Disconnected):
            break
        tlv = next(t.value for t in ev.tlvs if t.tag == TLV_RECEIPTED_MESSAGE_ID)
        got.append(tlv.rstrip(b"\x00").decode())
        assert parse_receipt(ev.short_message.decode()) is not None
    return got


async def test_killed_simulator_sends_the_receipts_it_owed_after_restart(
    tmp_path: Path,
) -> None:
    port = free_port()
    with _simulator(port, tmp_path, delay=60) as sim:
        esme = await _bind(port)
        ids = []
        for i in range(5):
            resp = await esme.submit_sm(f"8613900000{i:03d}", b"hello", registered_delivery=1)
            assert resp.is_success
            ids.append(resp.message_id)
        assert await _receipts(esme, 0.3) == []  # the receipts are 60 s away
        sim.send_signal(signal.SIGKILL)  # no clean shutdown: nothing written at exit
        sim.wait(10)
    with _simulator(port, tmp_path, delay=60):
        esme = await _bind(port)
        owed = await _receipts(esme, 5)
        assert sorted(owed) == sorted(ids)
        resp = await esme.submit_sm("8613900000999", b"again", registered_delivery=1)
        assert resp.message_id not in ids  # ids go on from the last run's
        await asyncio.sleep(0.3)  # the paid receipts reach the file before the next kill
    with _simulator(port, tmp_path, delay=60):
        esme = await _bind(port)
        # Only the receipt still owed for the last submit comes back, not the paid ones.
        assert await _receipts(esme, 2) == [resp.message_id]
    log = read_accept_log(tmp_path / "accepted")
    assert [dest for _, _, dest, _ in log] == [f"8613900000{i:03d}" for i in range(5)] + [
        "8613900000999"
    ]
    assert [mid for _, mid, _, _ in log] == [*ids, resp.message_id]


async def _read_pdu(reader: asyncio.StreamReader) -> tuple[int, int, int, bytes]:
    head = await reader.readexactly(pdu.HEADER.size)
    length, command_id, status, sequence = pdu.HEADER.unpack(head)
    return command_id, status, sequence, await reader.readexactly(length - pdu.HEADER.size)


async def test_a_receipt_the_esme_refused_is_sent_again_on_the_same_bind() -> None:
    # An ESME that cannot store a receipt yet (its Redis is failing over) refuses it or leaves
    # it unanswered; the bind stays up, and the SMSC must try again on it, not wait for a
    # bind that never comes.
    sim = SmscSimulator(port=free_port(), script=Script(receipt_delay=0, receipt_retry=0.3))
    await sim.start()
    serving = asyncio.create_task(sim.serve())
    writer: asyncio.StreamWriter | None = None
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        writer.write(pdu.bind_transceiver(1, "gateway", "secret", ""))
        assert (await _read_pdu(reader))[:2] == (pdu.BIND_TRANSCEIVER_RESP, 0)
        source = pdu.submit_sm_source("12122", 0, 1)
        pdu_body = pdu.submit_sm_body(source, "8613900000001", 1, 1, 0, 0, b"hello")
        writer.write(pdu.frame(pdu.SUBMIT_SM, 2, pdu_body))
        # With no receipt delay the receipt may overtake the submit_sm_resp on the wire, as it
        # can from a real SMSC: the loop takes the two in whichever order they come.
        carrier_id: str | None = None
        answers = [ESME_RX_T_APPN, pdu.ESME_ROK]
        receipts: list[str | None] = []
        async with asyncio.timeout(5):
            while answers or carrier_id is None:
                command_id, status, sequence, body = await _read_pdu(reader)
                if command_id == pdu.SUBMIT_SM_RESP:
                    assert (sequence, status) == (2, 0)
                    carrier_id = pdu.read_submit_sm_resp(pdu.HEADER.pack(0, 0, 0, 0) + body)
                    continue
                if command_id != pdu.DELIVER_SM:
                    continue  # enquire_link and the like
                got = pdu.read_deliver_sm(pdu.HEADER.pack(0, command_id, 0, sequence) + body)
                assert got is not None
                assert got.is_receipt
                receipts.append(got.receipted_message_id)
                writer.write(pdu.deliver_sm_resp(sequence, answers.pop(0)))
        assert receipts == [carrier_id, carrier_id]  # refused once, then sent again
        await asyncio.sleep(0.1)  # the accepting answer reaches the simulator
        assert (sim.receipts_sent, sim.receipts_retried) == (1, 1)

        # Refused for good (ESME_RX_P_APPN, an ESME that can never read it): not sent again.
        writer.write(pdu.frame(pdu.SUBMIT_SM, 3, pdu_body))
        later: list[int] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.5):  # five retry intervals
                while True:
                    command_id, _, sequence, body = await _read_pdu(reader)
                    if command_id == pdu.DELIVER_SM:
                        later.append(sequence)
                        writer.write(pdu.deliver_sm_resp(sequence, ESME_RX_P_APPN))
        assert len(later) == 1
        assert (sim.receipts_refused, sim.receipts_retried) == (1, 1)
    finally:
        if writer is not None:
            writer.close()
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
