"""The voice channel: parking notices and voice reminders become Asterisk calls.

Per call: speech rendered (cached), a slot under the concurrent-call limit and a token of the
calls-per-second rate (both shared through Redis), then AMI Originate with the notice id as
channel variables. OriginateResponse says whether it was answered; the FastAGI flow says what
the citizen pressed. Busy or no answer is retried per policy, then an SMS with the same text is
sent and linked. A lost AMI link resolves its calls in flight as failed attempts (retried).

Every Originate carries this process's own FastAGI address (``NOTICE_AGI``), which the
dialplan dials back: the flow's result reaches the worker that placed the call and holds its
state, however many workers share one Asterisk.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from gateway.channels.worker import Delivery, Lane
from gateway.core.statuses import (
    ATTEMPT_STATUSES,
    NoticeStatus,
    originate_outcome,
)
from gateway.ivr_flows.agi_server import FastAgiServer, FlowResult
from gateway.ivr_flows.binding import BindingFlow
from gateway.ivr_flows.parking import parking_flow, reminder_flow
from gateway.settings import Settings
from gateway.store.apikeys import ApiKeyStore
from gateway.store.binding_requests import BindingRequestStore
from gateway.store.bindings import BindingStore
from gateway.store.keys import Keys
from gateway.store.notice_scripts import Fallback
from gateway.store.notices import NoticeStore, new_notice_id, now_iso
from gateway.store.ratelimit import Gcra, SharedRate
from gateway.store.voice_scripts import VoiceScripts
from gateway.tasks import OwnedTasks
from gateway.voice.agi_address import advertised_agi, agi_allow
from gateway.voice.ami import AmiError, AmiLink
from gateway.voice.dial_status import DialTracker
from gateway.voice.progress import print_progress
from gateway.voice.tts import Tts

log = logging.getLogger(__name__)

GROUP = "voice-callers"
MENU_TEXT = "如您将尽快驶离车辆，请按1；如这不是您的车辆，请按2。"
THANKS_TEXT = "谢谢您的配合，再见。"
REPEAT_TEXT = "重听请按1。"


@dataclass(slots=True)
class Call:
    delivery: Delivery
    attempt: int
    started: float
    token: str  # one use: the FastAGI flow of this attempt must hand it back
    slot: str  # its call slot (``VoiceScripts.begin_call``)
    answered: bool = False

    @property
    def notice_id(self) -> str:
        return self.delivery.notice_id


class VoiceCaller:
    """The channel behind the voice channel worker (``Channel``); serves both lanes, priority
    (parking notices) first."""

    name = "voice"
    group = GROUP

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        store: NoticeStore,
        settings: Settings,
        consumer: str,
        channel_template: str,
    ) -> None:
        self.keys = keys
        self.store = store
        self.settings = settings
        self.voice = settings.voice
        self.channel_template = channel_template
        self.ami = AmiLink(settings.ami, self._on_ami_event, self._on_ami_state)
        self.tts = Tts(settings.voice.audio_dir, settings.voice.tts_engine, settings.voice.gtts_url)
        self.bindings = BindingStore(redis, keys)
        self.binding_flow = BindingFlow(
            BindingRequestStore(redis, keys, settings.security.code_pepper.get_secret_value()),
            self.bindings,
            self.tts,
            settings.binding.binding_max_attempts,
            settings.agi.agi_secret.get_secret_value(),
        )
        self.agi = FastAgiServer(
            settings.agi.agi_host,
            settings.agi.agi_port,
            {"parking": parking_flow, "reminder": reminder_flow, "binding": self.binding_flow},
            self._on_flow_result,
            max_sessions=settings.voice.max_calls * 2,
            session_timeout=settings.agi.agi_session_timeout,
            allow=agi_allow(settings),
        )
        self.agi_address = ""
        self.placed = 0  # Originates sent by this process
        self.results = 0  # flow results accepted for calls this process placed
        self.api_keys = ApiKeyStore(redis, keys)
        self.rate = SharedRate(Gcra(redis), keys.rate("calls"), settings.voice.calls_per_second)
        self.scripts = VoiceScripts(redis, keys)
        self._slot_ttl_ms = int(
            (settings.voice.ring_seconds + settings.agi.agi_session_timeout + 60) * 1000
        )
        self.calls: dict[str, Call] = {}  # ActionID -> call
        self._by_notice: dict[str, str] = {}  # notice id -> ActionID of its call in progress
        self._room_changed: Callable[[], None] = lambda: None
        self._closing = False
        self._stopped = asyncio.Event()
        self._prompts: dict[str, str] = {}
        # Bookkeeping started from AMI callbacks.
        self._tasks = OwnedTasks("voice bookkeeping")
        self.dials = DialTracker()

    # -- the Channel protocol -----------------------------------------------------------------
    def attach(self, wake: Callable[[], None]) -> None:
        self._room_changed = wake

    def room(self, lane: Lane) -> int:
        if self._closing or not self.ami.up:
            return 0
        return self.voice.max_calls - len(self.calls)

    async def start(self) -> None:
        self.agi_address = advertised_agi(self.settings.agi, self.agi.bind())
        self._prompts = {
            "NOTICE_MENU": str(await self.tts.render(MENU_TEXT)),
            "NOTICE_THANKS": str(await self.tts.render(THANKS_TEXT)),
            "NOTICE_REPEAT": str(await self.tts.render(REPEAT_TEXT)),
        }
        await self.binding_flow.prepare()
        try:
            async with asyncio.TaskGroup() as tg:
                ami = tg.create_task(self.ami.run(), name="ami")
                agi = tg.create_task(self.agi.serve(), name="agi")
                await self._stopped.wait()
                ami.cancel()
                agi.cancel()
        finally:
            await self.agi.shutdown(2)
            await self._tasks.wait(5)

    async def stop(self) -> None:
        self._closing = True
        self.ami.close()
        self._stopped.set()

    async def housekeeping(self) -> None:
        await self.scripts.move_due_retries(now_ms=int(time.time() * 1000))
        # A call that never reported back (Asterisk lost it) is a failed attempt once its
        # slot would have expired: longer than any ring and FastAGI session.
        limit = time.monotonic() - self._slot_ttl_ms / 1000
        for action_id, call in list(self.calls.items()):
            if call.started < limit:
                await self._attempt_ended(action_id, NoticeStatus.FAILED, {"reason": "no_report"})

    # -- one call -----------------------------------------------------------------------------
    async def submit(self, delivery: Delivery) -> None:
        await self._start(delivery)

    async def _start(self, delivery: Delivery) -> None:
        notice_id = delivery.notice_id
        if notice_id in self._by_notice:
            delivery.settle()
            return
        # GATEWAY_MAX_CALLS holds for all workers: a slot first, then the move to dialing.
        slot = f"{notice_id}:{secrets.token_hex(6)}"
        while True:
            await self.rate.acquire()
            start = await self.scripts.begin_call(
                notice_id=notice_id,
                slot=slot,
                at=now_iso(),
                ttl_ms=self._slot_ttl_ms,
                max_calls=self.voice.max_calls,
                max_attempts=self.voice.voice_attempts,
            )
            if start.state != "full":
                break
            if self._closing:
                return
            await asyncio.sleep(0.1)
        if start.state == "skip":
            delivery.settle()
            return
        attempt, number = start.attempt, start.to
        action_id = f"{notice_id}:{attempt}"
        print_progress(number, notice_id, NoticeStatus.DIALING, {"attempt": attempt})
        # Speech is rendered while the phone rings (started after the Originate: spawning
        # espeak-ng costs the loop a few ms); the flow waits for the file if needed.
        prompt = self.tts.path_for(start.text)
        token = secrets.token_urlsafe(18)
        self.calls[action_id] = Call(delivery, attempt, time.monotonic(), token, slot)
        self._by_notice[notice_id] = action_id
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
                    "NOTICE_FLOW": "parking" if start.kind == "parking_notice" else "reminder",
                    "NOTICE_PROMPT": str(prompt),
                    "NOTICE_AGI": self.agi_address,
                    "AGI_TOKEN": token,
                    **self._prompts,
                },
            )
            self.placed += 1
            self._tasks.spawn(self.tts.render(start.text))
        except AmiError as exc:
            await self._attempt_ended(action_id, NoticeStatus.FAILED, {"reason": str(exc)})

    def _on_ami_event(self, name: str, keys: dict[str, str]) -> None:
        if self.dials.on_event(name, keys) or name != "OriginateResponse":
            return
        action_id = keys.get("ActionID", "")
        call = self.calls.get(action_id)
        if call is None:
            return
        reason = int(keys.get("Reason", "0") or 0)
        if originate_outcome(reason) is NoticeStatus.ANSWERED:
            call.answered = True
            self._tasks.spawn(self.store.transition(call.notice_id, NoticeStatus.ANSWERED, {}))
        else:
            self._tasks.spawn(self._unanswered(action_id, reason, keys.get("Channel", "")))

    async def _unanswered(self, action_id: str, reason: int, channel: str) -> None:
        outcome, dial_status = await self.dials.unanswered(reason, channel)
        await self._attempt_ended(
            action_id, outcome, {"reason": reason, "dial_status": dial_status}
        )

    def _on_ami_state(self, up: bool) -> None:
        if up:
            self._room_changed()
            return
        for action_id, call in list(self.calls.items()):
            if not call.answered:
                lost = {"reason": "ami_link_lost"}
                self._tasks.spawn(self._attempt_ended(action_id, NoticeStatus.FAILED, lost))

    async def _on_flow_result(self, result: FlowResult) -> None:
        if result.request.flow == "binding":
            log.info("binding call ended: %s", result.outcome.get("outcome"))
            return
        if not result.request.flow:
            # Not a FastAGI header at all, or a peer not allowed: on the IVR's audit trail,
            # since that is whose line answers on this port.
            await self.bindings.audit("ivr_session_refused", "", channel="ivr", **result.outcome)
            return
        notice_id = str(result.outcome.get("notice_id", ""))
        outcome = str(result.outcome.get("outcome", ""))
        error = result.outcome.get("error")
        if not notice_id or (
            not error and outcome not in ("acknowledged", "disputed", "no_input", "listened")
        ):
            log.warning("FastAGI flow ended without an outcome: %s", error)
            return
        action_id = self._by_notice.get(notice_id, "")
        call = self.calls.get(action_id)
        token = str(result.outcome.get("token", ""))
        if call is None or not call.token or not hmac.compare_digest(call.token, token):
            # No call of ours in progress for it, or not the token its Originate carried:
            # a forged or replayed session. The notice stays as it is.
            reason = "no_call_in_progress" if call is None else "bad_token"
            log.warning("FastAGI result for %s refused: %s", notice_id, reason)
            await self.bindings.audit(
                "agi_result_refused", "", channel="ivr", notice_id=notice_id, reason=reason
            )
            return
        call.token = ""  # single use
        if error:  # broken off (Asterisk went away, or answered an error): a failed attempt
            log.warning("FastAGI flow for %s broke off: %s", notice_id, error)
            await self._attempt_ended(action_id, NoticeStatus.FAILED, {"reason": "flow_broke_off"})
            return
        self.results += 1
        detail = dict(result.outcome.get("detail", {}))
        await self.store.transition(notice_id, NoticeStatus(outcome), detail)
        if outcome == "disputed":
            await self._record_suspected_clone(notice_id)
        if self._forget(action_id) is not None:
            await self.scripts.release_call(call.slot)
            call.delivery.settle()

    def _forget(self, action_id: str) -> Call | None:
        call = self.calls.pop(action_id, None)
        if call is not None:
            self._by_notice.pop(call.notice_id, None)
            self._room_changed()
        return call

    async def _attempt_ended(
        self, action_id: str, outcome: NoticeStatus, detail: dict[str, Any]
    ) -> None:
        call = self._forget(action_id)
        if call is None:
            return
        await self.scripts.release_call(call.slot)
        retry = outcome in ATTEMPT_STATUSES and call.attempt < self.voice.voice_attempts
        if retry:
            detail = {**detail, "retry_in_seconds": self.voice.voice_retry_seconds}
            due = int((time.time() + self.voice.voice_retry_seconds) * 1000)
            await self.store.outcome(call.notice_id, outcome, detail, retry_at_ms=due)
        elif (notice := await self.store.get(call.notice_id)) is None:
            pass
        elif notice.kind == "reminder":
            # A reminder is not worth an SMS of its own: the job counts it unreachable.
            await self.store.outcome(call.notice_id, outcome, detail)
            await self.store.transition(call.notice_id, NoticeStatus.UNREACHABLE, {"last": outcome})
        else:
            # Made in the voice notice's lane, by the same script call.
            lane = self.keys.notice_lane(call.notice_id)
            sms = notice.fallback_to("sms", id=new_notice_id(self.keys, lane), at=now_iso())
            fallback = Fallback.of(sms, self.keys.sms_queue(lane))
            res = await self.store.outcome(call.notice_id, outcome, detail, fallback=fallback)
            log.info(
                "voice notice %s ended %s; SMS fallback %s",
                call.notice_id,
                outcome,
                res.fallback_id,
            )
        call.delivery.settle()

    async def _record_suspected_clone(self, notice_id: str) -> None:
        # Pushed to every command-centre key with an events URL, through the signed outbox.
        recipients = await self.api_keys.event_recipients()
        await self.scripts.record_suspected_clone(
            notice_id=notice_id, at=now_iso(), recipients=recipients
        )
