"""The email worker: the email queue -> SMTP (aiosmtplib) -> ``sent`` or ``failed``.

At-least-once like the other queues: an entry is acked after its notice has a final status.
A 4xx answer or a broken connection is retried with back-off (``smtp_attempts`` in all); a
5xx refusal is final. ``sent`` means the relay accepted the message; mail has no delivery
receipts worth trusting.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiosmtplib
import redis.asyncio as aioredis

from gateway.core.statuses import NoticeStatus
from gateway.mail.message import build
from gateway.settings import SmtpSettings, WorkerSettings
from gateway.store.keys import Keys
from gateway.store.notices import NoticeStore
from gateway.store.streams import StreamGroup

log = logging.getLogger(__name__)

GROUP = "email-senders"


class PermanentFailure(Exception):
    pass


class EmailSender:
    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        store: NoticeStore,
        smtp: SmtpSettings,
        worker: WorkerSettings,
        consumer: str,
    ) -> None:
        self.store = store
        self.smtp = smtp
        self.group = StreamGroup(
            redis, keys, keys.email_queue, GROUP, consumer, worker.consumer_dead_after
        )
        self._slots = asyncio.Semaphore(smtp.smtp_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self.sent = 0

    def close(self) -> None:
        self._closing = True
        self.group.close()

    async def run(self) -> None:
        await self.group.ensure()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.group.run_acker(), name="email-acker")
                tg.create_task(self._read_loop(), name="email-read")
        finally:
            for t in self._tasks:
                t.cancel()

    async def _read_loop(self) -> None:
        for eid, fields in await self.group.own_pending():
            await self._spawn(eid, fields)
        while not self._closing:
            entries = await self.group.read(self.smtp.smtp_concurrency, 1000)
            entries += await self.group.upkeep()
            for eid, fields in entries:
                await self._spawn(eid, fields)

    async def _spawn(self, eid: str, fields: dict[str, str]) -> None:
        await self._slots.acquire()
        task = asyncio.get_running_loop().create_task(self._deliver(eid, fields))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, eid: str, fields: dict[str, str]) -> None:
        try:
            notice_id, to = fields.get("id", ""), fields.get("to", "")
            if not notice_id or not to:
                log.error("malformed email queue entry %s dropped", eid)
                await self.group.ack_and_delete(eid)
                return
            status, detail = await self._send_with_retries(notice_id, to, fields)
            await self.store.transition(notice_id, status, detail)
            self.group.ack_later(eid)
        finally:
            self._slots.release()

    async def _send_with_retries(
        self, notice_id: str, to: str, fields: dict[str, str]
    ) -> tuple[NoticeStatus, dict[str, Any]]:
        msg = build(
            notice_id, self.smtp.smtp_from, to, fields.get("subject", ""), fields.get("text", "")
        )
        delay, last = 1.0, ""
        for attempt in range(1, self.smtp.smtp_attempts + 1):
            try:
                errors, response = await aiosmtplib.send(
                    msg,
                    hostname=self.smtp.smtp_host,
                    port=self.smtp.smtp_port,
                    username=self.smtp.smtp_username or None,
                    password=self.smtp.smtp_password.get_secret_value() or None,
                    use_tls=self.smtp.smtp_tls,
                    start_tls=self.smtp.smtp_starttls,
                    timeout=self.smtp.smtp_timeout,
                )
                refused = errors.get(to)
                if refused is not None:
                    raise aiosmtplib.SMTPRecipientRefused(refused.code, refused.message, to)
                self.sent += 1
                return NoticeStatus.SENT, {"smtp": response[:200], "attempt": attempt}
            except aiosmtplib.SMTPResponseException as exc:
                last = f"{exc.code} {exc.message}"[:200]
                if 500 <= exc.code < 600:
                    return NoticeStatus.FAILED, {"smtp": last, "attempt": attempt}
            except (aiosmtplib.SMTPException, OSError) as exc:
                last = f"{type(exc).__name__}: {exc}"[:200]
            if self._closing:
                raise asyncio.CancelledError  # left pending: the next worker sends it
            log.warning("email for %s not sent (%s); retrying in %.0f s", notice_id, last, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 4, 300.0)
        return NoticeStatus.FAILED, {"smtp": last, "attempt": self.smtp.smtp_attempts}
