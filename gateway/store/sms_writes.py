"""What an SMS link writes from the SMSC's answers (carrier ids and receipts), batched per
lane into ``sms_events`` calls, and routed to the lane of the notice they are about.

A carrier id arrives with its notice's id, so its lane is known (``Keys.notice_lane``). A
receipt knows only the carrier id. With one lane that is all there is. With several
(docs/redis-cluster.md), a receipt first reads its id's mappings in every lane (one
pipelined read: forms x lanes) and goes to the lane where one matches by the rule
``sms_events.lua`` applies (its best form; another form only for the same recipient). A
receipt that matches nowhere (it overtook the submit_sm_resp's bookkeeping) is parked in its
carrier id's own lane (``Keys.carrier_lane``), and whichever of the two comes second moves
it: the receipt reads the mappings again once parked; the carrier id, once its mapping is
stored, looks for a receipt parked under it in the other lanes. Each writes first and reads
the other's key after, so one of them always sees the other. A receipt for a carrier id this
process handed to a batcher lately, in the form the id was stored in, needs none of that:
it goes to the same lane's batcher, where ``sms_events`` matches the two in either order
(one lane's rule), with no read at all. Moving is applying the receipt
in the notice's lane, then dropping the parked copy; a crash between the two applies it
again, which the status ranks make a no-op. Both writes are the batched, replica-confirmed
``sms_events`` calls; the reads add no write.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from gateway.core.statuses import NoticeStatus
from gateway.store.batch import ScriptBatcher
from gateway.store.keys import Keys
from gateway.store.notice_scripts import NoticeScripts
from gateway.store.outage import STORE_DOWN, Outage
from gateway.store.scripts import Script
from gateway.tasks import OwnedTasks

log = logging.getLogger(__name__)

# Carrier ids this process stored lately, with their lane, for their receipts to go straight
# there: those of the last minute, at most 50,000 (about 400 bytes each). A receipt later
# than that reads the lanes' mappings instead, which picks the newest mapping of an id the
# SMSC handed out again (another process may have stored it since).
RECENT_IDS = 50_000
RECENT_S = 60.0


@dataclass(slots=True)
class _Sent:
    """A carrier id this process handed to a batcher lately."""

    lane: int
    tail: str
    at: float  # loop time
    looks: bool  # its write is followed by a look for a receipt parked in other lanes
    pending: bool = True  # its write has not come back yet
    failed: bool = False
    met: bool = False  # its receipt came here before the write came back: no look needed


def _same_phone(a: object, b: str) -> bool:
    return isinstance(a, str) and a != "" and a == b


def _tail_of(mapping: str) -> str:
    """The recipient's tail in a mapping ``notice_id|part|tail`` (older: no tail)."""
    parts = mapping.split("|")
    return parts[2] if len(parts) > 2 else ""


