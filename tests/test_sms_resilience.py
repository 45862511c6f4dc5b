"""Nothing accepted is lost: SMSC drops, gateway restarts, dead workers, failing receivers."""

from __future__ import annotations

import asyncio
import struct

import pytest

from gateway.runner import Workers
from gateway.sms.connection import Connection
from gateway.sms.message_path import OutgoingSubmit
from gateway.sms.receipts import format_receipt
from gateway.sms.simulator import SmscSimulator
from tests.conftest import Gateway, Receiver, make_settings
from tests.netfault import CuttableProxy
from tests.raw_smsc import IdlePath, RawSmsc, gateway_on, receipt_pdu, send_notices, session_on


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
        ids = await send_notices(gw, 300)
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
    ids = await send_notices(gateway, 5)
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
    ids = await send_notices(gateway, 20)
    # The doomed worker reads the queue, then dies without acking (no unbind, no cleanup).
    group = doomed.channels["sms:main"].groups[gateway.keys.sms_queue(0)]
    await group.ensure()
    entries = await group.read(100, 100)
    assert len(entries) == 20
    await doomed.redis.delete(gateway.keys.heartbeat("sms-senders", doomed.sms.consumer))
    await doomed.redis.aclose()
    await gateway.start(api=False)
    for nid in ids:
        await gateway.wait_status(nid, "delivered", within=20)
    assert len(smsc.to([f"1390000{i:04d}" for i in range(20)])) == 20


async def test_entries_read_for_a_live_worker_whose_answer_was_lost_are_taken_back(
    gateway: Gateway, smsc: SmscSimulator
) -> None:
    """What a Redis restart can leave: it ran a worker's XREADGROUP (the entries are pending
    on that consumer, and stay so in its append-only file) and stopped before answering.
    The worker, alive, must take them back itself: nobody takes a live consumer's entries."""
    await gateway.stop_workers()
    ids = await send_notices(gateway, 5)
    stream = gateway.keys.sms_queue(0)
    queued = await gateway.redis.xrange(stream)
    assert len(queued) == 5
    await gateway.redis.xdel(stream, *[eid for eid, _ in queued])
    await gateway.start(api=False)
    assert gateway.workers is not None
    consumer = gateway.workers.channels["sms:main"].consumer
    async with asyncio.timeout(10):
        await smsc.wait_bound()
    # XADD and a read for the worker's consumer in one transaction: the worker's own blocked
    # read never sees these entries, as if Redis had not sent its answer.
    pipe = gateway.redis.pipeline(transaction=True)
    for _, fields in queued:
        pipe.xadd(stream, fields)
    pipe.xreadgroup("sms-senders", consumer, {stream: ">"}, count=100)
    res = await pipe.execute()
    assert len(res[-1][0][1]) == 5  # pending on the live worker, unknown to it
    for nid in ids:
        await gateway.wait_status(nid, "delivered", within=20)
    assert len(smsc.to([f"1390000{i:04d}" for i in range(5)])) == 5


async def test_entries_a_failover_hands_out_again_are_not_sent_twice(
    gateway: Gateway, smsc: SmscSimulator
) -> None:
    """What a failover whose replica lagged leaves: the group's last read and the acks roll
    back, and entries already sent come back as new. Made here in one transaction on the
    live stream (its ids set back, the same entries added again, the group set back), as
    the promoted replica would show it; the worker must see them for what they are."""
    await gateway.stop_workers()
    ids = await send_notices(gateway, 5)
    stream = gateway.keys.sms_queue(0)
    queued = await gateway.redis.xrange(stream)
    assert len(queued) == 5
    await gateway.start(api=False)
    for nid in ids:
        await gateway.wait_status(nid, "delivered")
    async with asyncio.timeout(5):
        while await gateway.redis.xlen(stream):  # acked and deleted
            await asyncio.sleep(0.02)
    info = await gateway.redis.xinfo_stream(stream)
    first = queued[0][0]
    ms, seq = map(int, first.split("-"))
    before = f"{ms}-{seq - 1}" if seq else f"{ms - 1}-18446744073709551615"
    pipe = gateway.redis.pipeline(transaction=True)
    pipe.execute_command(
        "XSETID", stream, before, "ENTRIESADDED", info["entries-added"], "MAXDELETEDID", "0-0"
    )
    for eid, fields in queued:
        pipe.xadd(stream, fields, id=eid)
    pipe.xgroup_setid(stream, "sms-senders", before)
    await pipe.execute()
    async with asyncio.timeout(10):
        while await gateway.redis.xlen(stream):  # taken, seen as sent, acked again
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.5)
    assert len(smsc.to([f"1390000{i:04d}" for i in range(5)])) == 5
    resent = gateway.metrics.sms_resent.labels("main", "taken_over")._value.get()
    assert resent == 0


