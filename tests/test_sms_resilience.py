"""Nothing accepted is lost: SMSC drops, gateway restarts, dead workers, failing receivers."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from typing import Self

import pytest
from aiosmpplib import PhoneNumber
from aiosmpplib.protocol import DeliverSm, DeliverSmResp, EnquireLink
from aiosmpplib.retrytimer import SimpleExponentialBackoff

from gateway.channels.worker import Lane
from gateway.runner import Workers
from gateway.sms.esme_bridge import GatewayEsme
from gateway.sms.receipts import format_receipt
from gateway.sms.simulator import SmscSimulator
from tests.conftest import Gateway, Receiver, free_port, make_settings
from tests.netfault import CuttableProxy


async def _send(gw: Gateway, n: int, start: int = 0, **extra: str) -> list[str]:
    key = await gw.add_key("command_center", ["127.0.0.1"])
    ids = []
    for i in range(start, start + n):
        code, body, _ = await gw.request(
            "POST", "/v1/messages", key, {"to": f"1390000{i:04d}", "text": f"通知{i}", **extra}
        )
        assert code == 202, body
        ids.append(body["id"])
    return ids


@contextlib.asynccontextmanager
async def _gateway_on(redis_server: str, prefix: str, port: int) -> AsyncIterator[Gateway]:
    """A gateway (API and worker) bound to the SMSC on ``port``, with an admin key."""
    gw = Gateway(make_settings(redis_server, prefix, port))
    await gw.start()
    try:
        gw._admin = await gw.add_key("admin")
        yield gw
    finally:
        await gw.close()


async def test_smsc_dropping_the_connection_mid_batch_loses_nothing(
    redis_server: str, prefix: str, smsc: SmscSimulator
) -> None:
    link = CuttableProxy("127.0.0.1", smsc.port)
    await link.start()
    gw = Gateway(make_settings(redis_server, prefix, link.port))
    await gw.start()
    gw._admin = await gw.add_key("admin")
    try:
        smsc.script.receipt_delay = 0.3
        ids = await _send(gw, 300)
        async with asyncio.timeout(10):
            while smsc.submits < 60:
                await asyncio.sleep(0.002)
        link.cut()  # mid-batch: parts in flight, receipts not yet sent
        for nid in ids:
            await gw.wait_status(nid, "delivered", within=30)
        assert len({m.destination[-11:] for m in smsc.messages}) == 300
        assert gw.metrics.smpp_binds._value.get() >= 2
    finally:
        await gw.close()
        await link.close()


async def test_receipt_arriving_after_gateway_restart_is_matched(
    gateway: Gateway, smsc: SmscSimulator
) -> None:
    smsc.script.receipt_delay = 1.0
    ids = await _send(gateway, 5)
    for nid in ids:
        await gateway.wait_status(nid, "submitted")
    await gateway.stop_workers()  # receipts are still pending at the SMSC
    assert smsc.receipts_sent == 0
    await asyncio.sleep(1.2)
    await gateway.start(api=False)  # a new process: nothing of the old one in memory
    for nid in ids:
        await gateway.wait_status(nid, "delivered", within=15)


async def test_entries_of_a_dead_worker_are_reclaimed_by_a_live_one(
    gateway: Gateway, smsc: SmscSimulator
) -> None:
    await gateway.stop_workers()
    doomed = Workers(gateway.settings, gateway.metrics)
    ids = await _send(gateway, 20)
    # The doomed worker reads the queue, then dies without acking (no unbind, no cleanup).
    group = doomed.channels["sms:main"].groups[Lane.PRIORITY]
    await group.ensure()
    entries = await group.read(100, 100)
    assert len(entries) == 20
    await doomed.redis.delete(gateway.keys.heartbeat("sms-senders", doomed.sms.consumer))
    await doomed.redis.aclose()
    await gateway.start(api=False)
    for nid in ids:
        await gateway.wait_status(nid, "delivered", within=20)
    assert len(smsc.to([f"1390000{i:04d}" for i in range(20)])) == 20


async def test_receipts_beyond_the_simulators_window_wait_their_turn(
    gateway: Gateway, smsc: SmscSimulator
) -> None:
    smsc.script.receipt_window = 1
    smsc.script.receipt_delay = 1.0
    ids = await _send(gateway, 20)
    for nid in ids:
        await gateway.wait_status(nid, "submitted")
    await gateway.stop_workers()  # the 20 receipts fall due with no session to take them
    await asyncio.sleep(1.2)
    await gateway.start(api=False)  # the next bind gets all 20 at once, one at a time
    for nid in ids:
        await gateway.wait_status(nid, "delivered", within=15)
    assert smsc.receipts_sent == 20
    assert smsc.receipts_held == 19


async def test_webhook_receiver_failing_three_times_gets_a_later_retry(
    gateway: Gateway, receiver: Receiver
) -> None:
    receiver.fail_first = 3
    (nid,) = await _send(gateway, 1, callback_url=receiver.url)
    await gateway.wait_status(nid, "delivered")
    await receiver.wait_for(nid, "delivered", within=20)
    await receiver.wait_for(nid, "submitted", within=20)
    assert receiver.attempts == 5  # 3 failures, then submitted and delivered once each
    assert sorted(receiver.statuses(nid)) == ["delivered", "submitted"]


async def test_callback_that_never_succeeds_moves_to_dead_letters(
    redis_server: str, prefix: str, smsc: SmscSimulator, receiver: Receiver
) -> None:
    gw = Gateway(
        make_settings(redis_server, prefix, smsc.port, GATEWAY_WEBHOOK_GIVE_UP_AFTER="1.5")
    )
    await gw.start()
    gw._admin = await gw.add_key("admin")
    try:
        receiver.fail_first = 10**6
        (nid,) = await _send(gw, 1, callback_url=receiver.url)
        await gw.wait_status(nid, "delivered")
        async with asyncio.timeout(20):
            while True:
                code, body, _ = await gw.request("GET", "/v1/admin/webhook-dead-letters", gw._admin)
                assert code == 200
                if {i["body"]["status"] for i in body["items"] if i["id"] == nid} == {
                    "submitted",
                    "delivered",
                }:
                    break
                await asyncio.sleep(0.2)
        assert body["items"][0]["last_error"] == "HTTP 503"
        officer = await gw.add_key("officer")
        code, _, _ = await gw.request("GET", "/v1/admin/webhook-dead-letters", officer)
        assert code == 403
    finally:
        await gw.close()


async def test_a_part_handed_over_as_the_session_closes_waits_for_the_next_one() -> None:
    """A stop (or a lost link) can clear the ESME's writer while a submit_sm waits for the
    rate limiter. That send now waits to be ended with the session (the sender still holds
    the part) instead of failing the send loop with an AssertionError."""
    esme = GatewayEsme(smsc_host="127.0.0.1", smsc_port=free_port(), system_id="t", password="t")
    esme._bound.set()  # bound a moment ago; the writer is already gone
    assert esme._writer is None
    send = asyncio.create_task(esme._send_data(EnquireLink()))
    await asyncio.sleep(0.05)
    assert not send.done()
    send.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await send
    assert send.cancelled()


class RawSmsc:
    """A bare SMPP server on an ephemeral port: answers bind_transceiver and unbind, records
    the command id of every PDU it receives, and leaves the others to ``answer``."""

    def __init__(self) -> None:
        self.commands: list[int] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    @staticmethod
    def respond(writer: asyncio.StreamWriter, command: int, seq: int, body: bytes = b"") -> None:
        writer.write(struct.pack("!IIII", 16 + len(body), command | 0x80000000, 0, seq) + body)

    def answer(self, writer: asyncio.StreamWriter, command: int, seq: int) -> None:
        """What to do with a PDU other than a bind or an unbind."""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                length, command, _, seq = struct.unpack("!IIII", await reader.readexactly(16))
                await reader.readexactly(length - 16)
                self.commands.append(command)
                if command == 0x09:
                    self.respond(writer, command, seq, b"smsc\0")
                elif command == 0x06:  # unbind: answered, then the SMSC hangs up
                    self.respond(writer, command, seq)
                    break
                else:
                    self.answer(writer, command, seq)
        writer.close()


class KeepaliveSmsc(RawSmsc):
    """Answers enquire_link only if told to."""

    def __init__(self, answer_enquire_link: bool) -> None:
        super().__init__()
        self.answer_enquire_link = answer_enquire_link

    def answer(self, writer: asyncio.StreamWriter, command: int, seq: int) -> None:
        if command == 0x15 and self.answer_enquire_link:
            self.respond(writer, command, seq)


async def _keep(smsc: KeepaliveSmsc, seconds: float) -> None:
    esme = GatewayEsme(
        smsc_host="127.0.0.1",
        smsc_port=smsc.port,
        system_id="t",
        password="t",
        enquire_link_interval=0.2,
        socket_timeout=0.5,
        retry_timer=SimpleExponentialBackoff(min_delay=100, max_increases=1),
        log_level="CRITICAL",
    )
    task = asyncio.create_task(esme.start())
    await asyncio.sleep(seconds)
    async with asyncio.timeout(5):
        await esme.stop()
        await task


async def test_a_quiet_but_answering_smsc_keeps_one_session_with_enquire_links() -> None:
    async with KeepaliveSmsc(answer_enquire_link=True) as smsc:
        await _keep(smsc, 1.5)
    assert smsc.commands.count(0x09) == 1  # bound once, never dropped
    assert 3 <= smsc.commands.count(0x15) <= 8  # probed every one to two intervals


async def test_an_smsc_that_stops_answering_is_left_and_bound_again() -> None:
    async with KeepaliveSmsc(answer_enquire_link=False) as smsc:
        await _keep(smsc, 2.5)
    assert smsc.commands.count(0x15) >= 2
    assert smsc.commands.count(0x09) >= 2  # the silent session ended; a new bind followed


async def test_answers_go_out_even_while_the_smsc_is_not_reading() -> None:
    """With the socket's buffer full (the SMSC busy writing, not reading), a request waits
    for room, but the receive loop's answers do not: it reads on, so both sides move."""

    accepted: list[asyncio.StreamWriter] = []

    async def never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(never_read, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    esme = GatewayEsme(smsc_host="127.0.0.1", smsc_port=port, system_id="t", password="t")
    esme._reader, esme._writer = await asyncio.open_connection("127.0.0.1", port)
    esme._bound.set()
    try:
        esme._writer.transport.set_write_buffer_limits(high=4096)
        esme._writer.write(b"\0" * 20_000_000)  # far more than the kernel will take
        await asyncio.wait_for(esme._send_data(DeliverSmResp(sequence_num=7)), 2)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(esme._send_data(EnquireLink()), 0.5)
    finally:
        esme._writer.transport.abort()
        for writer in accepted:
            writer.transport.abort()
        server.close()
        await server.wait_closed()


class OddReceiptSmsc(RawSmsc):
    """Accepts every submit_sm and sends a text-only receipt whose ``err:`` is not a number
    (some SMSCs write names there). aiosmpplib's own receipt parser raised on that, and the
    session was dropped and bound again for each such receipt."""

    def answer(self, writer: asyncio.StreamWriter, command: int, seq: int) -> None:
        if command == 0x15:
            self.respond(writer, command, seq)
        elif command == 0x04:
            mid = f"7a{seq:06d}"
            self.respond(writer, command, seq, mid.encode() + b"\0")
            receipt = DeliverSm(
                short_message=format_receipt(mid, "DELIVRD").replace("err:000", "err:NONE"),
                source=PhoneNumber("8613900000000"),
                destination=PhoneNumber("12122"),
                esm_class=0x04,
                sequence_num=seq + 100000,
            )
            writer.write(receipt.pdu())


async def test_a_receipt_with_a_name_for_its_error_code_is_applied_without_a_rebind(
    redis_server: str, prefix: str
) -> None:
    async with OddReceiptSmsc() as smsc, _gateway_on(redis_server, prefix, smsc.port) as gw:
        ids = await _send(gw, 3)
        for nid in ids:
            notice = await gw.wait_status(nid, "delivered")
            assert notice["history"][-1]["detail"]["err"] == "NONE"
        assert smsc.commands.count(0x09) == 1


class NackingSmsc(RawSmsc):
    """Answers every submit_sm with generic_nack (the SMSC could not read it)."""

    def answer(self, writer: asyncio.StreamWriter, command: int, seq: int) -> None:
        if command == 0x04:
            writer.write(struct.pack("!IIII", 16, 0x80000000, 0x00000003, seq))
        elif command == 0x15:
            self.respond(writer, command, seq)


async def test_a_generic_nack_for_a_submit_refuses_that_notice_and_keeps_the_session(
    redis_server: str, prefix: str
) -> None:
    async with NackingSmsc() as smsc, _gateway_on(redis_server, prefix, smsc.port) as gw:
        ids = await _send(gw, 2)
        for nid in ids:
            notice = await gw.wait_status(nid, "rejected")
            assert notice["history"][-1]["detail"]["smpp_status"] == "generic_nack"
        assert smsc.commands.count(0x09) == 1


class GarbageOnceSmsc(RawSmsc):
    """On its first session, answers the first submit_sm with bytes that cannot be a PDU
    (a command_length of 4 GB); after that, a well-behaved SMSC with receipts."""

    def answer(self, writer: asyncio.StreamWriter, command: int, seq: int) -> None:
        if command == 0x15:
            self.respond(writer, command, seq)
        elif command == 0x04 and self.commands.count(0x09) == 1:
            writer.write(b"\xff" * 64)
        elif command == 0x04:
            mid = f"9b{seq:06d}"
            self.respond(writer, command, seq, mid.encode() + b"\0")
            receipt = DeliverSm(
                short_message=format_receipt(mid, "DELIVRD"),
                source=PhoneNumber("8613900000000"),
                destination=PhoneNumber("12122"),
                esm_class=0x04,
                sequence_num=seq + 100000,
            )
            writer.write(receipt.pdu())


async def test_garbage_on_the_smpp_socket_ends_that_session_and_loses_nothing(
    redis_server: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with GarbageOnceSmsc() as smsc, _gateway_on(redis_server, prefix, smsc.port) as gw:
        ids = await _send(gw, 3)
        for nid in ids:
            await gw.wait_status(nid, "delivered")
        assert smsc.commands.count(0x09) == 2  # the garbled session was left, one rebind
        assert "SMSC sent what is not SMPP (PDU length 4294967295" in caplog.text
