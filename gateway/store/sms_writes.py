"""What an SMS link writes from the SMSC's answers (carrier ids and receipts), batched per
lane into ``sms_events`` calls, and routed to the lane of the notice they are about.

A carrier id arrives with its notice's id, so its lane is known (``Keys.notice_lane``). A
receipt knows only the carrier id. With one lane that is all there is. With several
(docs/redis-cluster.md), the notice's lane is written under the carrier id
(``Keys.carrier_id_lane``, a key of its own slot) before the carrier id is stored; a receipt
reads it first and goes to that lane. A receipt that finds no lane (it overtook the
submit_sm_resp's bookkeeping) is parked in the carrier id's own lane (``Keys.carrier_lane``);
whichever of the two comes second then moves it to the notice's lane. Each writes first and
reads the other's key after, so one of them always sees the other: the receipt path parks,
then reads the lane again; the carrier-id path writes the lane, then looks for a parked
receipt. Moving is applying the receipt in the notice's lane, then dropping the parked copy;
a crash between the two applies it again, which the status ranks make a no-op.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from gateway.core.statuses import NoticeStatus
from gateway.store.batch import ScriptBatcher
from gateway.store.keys import Keys
from gateway.store.notice_scripts import NoticeScripts
from gateway.store.scripts import Script
from gateway.tasks import OwnedTasks

log = logging.getLogger(__name__)


def _same_phone(a: object, b: str) -> bool:
    return isinstance(a, str) and a != "" and a == b


class SmsWrites:
    """One ``ScriptBatcher`` per lane (``batchers``: the link runs and closes them), and the
    routing of carrier ids and receipts to them."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        scripts: NoticeScripts,
        batchers: Sequence[ScriptBatcher],
        mapping_ttl_s: int,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.scripts = scripts
        self.batchers = list(batchers)
        self.mapping_ttl_s = mapping_ttl_s
        self._routed = OwnedTasks("an SMS write routed over lanes")
        self._drop = Script(redis, "drop_parked_receipt", keys)

    async def close(self, within: float = 1.0) -> None:
        """Let writes being routed reach their batchers (for up to ``within`` seconds), then
        the batchers flush what is queued and end. A write still being routed then is
        dropped: the carrier id's part stays unacked (the next worker sends it again), the
        receipt unanswered (the SMSC sends it again)."""
        await self._routed.wait(within)
        self._routed.cancel()
        for batcher in self.batchers:
            batcher.close()

    # -- a carrier id -----------------------------------------------------------------------
    def submitted(
        self,
        notice_id: str,
        part: int,
        parts: int,
        smsc_message_id: str,
        at: str,
        *,
        scope: str,
        form: str,
        to_tail: str,
    ) -> asyncio.Future[Any]:
        lane = self.keys.notice_lane(notice_id)
        fields, keys = self.scripts.submitted_event(
            notice_id, part, parts, smsc_message_id, at, form, scope, lane, to_tail
        )
        if self.keys.lanes == 1:
            return self.batchers[lane].submit(fields, keys)
        return self._routed.spawn(self._submitted(fields, keys, lane, scope, form, to_tail))

    async def _submitted(
        self, fields: list[Any], keys: list[str], lane: int, scope: str, form: str, tail: str
    ) -> Any:
        await self.redis.set(self.keys.carrier_id_lane(scope, form), lane, ex=self.mapping_ttl_s)
        result = await self.batchers[lane].submit(fields, keys)
        parked_in = self.keys.carrier_lane(form)
        if parked_in != lane:
            key = self.keys.early_receipt(scope, form, parked_in)
            parked = await self.redis.get(key)
            if parked is not None:
                value = json.loads(parked)
                # Parked under its best form, or under another for the same recipient: ours
                # (the rule sms_events.lua applies in one lane).
                parks = value.get("parks") or []
                if (parks and parks[0] == key) or _same_phone(value.get("tail"), tail):
                    await self._move(parked, value, scope, parked_in, lane)
        return result

    # -- a receipt ----------------------------------------------------------------------------
    def receipt(
        self,
        smsc_message_id: str,
        forms: list[str],
        link: str,
        scope: str,
        status: NoticeStatus,
        at: str,
        stat: str,
        err: str,
        to_tail: str,
    ) -> asyncio.Future[Any]:
        args = (smsc_message_id, forms, link, scope, status, at, stat, err, to_tail)
        if self.keys.lanes == 1:
            fields, keys = self.scripts.receipt_event(*args, lane=0)
            return self.batchers[0].submit(fields, keys)
        return self._routed.spawn(self._receipt(args, scope, forms))

    async def _lane_of(self, scope: str, forms: list[str]) -> int | None:
        """The lane written under the first of ``forms`` that has one."""
        pipe = self.redis.pipeline(transaction=False)
        for form in forms:
            pipe.get(self.keys.carrier_id_lane(scope, form))
        for value in await pipe.execute():
            if value is not None:
                lane = int(value)
                if 0 <= lane < self.keys.lanes:
                    return lane
        return None

    async def _receipt(self, args: tuple[Any, ...], scope: str, forms: list[str]) -> Any:
        lane = await self._lane_of(scope, forms)
        if lane is not None:
            fields, keys = self.scripts.receipt_event(*args, lane=lane)
            return await self.batchers[lane].submit(fields, keys)
        parked_in = self.keys.carrier_lane(forms[0])
        fields, keys = self.scripts.receipt_event(*args, lane=parked_in)
        result = await self.batchers[parked_in].submit(fields, keys)
        if result != "early":
            return result
        lane = await self._lane_of(scope, forms)  # came in the meantime?
        if lane is not None and lane != parked_in:
            key = self.keys.early_receipt(scope, forms[0], parked_in)
            parked = await self.redis.get(key)
            if parked is not None:
                result = await self._move(parked, json.loads(parked), scope, parked_in, lane)
        return result

    async def _move(
        self, parked: str, value: dict[str, Any], scope: str, from_lane: int, to_lane: int
    ) -> Any:
        """Apply a receipt parked in ``from_lane`` in its notice's lane, then drop it."""
        member = json.loads(value["member"])
        detail = value.get("detail") or {}
        forms = value.get("forms") or [member["id"]]
        fields, keys = self.scripts.receipt_event(
            member["id"],
            forms,
            member.get("link", ""),
            scope,
            NoticeStatus(value["status"]),
            value["at"],
            detail.get("stat", ""),
            detail.get("err", ""),
            value.get("tail", ""),
            lane=to_lane,
        )
        result = await self.batchers[to_lane].submit(fields, keys)
        k = self.keys
        await self._drop(
            keys={
                "receipts_parked": k.receipts_parked(from_lane),
                "receipts_unmatched": k.receipts_unmatched(from_lane),
            },
            args={"value": parked, "member": value["member"]},
            more_keys=list(value.get("parks") or []),
        )
        log.debug("a parked receipt moved from lane %d to lane %d", from_lane, to_lane)
        return result
