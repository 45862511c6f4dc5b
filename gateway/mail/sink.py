"""``gateway smtp-sink``: aiosmtpd printing each message it accepts (the local stack's mail)."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import logging
import signal
from typing import Any

from aiosmtpd.controller import Controller

from gateway.core.emails import mask_email


def summary(mail_from: str, rcpt_tos: list[str], content: bytes) -> str:
    """``SMTP <- n***@… to z***@example.cn: subject [parts] text…`` (pure; addresses masked)."""
    msg = email.message_from_bytes(content, policy=email.policy.default)
    body = msg.get_body(("plain",)) if isinstance(msg, email.message.EmailMessage) else None
    text = body.get_content().strip() if body is not None else ""
    parts = [p.get_content_type() for p in msg.walk() if not p.is_multipart()]
    return (
        f"SMTP <- {mask_email(mail_from)} to {', '.join(mask_email(r) for r in rcpt_tos)}: "
        f"{msg['Subject']} [{', '.join(parts)}] {text[:60]}…"
    )


class _Printer:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        print(summary(envelope.mail_from, envelope.rcpt_tos, envelope.content), flush=True)
        return "250 OK"


async def run_sink(host: str, port: int) -> int:
    # aiosmtpd logs every SMTP command at INFO, addresses included; the printed summary is
    # what the local stack's terminal needs.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    controller = Controller(_Printer(), hostname=host, port=port)
    controller.start()
    print(f"SMTP sink listening on {host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(asyncio.CancelledError):
        await stop.wait()
    controller.stop()
    return 0
