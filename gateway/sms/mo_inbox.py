"""The simulator's MO inbox for the local stack: a file ``NAME.sms`` put in a folder (first
line the sender's number, the rest the text) is sent to the bound gateway as an MO SMS, then
removed. Write it under another name and rename it, so that it is never read half-written."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from gateway.sms.simulator import SmscSimulator

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2
MAX_BYTES = 2000  # an MO is one short text: a bigger file is not one


def read_mo(path: Path) -> tuple[str, str] | None:
    """(sender, text) of an inbox file, or None for one that is not an MO."""
    raw = path.read_bytes()[: MAX_BYTES + 1]
    if len(raw) > MAX_BYTES:
        return None
    sender, _, text = raw.decode("utf-8", "replace").partition("\n")
    sender = sender.strip()
    return (sender, text.strip()) if sender.lstrip("+").isdigit() else None


def _waiting(inbox: Path) -> list[tuple[Path, tuple[str, str] | None]]:
    inbox.mkdir(parents=True, exist_ok=True)
    return [(path, read_mo(path)) for path in sorted(inbox.glob("*.sms"))]


async def watch(sim: SmscSimulator, inbox: Path, destination: str) -> None:
    """Send each ``*.sms`` file of ``inbox`` as an MO (until cancelled)."""
    while True:
        for path, mo in await asyncio.to_thread(_waiting, inbox):
            if mo is None:
                log.warning("%s is not an MO (first line: the sender's number)", path.name)
            elif not await sim.inject_mo(mo[0].lstrip("+"), destination, mo[1]):
                continue  # no gateway bound yet: try again on the next round
            await asyncio.to_thread(path.unlink, missing_ok=True)
        await asyncio.sleep(POLL_SECONDS)
