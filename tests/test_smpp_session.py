"""The gateway's SMPP session against what carriers' SMSCs do: unknown commands, their own
unbinds, MO in parts, and deliver_sm answered only once stored, with a bounded backlog."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis
import smpp34

from gateway.metrics import Metrics
from gateway.settings import SmppSettings
from gateway.sms import pdu
from gateway.sms.inbound import Inbound
from gateway.sms.message_path import Answer
from gateway.sms.receipts import ReceiptFields, format_receipt
from gateway.store.keys import Keys
from gateway.store.notices import NoticeStore
from tests.raw_smsc import IdlePath, RawSmsc, gateway_on, receipt_pdu, send_notices, session_on

UNKNOWN_COMMAND = 0x00000999


class UnknownCommandSmsc(RawSmsc):
    """Accepts submits with a receipt each; after the first, sends a command id that SMPP 3.4
    does not define (a carrier's own extension)."""

    def answer(self, writer: asyncio.StreamWriter, command: int, seq: int) -> None:
        if command == pdu.ENQUIRE_LINK:
            self.respond(writer, command, seq)
        elif command == pdu.SUBMIT_SM:
            mid = f"3d{seq:06d}"
            self.respond(writer, command, seq, mid.encode() + b"\0")
            if self.commands.count(pdu.SUBMIT_SM) == 1:
                writer.write(pdu.frame(UNKNOWN_COMMAND, 4711, b"vendor"))
            writer.write(receipt_pdu(mid, seq + 100000))


async def test_an_unknown_command_gets_generic_nack_and_the_session_stays_up(
    redis_server: str, prefix: str
) -> None:
    async with UnknownCommandSmsc() as smsc, gateway_on(redis_server, prefix, smsc.port) as gw:
        (first,) = await send_notices(gw, 1)
        await gw.wait_status(first, "delivered")
        async with asyncio.timeout(5):
            while (pdu.GENERIC_NACK, pdu.ESME_RINVCMDID, 4711) not in smsc.pdus:
                await asyncio.sleep(0.01)
        for nid in await send_notices(gw, 3, start=1):
            await gw.wait_status(nid, "delivered")
        assert smsc.commands.count(pdu.BIND_TRANSCEIVER) == 1  # all on the same bind


class UnbindingSmsc(RawSmsc):
    """On its first session: takes ``hold`` submits, keeps their receipts, then unbinds and,
    before it hangs up, writes the receipts and waits for their answers. It never sends a
    receipt twice. Later sessions: a receipt right after each submit."""

    def __init__(self, hold: int) -> None:
        super().__init__()
        self.hold = hold
        self.held: list[str] = []
        self.unbound = False
        self.answered_after_unbind = 0

    def answer(self, writer: asyncio.StreamWriter, command: int, seq: int) -> bool | None:
        if command == pdu.ENQUIRE_LINK:
            self.respond(writer, command, seq)
        elif command == pdu.SUBMIT_SM:
            mid = f"5c{seq:06d}"
            self.respond(writer, command, seq, mid.encode() + b"\0")
            if self.commands.count(pdu.BIND_TRANSCEIVER) > 1:
                writer.write(receipt_pdu(mid, seq + 100000))
                return None
            self.held.append(mid)
            if len(self.held) == self.hold:
                self.unbound = True
                writer.write(pdu.unbind(900000))
                for i, held in enumerate(self.held):
                    writer.write(receipt_pdu(held, 900001 + i))
        elif command == pdu.DELIVER_SM_RESP and self.unbound:
            self.answered_after_unbind += 1
            if self.answered_after_unbind == self.hold:
                self.unbound = False
                return True  # everything answered: now the SMSC hangs up
        return None


async def test_receipts_the_smsc_sends_after_its_own_unbind_are_answered_and_applied(
    redis_server: str, prefix: str
) -> None:
    async with UnbindingSmsc(hold=5) as smsc, gateway_on(redis_server, prefix, smsc.port) as gw:
        for nid in await send_notices(gw, 5):
            await gw.wait_status(nid, "delivered")
        assert smsc.answered_after_unbind == 5
        assert pdu.UNBIND_RESP in smsc.commands
        # and the link is bound again for what comes next
        for nid in await send_notices(gw, 2, start=5):
            await gw.wait_status(nid, "delivered")
        assert smsc.commands.count(pdu.BIND_TRANSCEIVER) == 2


class HoldingSmsc(RawSmsc):
    """Accepts submits; sends their receipts only when told, and notes when each is answered."""

    def __init__(self) -> None:
        super().__init__()
        self.mids: list[str] = []
        self.answered_at: list[float] = []
        self.writer: asyncio.StreamWriter | None = None

    def answer(self, writer: asyncio.StreamWriter, command: int, seq: int) -> None:
        if command == pdu.ENQUIRE_LINK:
            self.respond(writer, command, seq)
        elif command == pdu.SUBMIT_SM:
            mid = f"6e{seq:06d}"
            self.respond(writer, command, seq, mid.encode() + b"\0")
            self.mids.append(mid)
            self.writer = writer
        elif command == pdu.DELIVER_SM_RESP:
            self.answered_at.append(time.monotonic())

    def send_receipts(self) -> None:
        assert self.writer is not None
        for i, mid in enumerate(self.mids):
            self.writer.write(receipt_pdu(mid, 700000 + i))


async def test_a_receipt_is_answered_only_after_redis_has_stored_it(
    redis_server: str, prefix: str
) -> None:
    async with HoldingSmsc() as smsc, gateway_on(redis_server, prefix, smsc.port) as gw:
        ids = await send_notices(gw, 3)
        for nid in ids:
            await gw.wait_status(nid, "submitted")
        # Writes (and scripts) wait in Redis for a second; reads go on.
        await gw.redis.execute_command("CLIENT", "PAUSE", "1000", "WRITE")
        writes_resume = time.monotonic() + 1.0
        smsc.send_receipts()
        await asyncio.sleep(0.7)
        assert smsc.answered_at == []  # read, not yet stored: not answered
        for nid in ids:
            await gw.wait_status(nid, "delivered")
        async with asyncio.timeout(5):
            while len(smsc.answered_at) < 3:
                await asyncio.sleep(0.01)
        assert min(smsc.answered_at) >= writes_resume - 0.05


class MultipartMoSmsc(RawSmsc):
    """After the bind, sends a three-part UCS-2 MO message one part at a time: each only once
    the previous one is answered (an SMSC window of one)."""

    TEXT = "您好，我想问一下昨天在人民路违停的罚单怎么处理，" * 6

    def __init__(self) -> None:
        super().__init__()
        units = self.TEXT.encode("utf-16-be")
        self.parts = [units[i : i + 134] for i in range(0, len(units), 134)]
        self.sent = 0
        self.writer: asyncio.StreamWriter | None = None

    def bound(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self._next()

    def _next(self) -> None:
        assert self.writer is not None
        udh = bytes((0x05, 0x00, 0x03, 0x2A, len(self.parts), self.sent + 1))
        mo = smpp34.DeliverSm(
            "8613700009999",
            "12122",
            udh + self.parts[self.sent],
            esm_class=0x40,
            data_coding=0x08,
            source_addr_ton=1,
            source_addr_npi=1,
            sequence_number=800 + self.sent,
        )
        self.writer.write(mo.encode())
        self.sent += 1

    def answer(self, writer: asyncio.StreamWriter, command: int, seq: int) -> None:
        if command == pdu.ENQUIRE_LINK:
            self.respond(writer, command, seq)
        elif command == pdu.DELIVER_SM_RESP and self.sent < len(self.parts):
            self._next()


async def test_an_mo_in_parts_reaches_the_mo_stream_whole_with_each_part_answered_once_stored(
    redis_server: str, prefix: str
) -> None:
    async with MultipartMoSmsc() as smsc, gateway_on(redis_server, prefix, smsc.port) as gw:
        assert len(smsc.parts) == 3
        async with asyncio.timeout(10):
            while smsc.commands.count(pdu.DELIVER_SM_RESP) < 3:
                await asyncio.sleep(0.02)
        entries = await gw.redis.xrange(gw.keys.mo_queue(0))
        assert [e["text"] for _, e in entries] == [MultipartMoSmsc.TEXT]
        assert entries[0][1]["from"] == "8613700009999"
        assert await gw.redis.keys(gw.keys.mo_parts("*", "*")) == []


class BurstSmsc(RawSmsc):
    """Right after the bind: five receipts, then (a moment later) an enquire_link."""

    def bound(self, writer: asyncio.StreamWriter) -> None:
        for i in range(5):
            writer.write(receipt_pdu(f"ab{i:04d}", 100 + i))
        asyncio.get_running_loop().call_later(0.3, writer.write, pdu.enquire_link(200))


class HoldingPath(IdlePath):
    """Keeps every receipt unanswered until ``release``."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[tuple[int, Answer]] = []

    def receipt(self, fields: ReceiptFields, sequence: int, answer: Answer) -> None:
        self.held.append((sequence, answer))

    def release(self) -> None:
        for sequence, answer in self.held:
            answer(sequence)


async def test_with_too_many_deliver_sm_unanswered_the_socket_is_not_read() -> None:
    async with BurstSmsc() as smsc:
        path = HoldingPath()
        session = session_on(smsc.port, path, unanswered_max=5)
        task = asyncio.create_task(session.run())
        try:
            await asyncio.sleep(1.0)
            assert len(path.held) == 5
            # The enquire_link waits in the socket: not read, so not answered. No probe
            # either: a link paused on purpose is not a silent one.
            assert pdu.ENQUIRE_LINK_RESP not in smsc.commands
            assert pdu.ENQUIRE_LINK not in smsc.commands
            path.release()
            async with asyncio.timeout(2):
                while pdu.ENQUIRE_LINK_RESP not in smsc.commands:
                    await asyncio.sleep(0.01)
            assert smsc.commands.count(pdu.DELIVER_SM_RESP) == 5
            assert smsc.commands.count(pdu.BIND_TRANSCEIVER) == 1
        finally:
            async with asyncio.timeout(5):
                await session.stop()
                await task


async def test_a_receipt_whose_write_fails_is_written_again_and_only_then_answered(
    redis_server: str, prefix: str
) -> None:
    """A real refusal by Redis (the worker's user may not run scripts for a while)."""
    admin = aioredis.Redis.from_url(redis_server, decode_responses=True)
    user = f"worker-{prefix}"
    await admin.execute_command("ACL", "SETUSER", user, "on", ">pw", "~*", "+@all", "-evalsha")
    worker = aioredis.Redis.from_url(
        redis_server, username=user, password="pw", decode_responses=True
    )
    keys = Keys(prefix)
    store = NoticeStore(worker, keys)
    sms_writes = store.sms_writes(3600, 3600, interval=0.002)
    (batcher,) = sms_writes.batchers
    inbound = Inbound(worker, keys, store, sms_writes, Metrics(), SmppSettings().links()[0])
    writes = asyncio.create_task(batcher.run())
    answered: list[int] = []
    try:
        inbound.receipt(
            ReceiptFields(format_receipt("77aa", "DELIVRD"), None, None), 5, answered.append
        )
        await asyncio.sleep(0.5)  # a few failed writes, retried
        assert answered == []
        scope = SmppSettings().links()[0].id_space
        assert not await admin.exists(keys.early_receipt(scope, "77aa", 0))
        await admin.execute_command("ACL", "SETUSER", user, "+evalsha")
        async with asyncio.timeout(5):
            while not answered:
                await asyncio.sleep(0.01)
        assert answered == [5]  # once
        assert await admin.exists(keys.early_receipt(scope, "77aa", 0))  # parked for its carrier id
    finally:
        inbound.close()
        await sms_writes.close()
        await writes
        await admin.execute_command("ACL", "DELUSER", user)
        await worker.aclose()
        await admin.aclose()