async def test_a_queue_a_failover_lost_with_its_group_is_made_again(
    gateway: Gateway, smsc: SmscSimulator
) -> None:
    """A stream and its consumer group the promoted replica never had: the worker's read
    answers NOGROUP; it makes the group again and goes on, its loops alive."""
    (first,) = await send_notices(gateway, 1)
    await gateway.wait_status(first, "delivered")
    await gateway.redis.delete(gateway.keys.sms_queue(0))
    await asyncio.sleep(1.2)  # past the worker's blocked read
    (second,) = await send_notices(gateway, 1, start=1)
    await gateway.wait_status(second, "delivered")
    assert gateway.workers is not None
    assert [t.get_name() for t in gateway.workers.tasks if t.done()] == []


async def test_receipts_beyond_the_simulators_window_wait_their_turn(
    gateway: Gateway, smsc: SmscSimulator
) -> None:
    smsc.script.receipt_window = 1
    smsc.script.receipt_delay = 1.0
    ids = await send_notices(gateway, 20)
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
    (nid,) = await send_notices(gateway, 1, callback_url=receiver.url)
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
        (nid,) = await send_notices(gw, 1, callback_url=receiver.url)
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


class SlowRate:
    """A rate limiter that lets nothing through until ``release``."""

    def __init__(self) -> None:
        self.waiting = asyncio.Event()
        self._open = asyncio.Event()

    async def acquire(self) -> None:
        self.waiting.set()
        await self._open.wait()

    def release(self) -> None:
        self._open.set()


class OnePartPath(IdlePath):
    def __init__(self) -> None:
        super().__init__()
        self.handed = False

    async def next_submit(self) -> OutgoingSubmit:
        if self.handed:
            return await super().next_submit()
        self.handed = True
        return OutgoingSubmit("1", b"body")


async def test_a_part_handed_over_as_the_session_stops_is_not_written_after_the_unbind() -> None:
    """A stop can come while a submit_sm waits for the rate limiter; the part then stays
    with the sender (its entry pending for the next worker), never written after unbind."""
    async with RawSmsc() as smsc:
        rate = SlowRate()
        session = session_on(smsc.port, OnePartPath(), rate)
        task = asyncio.create_task(session.run())
        async with asyncio.timeout(5):
            await rate.waiting.wait()
            stopping = asyncio.create_task(session.stop())
            await asyncio.sleep(0)
            rate.release()
            await stopping
            await task
    assert smsc.commands == [0x09, 0x06]  # bind, unbind: no submit_sm


class KeepaliveSmsc(RawSmsc):
    """Answers enquire_link only if told to."""

    def __init__(self, answer_enquire_link: bool) -> None:
        super().__init__()
        self.answer_enquire_link = answer_enquire_link

    def answer(self, writer: asyncio.StreamWriter, command: int, seq: int) -> None:
        if command == 0x15 and self.answer_enquire_link:
            self.respond(writer, command, seq)


async def _keep(smsc: KeepaliveSmsc, seconds: float) -> None:
    session = session_on(smsc.port, IdlePath())
    task = asyncio.create_task(session.run())
    await asyncio.sleep(seconds)
    async with asyncio.timeout(5):
        await session.stop()
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
    """With the socket's buffer full (the SMSC busy writing, not reading), a submit waits
    for room, but answers do not: the read loop writes them and reads on."""

    accepted: list[asyncio.StreamWriter] = []

    async def never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(never_read, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = Connection(reader, writer, unanswered_max=10)
    try:
        writer.transport.set_write_buffer_limits(high=4096)
        writer.write(b"\0" * 20_000_000)  # far more than the kernel will take
        conn.unanswered = 1
        conn.answer(7)  # returns at once, whatever the buffer holds
        assert conn.unanswered == 0
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(conn.out.drain(), 0.5)
    finally:
        writer.transport.abort()
        for w in accepted:
            w.transport.abort()
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
            text = format_receipt(mid, "DELIVRD").replace("err:000", "err:NONE")
            writer.write(receipt_pdu(mid, seq + 100000, text))


async def test_a_receipt_with_a_name_for_its_error_code_is_applied_without_a_rebind(
    redis_server: str, prefix: str
) -> None:
    async with OddReceiptSmsc() as smsc, gateway_on(redis_server, prefix, smsc.port) as gw:
        ids = await send_notices(gw, 3)
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
    async with NackingSmsc() as smsc, gateway_on(redis_server, prefix, smsc.port) as gw:
        ids = await send_notices(gw, 2)
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
            writer.write(receipt_pdu(mid, seq + 100000))


async def test_garbage_on_the_smpp_socket_ends_that_session_and_loses_nothing(
    redis_server: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with GarbageOnceSmsc() as smsc, gateway_on(redis_server, prefix, smsc.port) as gw:
        ids = await send_notices(gw, 3)
        for nid in ids:
            await gw.wait_status(nid, "delivered")
        assert smsc.commands.count(0x09) == 2  # the garbled session was left, one rebind
        assert "SMSC sent what is not SMPP (PDU length 4294967295" in caplog.text
