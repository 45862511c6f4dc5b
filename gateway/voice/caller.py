"""The voice worker: parking notices from the voice queue become Asterisk calls.

Per call: speech rendered (cached), a slot under the concurrent-call limit and a token of the
calls-per-second rate (both shared through Redis), then AMI Originate with the notice id as
channel variables. OriginateResponse says whether it was answered; the FastAGI flow says what
the citizen pressed. Busy or no answer is retried per policy, then an SMS with the same text is
sent and linked. A lost AMI link resolves its calls in flight as failed attempts (retried).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from gateway.core.statuses import DIAL_STATUS, originate_outcome
from gateway.ivr_flows.agi_server import FastAgiServer, FlowResult
from gateway.ivr_flows.binding import BindingFlow
from gateway.ivr_flows.parking import parking_flow, reminder_flow
from gateway.settings import Settings
from gateway.store import lua
from gateway.store.apikeys import ApiKeyStore
from gateway.store.binding_requests import BindingRequestStore
from gateway.store.bindings import BindingStore
from gateway.store.keys import Keys
from gateway.store.notices import NoticeStore, new_notice_id, now_iso
from gateway.store.ratelimit import Gcra, SharedRate
from gateway.store.streams import StreamGroup
from gateway.voice.ami import AmiError, AmiLink
from gateway.voice.tts import Tts

log = logging.getLogger(__name__)

GROUP = "voice-callers"
MENU_TEXT = "如您将尽快驶离车辆，请按1；如这不是您的车辆，请按2。"
THANKS_TEXT = "谢谢您的配合，再见。"
REPEAT_TEXT = "重听请按1。"
RETRYABLE = frozenset({"busy", "no_answer", "failed"})
FINAL = frozenset({"acknowledged", "disputed", "no_input", "listened", "unreachable", "cancelled"})


@dataclass(slots=True)
class Call:
    notice_id: str
    entry_id: str
    group: StreamGroup
    attempt: int
    started: float
    answered: bool = False


class VoiceCaller:
    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        store: NoticeStore,
        settings: Settings,
        consumer: str,
        channel_template: str,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.store = store
        self.settings = settings
        self.voice = settings.voice
        self.channel_template = channel_template
        dead_after = settings.worker.consumer_dead_after
        self.group = StreamGroup(redis, keys, keys.voice_queue, GROUP, consumer, dead_after)
        # Voice reminders from jobs: read only when the priority queue has nothing.
        self.bulk = StreamGroup(redis, keys, keys.voice_bulk_queue, GROUP, consumer, dead_after)
        self._cancelled_jobs: set[str] = set()
        self.ami = AmiLink(settings.ami, self._on_ami_event, self._on_ami_state)
        self.tts = Tts(settings.voice.audio_dir, settings.voice.tts_engine, settings.voice.gtts_url)
        self.bindings = BindingStore(redis, keys)
        self.binding_flow = BindingFlow(
            BindingRequestStore(redis, keys),
            self.bindings,
            self.tts,
            settings.binding.binding_max_attempts,
        )
        self.agi = FastAgiServer(
            settings.agi.agi_host,
            settings.agi.agi_port,
            {"parking": parking_flow, "reminder": reminder_flow, "binding": self.binding_flow},
            self._on_flow_result,
            max_sessions=settings.voice.max_calls * 2,
            session_timeout=settings.agi.agi_session_timeout,
        )
        self.api_keys = ApiKeyStore(redis, keys)
        self.rate = SharedRate(Gcra(redis), keys.rate("calls"), settings.voice.calls_per_second)
        self._slot = redis.register_script(lua.CALL_SLOT)
        self._slot_ttl_ms = int(
            (settings.voice.ring_seconds + settings.agi.agi_session_timeout + 60) * 1000
        )
        self.calls: dict[str, Call] = {}  # ActionID -> call
        self._slot_free = asyncio.Event()
        self._closing = False
        self._prompts: dict[str, str] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._starting = 0
        self._dialing: dict[str, str] = {}  # outgoing channel -> dial string
        self._dial_status: dict[str, str] = {}  # dial string -> DIALSTATUS

    def _own(self, coro: Any) -> None:
        """Bookkeeping started from AMI callbacks: owned, reaped, errors logged."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._reap)

    def _reap(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        _log(task)

    # -- run --------------------------------------------------------------------------------
    async def run(self) -> None:
        await self.group.ensure()
        await self.bulk.ensure()
        self.agi.bind()
        self._prompts = {
            "NOTICE_MENU": str(await self.tts.render(MENU_TEXT)),
            "NOTICE_THANKS": str(await self.tts.render(THANKS_TEXT)),
            "NOTICE_REPEAT": str(await self.tts.render(REPEAT_TEXT)),
        }
        await self.binding_flow.prepare()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.ami.run(), name="ami")
                tg.create_task(self.agi.serve(), name="agi")
                tg.create_task(self._read_loop(), name="voice-read")
                tg.create_task(self._housekeeping(), name="voice-housekeeping")
                tg.create_task(self.group.run_acker(), name="voice-acker")
                tg.create_task(self.bulk.run_acker(), name="voice-bulk-acker")
        finally:
            await self.agi.shutdown(2)
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=5)

    def close(self) -> None:
        self._closing = True
        self._slot_free.set()
        self.ami.close()
        self.group.close()
        self.bulk.close()

    async def _read_loop(self) -> None:
        for group in (self.group, self.bulk):
            for eid, fields in await group.own_pending():
                await self._start(group, eid, fields)
        while not self._closing:
            while not self.ami.up or len(self.calls) + self._starting >= self.voice.max_calls:
                self._slot_free.clear()
                try:
                    async with asyncio.timeout(1):
                        await self._slot_free.wait()
                except TimeoutError:
                    pass
                if self._closing:
                    return
            # One read of both queues; a parking notice is started before a reminder.
            res: Any = await self.redis.xreadgroup(
                GROUP,
                self.group.consumer,
                {self.group.stream: ">", self.bulk.stream: ">"},
                count=1,
                block=1000,
            )
            for stream, entries in sorted(res or [], key=lambda r: r[0] != self.group.stream):
                group = self.group if stream == self.group.stream else self.bulk
                for eid, fields in entries:
                    await self._start(group, eid, fields)

    async def _housekeeping(self) -> None:
        while not self._closing:
            await asyncio.sleep(min(1.0, self.settings.worker.heartbeat_seconds))
            await self.group.heartbeat()
            await self.bulk.heartbeat()
            self._cancelled_jobs = set(await self.redis.zrange(self.keys.jobs_cancelled, 0, -1))
            now_ms = int(time.time() * 1000)
            due = await self.redis.zrangebyscore(
                self.keys.voice_retry, "-inf", now_ms, start=0, num=100
            )
            for item in due:
                if await self.redis.zrem(self.keys.voice_retry, item):
                    kind = await self.redis.hget(self.keys.notice(item), "kind")
                    bulk = kind == "reminder"
                    queue = self.keys.voice_bulk_queue if bulk else self.keys.voice_queue
                    await self.redis.xadd(queue, {"id": item})
            for group in (self.group, self.bulk):
                for eid, fields in await group.reclaim_dead():
                    await self._start(group, eid, fields)
            # A call that never reported back (Asterisk lost it) is a failed attempt.
            limit = time.monotonic() - (self.voice.ring_seconds + 300)
            for action_id, call in list(self.calls.items()):
                if call.started < limit:
                    await self._attempt_ended(action_id, "failed", {"reason": "no_report"})

    # -- one call -----------------------------------------------------------------------------
    async def _start_counted(self, group: StreamGroup, eid: str, fields: dict[str, str]) -> None:
        try:
            await self._start(group, eid, fields)
        finally:
            self._starting -= 1

    async def _start(self, group: StreamGroup, eid: str, fields: dict[str, str]) -> None:
        notice_id = fields.get("id", "")
        notice = await self.redis.hgetall(self.keys.notice(notice_id)) if notice_id else {}
        if not notice or notice.get("status") in FINAL:
            group.ack_later(eid)
            return
        if notice.get("job") in self._cancelled_jobs:
            await self.store.transition(notice_id, "cancelled", {"reason": "job_cancelled"})
            group.ack_later(eid)
            return
        attempt = int(notice.get("attempt", "0")) + 1
        if attempt > self.voice.voice_attempts:
            group.ack_later(eid)
            return
        # Speech is rendered while the phone rings (started after the Originate: spawning
        # espeak-ng costs the loop a few ms); the flow waits for the file if needed.
        prompt = self.tts.path_for(notice["text"])
        action_id = f"{notice_id}:{attempt}"
        # GATEWAY_MAX_CALLS holds for all worker processes together.
        while not await self._slot(
            keys=[self.keys.active_calls], args=[action_id, self._slot_ttl_ms, self.voice.max_calls]
        ):
            if self._closing:
                return
            await asyncio.sleep(0.1)
        await self.rate.acquire()
        number = notice["to"]
        self.calls[action_id] = Call(notice_id, eid, group, attempt, time.monotonic())
        await self.store.transition(notice_id, "dialing", {"attempt": attempt})
        try:
            await self.ami.action(
                "Originate",
                ActionID=action_id,
                Channel=self.channel_template.format(number=number),
                Context="notice-call",
                Exten="s",
                Priority="1",
                Async="true",
                Timeout=str(self.voice.ring_seconds * 1000),
                CallerID=self.settings.smpp.smpp_source_addr,
                variables={
                    "NOTICE_ID": notice_id,
                    "NOTICE_FLOW": "parking"
                    if notice.get("kind") == "parking_notice"
                    else "reminder",
                    "NOTICE_PROMPT": str(prompt),
                    **self._prompts,
                },
            )
            self._own(self.tts.render(notice["text"]))
        except AmiError as exc:
            await self._attempt_ended(action_id, "failed", {"reason": str(exc)})

    def _on_ami_event(self, name: str, keys: dict[str, str]) -> None:
        # An unanswered originate reports only Reason 0; why it failed comes from the dial:
        # DialBegin ties the outgoing channel to the dial string, DialEnd gives DIALSTATUS,
        # and the OriginateResponse names the dial string.
        if name == "DialBegin":
            self._dialing[keys.get("DestChannel", "")] = keys.get("DialString", "")
            return
        if name == "DialEnd":
            dial = self._dialing.pop(keys.get("DestChannel", ""), "")
            if dial:
                self._dial_status[dial] = keys.get("DialStatus", "")
            return
        if name != "OriginateResponse":
            return
        action_id = keys.get("ActionID", "")
        call = self.calls.get(action_id)
        if call is None:
            return
        reason = int(keys.get("Reason", "0") or 0)
        if originate_outcome(reason) == "answered":
            call.answered = True
            self._own(self.store.transition(call.notice_id, "answered", {}))
        else:
            self._own(self._unanswered(action_id, reason, keys.get("Channel", "")))

    async def _unanswered(self, action_id: str, reason: int, channel: str) -> None:
        """Why the call was not answered: DialEnd may trail the OriginateResponse a little."""
        dial = channel.partition("/")[2]
        for _ in range(10):
            if dial in self._dial_status:
                break
            await asyncio.sleep(0.05)
        dial_status = self._dial_status.pop(dial, "")
        outcome = DIAL_STATUS.get(dial_status) or originate_outcome(reason)
        await self._attempt_ended(
            action_id, outcome, {"reason": reason, "dial_status": dial_status}
        )

    def _on_ami_state(self, up: bool) -> None:
        if up:
            self._slot_free.set()
            return
        for action_id, call in list(self.calls.items()):
            if not call.answered:
                self._own(self._attempt_ended(action_id, "failed", {"reason": "ami_link_lost"}))

    async def _on_flow_result(self, result: FlowResult) -> None:
        if result.request.flow == "binding":
            log.info("binding call ended: %s", result.outcome)
            return
        if not result.request.flow:
            # Not a FastAGI header at all: on the IVR's audit trail, since that is whose line
            # answers on this port.
            await self.bindings.audit("ivr_session_refused", "", channel="ivr", **result.outcome)
            return
        notice_id = str(result.outcome.get("notice_id", ""))
        outcome = str(result.outcome.get("outcome", ""))
        action_id = next((a for a, c in self.calls.items() if c.notice_id == notice_id), None)
        if not notice_id or outcome not in ("acknowledged", "disputed", "no_input", "listened"):
            log.warning("FastAGI flow ended without an outcome: %s", result.outcome)
            return
        await self.store.transition(notice_id, outcome, dict(result.outcome.get("detail", {})))
        if outcome == "disputed":
            await self._record_suspected_clone(notice_id)
        if action_id is not None:
            call = self.calls.pop(action_id)
            await self.redis.zrem(self.keys.active_calls, action_id)
            call.group.ack_later(call.entry_id)
            self._slot_free.set()

    async def _attempt_ended(self, action_id: str, outcome: str, detail: dict[str, Any]) -> None:
        call = self.calls.pop(action_id, None)
        if call is None:
            return
        await self.redis.zrem(self.keys.active_calls, action_id)
        self._slot_free.set()
        retry = outcome in RETRYABLE and call.attempt < self.voice.voice_attempts
        if retry:
            detail = {**detail, "retry_in_seconds": self.voice.voice_retry_seconds}
        await self.store.transition(call.notice_id, outcome, detail)
        if retry:
            due = int((time.time() + self.voice.voice_retry_seconds) * 1000)
            await self.redis.zadd(self.keys.voice_retry, {call.notice_id: due})
        elif await self.redis.hget(self.keys.notice(call.notice_id), "kind") == "reminder":
            # A reminder is not worth an SMS of its own: the job counts it unreachable.
            await self.store.transition(call.notice_id, "unreachable", {"last": outcome})
        else:
            await self._sms_fallback(call.notice_id, outcome)
        call.group.ack_later(call.entry_id)

    async def _sms_fallback(self, notice_id: str, outcome: str) -> None:
        notice = await self.redis.hgetall(self.keys.notice(notice_id))
        if not notice:
            return
        sms_id = new_notice_id()
        record = {
            "id": sms_id,
            "kind": notice.get("kind", "parking_notice"),
            "channel": "sms",
            "status": "queued",
            "to": notice["to"],
            "text": notice["text"],
            "plate": notice.get("plate", ""),
            "callback_url": notice.get("callback_url", ""),
            "key_id": notice.get("key_id", ""),
            "created_at": now_iso(),
            "fallback_of": notice_id,
            "parts": notice.get("parts", "1"),
        }
        await self.store.create(
            record,
            self.keys.sms_queue,
            {"id": sms_id, "to": "86" + notice["to"], "text": notice["text"]},
            key_id=notice.get("key_id", ""),
        )
        await self.redis.hset(self.keys.notice(notice_id), "fallback_id", sms_id)
        log.info("voice notice %s ended %s; SMS fallback %s", notice_id, outcome, sms_id)

    async def _record_suspected_clone(self, notice_id: str) -> None:
        notice = await self.redis.hgetall(self.keys.notice(notice_id))
        plate = notice.get("plate", "")
        if not plate:
            return
        key = self.keys.suspected_clones
        prev = await self.redis.hget(key, plate)
        count = (json.loads(prev)["count"] if prev else 0) + 1
        at = now_iso()
        report = {
            "plate": plate,
            "count": count,
            "last_notice": notice_id,
            "last_at": at,
            "location": notice.get("location", ""),
        }
        await self.redis.hset(key, plate, json.dumps(report, ensure_ascii=False))
        # Pushed to every command-centre key with an events URL, through the signed outbox.
        body = json.dumps(
            {"id": notice_id, "kind": "suspected_cloned_plate", "at": at, "detail": report},
            ensure_ascii=False,
        )
        for k in await self.api_keys.list():
            if k.role == "command_center" and k.events_url and not k.revoked:
                await self.redis.xadd(
                    self.keys.webhook_queue,
                    {
                        "id": notice_id,
                        "key_id": k.id,
                        "url": k.events_url,
                        "body": body,
                        "attempt": "1",
                        "first_at": at,
                    },
                )


def _log(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("voice bookkeeping failed: %r", task.exception())
