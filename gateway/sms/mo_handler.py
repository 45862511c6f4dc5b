"""Mobile-originated SMS: a reply to an accident alert, or 退订/TD/STOP (opt-out).

The SMS worker writes every MO to a stream; this consumer reads it (at-least-once, so a
reply or an opt-out is never lost in a restart; both are applied once). An MO from a reporter
within the reply window of their latest accident alert is that alert's reply (1, 2, or any
other text, kept). Opt-out words opt out whether or not they were also a reply. Other texts
are kept in the stream for operators' curiosity, nothing more.
"""

from __future__ import annotations

import asyncio
import logging
import unicodedata

import redis.asyncio as aioredis

from gateway.core.phones import InvalidPhone, mask, parse_cn_mobile
from gateway.core.replies import classify
from gateway.settings import Settings
from gateway.store.accident_replies import AccidentReplies
from gateway.store.apikeys import ApiKeyStore
from gateway.store.keys import Keys
from gateway.store.notices import now_iso
from gateway.store.optouts import OptOutStore
from gateway.store.outage import STORE_DOWN, Outage, once_reachable
from gateway.store.streams import StreamGroup

log = logging.getLogger(__name__)

GROUP = "mo-handlers"
OPT_OUT_WORDS = frozenset({"退订", "TD", "STOP"})
MAX_REPLY_TEXT = 500


def is_opt_out(text: str) -> bool:
    """``退订``, ``TD`` or ``STOP``, in any case, full- or half-width, with stray spaces or
    punctuation around it."""
    norm = unicodedata.normalize("NFKC", text or "").strip().upper()
    norm = norm.strip(" .。!！,，;；\"'")
    return norm in OPT_OUT_WORDS


class MoHandler:
    def __init__(
        self, redis: aioredis.Redis, keys: Keys, settings: Settings, consumer: str
    ) -> None:
        # The MO queue of each lane (a message is queued in its sender's lane).
        self.groups = [
            StreamGroup(
                redis,
                keys,
                keys.mo_queue(lane),
                GROUP,
                consumer,
                settings.worker.consumer_dead_after,
            )
            for lane in keys.each_lane()
        ]
        self.redis = redis
        self.keys = keys
        self.opt_outs = OptOutStore(redis, keys)
        self.replies = AccidentReplies(redis, keys)
        self.api_keys = ApiKeyStore(redis, keys)
        self.reply_window_ms = int(settings.follow_up.accident_reply_hours * 3_600_000)
        self._closing = False

    def close(self) -> None:
        self._closing = True
        for group in self.groups:
            group.close()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for lane, group in enumerate(self.groups):
                tg.create_task(self._run_lane(group), name=f"mo-handler-{lane}")

    async def _run_lane(self, group: StreamGroup) -> None:
        await once_reachable("MO handler", group.ensure)
        outage = Outage("MO handler")
        resume = True  # at start, and after an outage: what was read and not acked
        while not self._closing:
            try:
                entries = await group.own_pending() if resume else []
                resume = False
                entries += await group.read(100, 1000)
                entries += await group.upkeep()
                for eid, fields in entries:
                    await self._handle(group, eid, fields)
                outage.ok()
            except STORE_DOWN as exc:
                resume = True
                await outage.pause(exc)

    async def _handle(self, group: StreamGroup, eid: str, fields: dict[str, str]) -> None:
        text, sender = fields.get("text", ""), fields.get("from", "")
        try:
            number = parse_cn_mobile(sender).national
        except InvalidPhone:
            number = ""
        if number:
            await self._maybe_reply(eid, number, text)
        if is_opt_out(text):
            if not number:
                log.warning("opt-out from an unusable number ignored")
            elif await self.opt_outs.add(number, "mo", text.strip()[:20]):
                log.info("a number opted out of reminders by SMS")
        await group.ack(eid)

    async def _maybe_reply(self, eid: str, number: str, text: str) -> None:
        if not await self.redis.exists(self.keys.latest_alert(number)):
            return  # no alert to this number lately: the common case, one read
        match = await self.replies.record(
            national=number,
            reply=classify(text),
            text=text.strip()[:MAX_REPLY_TEXT],
            from_masked=mask(number),
            mo_id=eid,
            mo_ms=int(eid.partition("-")[0]),  # when the MO was stored: its stream id's time
            window_ms=self.reply_window_ms,
            at=now_iso(),
            recipients=await self.api_keys.event_recipients(),
        )
        if match.matched:
            log.info("reply from %s matched accident alert %s", mask(number), match.alert_id)
