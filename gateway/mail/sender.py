"""The email channel: queue entries from the channel worker -> SMTP (aiosmtplib) -> ``sent``
or ``failed``.

A delivery is settled (and its entry acked) after its notice has a final status. A 4xx answer
or a broken connection is retried with back-off (``smtp_attempts`` in all); a 5xx refusal is
final. ``sent`` means the relay accepted the message; mail has no delivery receipts worth
trusting.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiosmtplib

from gateway.channels.worker import Delivery, Lane
from gateway.core.statuses import NoticeStatus
from gateway.mail.message import build
from gateway.settings import SmtpSettings
from gateway.store.notices import NoticeStore
from gateway.store.outage import STORE_DOWN, Outage
from gateway.tasks import OwnedTasks

log = logging.getLogger(__name__)

GROUP = "email-senders"


class EmailSender:
    """The channel behind the email channel worker (``Channel``)."""

    name = "email"
    group = GROUP

    def __init__(self, store: NoticeStore, smtp: SmtpSettings) -> None:
        self.store = store
        self.smtp = smtp
        self._tasks = OwnedTasks("email delivery", lambda: self._room_changed())
        self._closing = False
        self._stopped = asyncio.Event()
        self._room_changed: Callable[[], None] = lambda: None
        self.sent = 0

    def attach(self, wake: Callable[[], None]) -> None:
        self._room_changed = wake

    def room(self, lane: Lane) -> int:
        return 0 if self._closing else self.smtp.smtp_concurrency - len(self._tasks)

    async def start(self) -> None:
        try:
            await self._stopped.wait()
        finally:
            self._tasks.cancel()

    async def stop(self) -> None:
        self._closing = True
        self._stopped.set()

    async def housekeeping(self) -> None:
        return None

    async def submit(self, delivery: Delivery) -> None:
        if not delivery.fields.get("to"):
            delivery.drop("malformed email queue entry")
            return
        self._tasks.spawn(self._deliver(delivery))

    async def _deliver(self, delivery: Delivery) -> None:
        fields = delivery.fields
        status, detail = await self._send_with_retries(delivery.notice_id, fields["to"], fields)
        # The message is out: its outcome waits for Redis rather than sending it twice.
        outage = Outage(f"email outcome of {delivery.notice_id}")
        while True:
            try:
                await self.store.transition(delivery.notice_id, status, detail)
                break
            except STORE_DOWN as exc:
                await outage.pause(exc)
        delivery.settle()

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
