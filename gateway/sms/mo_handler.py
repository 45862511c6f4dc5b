"""Mobile-originated SMS: 退订, TD or STOP opts the sender out of reminders.

The SMS worker writes every MO to a stream; this consumer reads it (at-least-once, so an
opt-out is never lost in a restart). Opting out is idempotent. Other texts are kept in the
stream for a year's worth of operators' curiosity, nothing more.
"""

from __future__ import annotations

import logging
import unicodedata

import redis.asyncio as aioredis

from gateway.core.phones import InvalidPhone, parse_cn_mobile
from gateway.settings import WorkerSettings
from gateway.store.keys import Keys
from gateway.store.optouts import OptOutStore
from gateway.store.outage import STORE_DOWN, Outage
from gateway.store.streams import StreamGroup

log = logging.getLogger(__name__)

GROUP = "mo-handlers"
OPT_OUT_WORDS = frozenset({"退订", "TD", "STOP"})


def is_opt_out(text: str) -> bool:
    """``退订``, ``TD`` or ``STOP``, in any case, full- or half-width, with stray spaces or
    punctuation around it."""
    norm = unicodedata.normalize("NFKC", text or "").strip().upper()
    norm = norm.strip(" .。!！,，;；\"'")
    return norm in OPT_OUT_WORDS


class MoHandler:
    def __init__(
        self, redis: aioredis.Redis, keys: Keys, worker: WorkerSettings, consumer: str
    ) -> None:
        self.group = StreamGroup(
            redis, keys, keys.mo_queue, GROUP, consumer, worker.consumer_dead_after
        )
        self.opt_outs = OptOutStore(redis, keys)
        self._closing = False

    def close(self) -> None:
        self._closing = True
        self.group.close()

    async def run(self) -> None:
        await self.group.ensure()
        outage = Outage("MO handler")
        resume = True  # at start, and after an outage: what was read and not acked
        while not self._closing:
            try:
                entries = await self.group.own_pending() if resume else []
                resume = False
                entries += await self.group.read(100, 1000)
                entries += await self.group.upkeep()
                for eid, fields in entries:
                    await self._handle(eid, fields)
                outage.ok()
            except STORE_DOWN as exc:
                resume = True
                await outage.pause(exc)

    async def _handle(self, eid: str, fields: dict[str, str]) -> None:
        text, sender = fields.get("text", ""), fields.get("from", "")
        if is_opt_out(text):
            try:
                number = parse_cn_mobile(sender).national
            except InvalidPhone:
                log.warning("opt-out from an unusable number ignored")
            else:
                if await self.opt_outs.add(number, "mo", text.strip()[:20]):
                    log.info("a number opted out of reminders by SMS")
        await self.group.ack(eid)