class SmsWrites:
    """One ``ScriptBatcher`` per lane (``batchers``: the link runs and closes them), and the
    routing of carrier ids and receipts to them."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        scripts: NoticeScripts,
        batchers: Sequence[ScriptBatcher],
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.scripts = scripts
        self.batchers = list(batchers)
        self._closing = False
        self._reads: list[tuple[list[str], asyncio.Future[list[Any]]]] = []
        self._routed = OwnedTasks("an SMS write routed over lanes")
        self._drop = Script(redis, "drop_parked_receipt", keys)
        # scope NUL form -> the lane and the write of a carrier id stored here lately
        self._recent: OrderedDict[str, _Sent] = OrderedDict()  # by scope NUL form, oldest first

    async def close(self, within: float = 1.0) -> None:
        """Let receipts being routed reach their batchers, and parked receipts being moved
        get there (for up to ``within`` seconds), then the batchers flush what is queued and
        end. A receipt still being routed then is left unanswered (the SMSC sends it again);
        a move left undone leaves the receipt parked."""
        self._closing = True
        loop = asyncio.get_running_loop()
        until = loop.time() + within
        while len(self._routed) and loop.time() < until:  # moves spawned meanwhile too
            await self._routed.wait(until - loop.time())
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
        receipt_bests: Sequence[str] = (),
    ) -> asyncio.Future[Any]:
        """The carrier id's mapping, stored in its notice's lane: the future is that write's
        (the part is settled on it). With several lanes, a receipt parked elsewhere under the
        carrier id is then looked for, on the side: in the lanes of ``form`` and of
        ``receipt_bests``, the best forms a receipt for this id may have (the id read in
        another base), where such a receipt parks."""
        lane = self.keys.notice_lane(notice_id)
        fields, keys = self.scripts.submitted_event(
            notice_id, part, parts, smsc_message_id, at, form, scope, lane, to_tail
        )
        fut = self.batchers[lane].submit(fields, keys)
        if self.keys.lanes > 1:
            parks = {self.keys.carrier_lane(f) for f in (form, *receipt_bests)} - {lane}
            sent = self._remember(f"{scope}\0{form}", lane, to_tail, bool(parks))
            claim = functools.partial(self._claim, scope, form, lane, to_tail, sorted(parks))
            fut.add_done_callback(functools.partial(self._stored, sent, claim))
        return fut

    def _remember(self, key: str, lane: int, tail: str, looks: bool) -> _Sent:
        now = asyncio.get_running_loop().time()
        sent = self._recent[key] = _Sent(lane, tail, now, looks)
        self._recent.move_to_end(key)
        while len(self._recent) > RECENT_IDS or (
            self._recent and now - next(iter(self._recent.values())).at > RECENT_S
        ):
            self._recent.popitem(last=False)
        return sent

    def _stored(
        self, sent: _Sent, claim: Callable[[], Awaitable[None]], fut: asyncio.Future[Any]
    ) -> None:
        sent.pending = False
        if fut.cancelled() or fut.exception() is not None:
            sent.failed = True
            return
        if sent.looks and not sent.met:  # met: its receipt went to this lane, none parks aside
            self._routed.spawn(self._persist("receipts parked", claim))

    async def _claim(self, scope: str, form: str, lane: int, tail: str, others: list[int]) -> None:
        """Move to ``lane`` a receipt parked in one of the ``others`` lanes under ``form``
        that is ours: parked under its best form, or under another for the same recipient
        (the rule sms_events.lua applies in one lane)."""
        keys = [self.keys.early_receipt(scope, form, other) for other in others]
        for other, parked in zip(others, await self._read(keys), strict=True):
            if parked is None:
                continue
            value = json.loads(parked)
            parks = value.get("parks") or []
            key = self.keys.early_receipt(scope, form, other)
            if (parks and parks[0] == key) or _same_phone(value.get("tail"), tail):
                await self._move(parked, value, scope, other, lane)

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
        """The receipt stored (applied, or parked): the SMSC is answered on this future."""
        args = (smsc_message_id, forms, link, scope, status, at, stat, err, to_tail)
        if self.keys.lanes == 1:
            fields, keys = self.scripts.receipt_event(*args, lane=0)
            return self.batchers[0].submit(fields, keys)
        # Its best form is the form a carrier id sent here lately was stored in: the script
        # matches a best form always, so the two meet in that id's lane whichever comes first.
        sent = self._recent.pop(f"{scope}\0{forms[0]}", None)
        if sent is not None and self._straight(sent, forms, to_tail):
            fields, keys = self.scripts.receipt_event(*args, lane=sent.lane)
            fut = self.batchers[sent.lane].submit(fields, keys)
            if sent.pending:  # the id's look for receipts parked aside is not needed ...
                sent.met = True
                fut.add_done_callback(functools.partial(self._not_met, sent))
            return fut
        return self._routed.spawn(self._receipt(args, scope, forms, to_tail))

    def _straight(self, sent: _Sent, forms: list[str], tail: str) -> bool:
        """Whether a receipt whose best form is ``sent``'s goes straight to its lane: a young
        id whose write did not fail, and no other form that could be another message's (the
        one-lane rule gives a form other than the best to the same recipient only)."""
        young = asyncio.get_running_loop().time() - sent.at <= RECENT_S
        return young and not sent.failed and (len(forms) == 1 or (tail != "" and tail == sent.tail))

    @staticmethod
    def _not_met(sent: _Sent, fut: asyncio.Future[Any]) -> None:
        """... unless the receipt's own write failed: its retry takes the other way."""
        if fut.cancelled() or fut.exception() is not None:
            sent.met = False

    async def _mapped_lane(self, scope: str, forms: list[str], tail: str) -> int | None:
        """The lane where one of ``forms`` is mapped by the rule of ``sms_events.lua``: the
        best form always, another one only for the same recipient."""
        lanes = list(self.keys.each_lane())
        keys = [self.keys.carrier_id(scope, form, lane) for form in forms for lane in lanes]
        found = iter(await self._read(keys))
        for i, form in enumerate(forms):
            matched = []
            for lane in lanes:
                mapping = next(found)
                if mapping is not None and (i == 0 or _same_phone(_tail_of(mapping), tail)):
                    matched.append(lane)
            if len(matched) == 1:
                return matched[0]
            if matched:  # an id the SMSC handed out again: the newest mapping has most TTL
                ttl = self.redis.pipeline(transaction=False)
                for lane in matched:
                    ttl.pttl(self.keys.carrier_id(scope, form, lane))
                left = await ttl.execute()
                return max(zip(left, matched, strict=True))[1]
        return None

    async def _receipt(self, args: tuple[Any, ...], scope: str, forms: list[str], tail: str) -> Any:
        lane = await self._mapped_lane(scope, forms, tail)
        if lane is not None:
            fields, keys = self.scripts.receipt_event(*args, lane=lane)
            return await self.batchers[lane].submit(fields, keys)
        parked_in = self.keys.carrier_lane(forms[0])
        fields, keys = self.scripts.receipt_event(*args, lane=parked_in)
        result = await self.batchers[parked_in].submit(fields, keys)
        if result == "early":  # stored (answered now): moved aside if its id came meanwhile
            recheck = functools.partial(self._recheck, scope, forms, tail, parked_in)
            self._routed.spawn(self._persist("a parked receipt", recheck))
        return result

    async def _recheck(self, scope: str, forms: list[str], tail: str, parked_in: int) -> None:
        lane = await self._mapped_lane(scope, forms, tail)
        if lane is None or lane == parked_in:
            return  # its carrier id is still to come (and looks for it), or claimed it there
        key = self.keys.early_receipt(scope, forms[0], parked_in)
        parked = await self.redis.get(key)
        if parked is not None:
            await self._move(parked, json.loads(parked), scope, parked_in, lane)

    async def rescue(self, member: dict[str, Any]) -> bool:
        """A receipt about to be reported unmatched (``UnmatchedReceipts.report``) whose
        carrier id is stored in another lane after all: moved to its notice. That is left
        to this sweep when a process stopped between one side's write and its look at the
        other's (a crash, or a shutdown cutting a move short). With one lane the script
        claims a parked receipt itself. True if it was moved."""
        scope, form = member.get("scope"), member.get("form")
        if self.keys.lanes == 1 or not isinstance(scope, str) or not isinstance(form, str):
            return False
        # Parked in its carrier id's lane, or in the lane of the carrier id it was sent to
        # (``RECENT_IDS``) when that id's write then failed.
        lanes = list(self.keys.each_lane())
        found = await self._read([self.keys.early_receipt(scope, form, lane) for lane in lanes])
        ours = [
            (lane, parked, value)
            for lane, parked in zip(lanes, found, strict=True)
            if parked is not None
            and json.loads((value := json.loads(parked)).get("member") or "null") == member
        ]
        if not ours:
            return False  # not parked any more, or another receipt is parked there now
        parked_in, parked, value = ours[0]
        lane = await self._mapped_lane(scope, value.get("forms") or [form], value.get("tail", ""))
        if lane is None or lane == parked_in:
            return False
        return await self._move(parked, value, scope, parked_in, lane)

    async def _move(
        self, parked: str, value: dict[str, Any], scope: str, from_lane: int, to_lane: int
    ) -> bool:
        """Apply a receipt parked in ``from_lane`` in its notice's lane, then drop it there
        (unless it was parked again: then its notice's carrier id has yet to claim it)."""
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
        if await self.batchers[to_lane].submit(fields, keys) == "early":
            return False
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
        return True

    def _read(self, keys: list[str]) -> asyncio.Future[list[Any]]:
        """The values of ``keys``, read in one pipeline with the other reads asked for in
        the same turn of the event loop (a read of the SMSC's socket hands over many
        receipts at once)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[Any]] = loop.create_future()
        self._reads.append((keys, fut))
        if len(self._reads) == 1:
            loop.call_soon(self._send_reads)
        return fut

    def _send_reads(self) -> None:
        batch, self._reads = self._reads, []
        self._routed.spawn(self._read_batch(batch))

    async def _read_batch(self, batch: list[tuple[list[str], asyncio.Future[list[Any]]]]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for keys, _ in batch:
            for key in keys:
                pipe.get(key)
        try:
            values = await pipe.execute()
        except asyncio.CancelledError:
            for _, fut in batch:
                fut.cancel()
            raise
        except Exception as exc:  # each reader's to handle (an outage is waited out there)
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        at = 0
        for keys, fut in batch:
            if not fut.done():
                fut.set_result(values[at : at + len(keys)])
            at += len(keys)

    async def _persist(self, what: str, step: Callable[[], Awaitable[None]]) -> None:
        """Run ``step`` through Redis outages (until the link closes). What it moves is
        stored already, so a failure costs a receipt its match (it is then listed among
        the unmatched), never the receipt."""
        outage = Outage(f"moving {what}")
        while True:
            try:
                await step()
            except STORE_DOWN as exc:
                if self._closing:
                    return
                await outage.pause(exc)
                continue
            except Exception:
                log.exception("moving %s between lanes failed; it stays parked", what)
                return
            outage.ok()
            return
