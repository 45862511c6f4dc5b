"""The binding line: a caller transferred by the agent seat confirms a binding request.

Reached from ``[from-carrier]`` in the dialplan, with the request's reference as the dialled
extension or keyed when asked. The caller hears the plate and the last four digits of the
phone, then: 1 to key the SMS code (and confirm with 1, or cancel with 2), 2 to cancel, 3 to
remove the plate's current binding (only when calling from the bound phone). Each step and
each way a call can end is written to the binding audit trail; a hang-up or garbage on the
socket leaves the request as it was.

Runs in a FastAGI worker thread; Redis and speech rendering run on the event loop through
``LoopBridge``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from asterisk.agi import AGIException

from gateway.core.binding_codes import is_code, is_ref, readback_text
from gateway.core.phones import InvalidPhone, parse_cn_mobile
from gateway.ivr_flows.agi_env import AgiRequest
from gateway.ivr_flows.agi_server import FastAgi, SessionEnded
from gateway.store.binding_requests import Actor, BindingRequestStore, Verified
from gateway.store.bindings import BindingStore
from gateway.voice.tts import Tts

log = logging.getLogger(__name__)
T = TypeVar("T")

PROMPTS = {
    "enter_ref": "请输入八位业务编号。",
    "unknown_ref": "没有找到这个业务编号，请重新输入。",
    "bad_ref": "业务编号是八位数字，请重新输入。",
    "closed": "这个绑定请求已经结束，如需绑定请联系客服重新办理。",
    "expired": "这个绑定请求已经过期，请联系客服重新办理。",
    "enter_code": "请输入短信收到的六位验证码。",
    "bad_code": "验证码是六位数字，请重新输入。",
    "wrong_code": "验证码不正确，请重新输入。",
    "failed": "验证码错误次数过多，本次绑定请求已失效。",
    "confirm": "验证码正确。确认绑定请按1，取消请按2。",
    "bound": "绑定成功，今后该车牌的交警提醒将发送到这部手机。再见。",
    "cancelled": "本次绑定已取消。再见。",
    "removed": "该车牌原有的绑定已经解除。",
    "removal_refused": "只有从原绑定的手机拨打，才能解除该车牌的绑定。",
    "goodbye": "没有收到您的按键，再见。",
}
MENU_ROUNDS = 3
INPUT_TRIES = 3
CODE_TIMEOUT_MS = 10_000
DIGIT_WAIT_MS = 6_000


class LoopBridge:
    """Run a coroutine on the gateway's event loop from a flow thread and wait for it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float = 15.0) -> None:
        self.loop = loop
        self.timeout = timeout

    def __call__(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(self.timeout)


def caller_phone(callerid: str) -> str:
    """The caller id as a national mobile number, or '' when it is not one."""
    try:
        return parse_cn_mobile(callerid).national
    except InvalidPhone:
        return ""


class _Ended(Exception):
    """The flow reached an outcome; carries it out of nested menus."""

    def __init__(self, outcome: str, **detail: Any) -> None:
        super().__init__(outcome)
        self.outcome = outcome
        self.detail = detail


class BindingFlow:
    def __init__(
        self,
        requests: BindingRequestStore,
        bindings: BindingStore,
        tts: Tts,
        max_attempts: int,
        token: str,
    ) -> None:
        self.token = token  # what the dialplan's [from-carrier] hands every binding call
        self.requests = requests
        self.bindings = bindings
        self.tts = tts
        self.max_attempts = max_attempts
        self.prompts: dict[str, str] = {}
        self._bridge: LoopBridge | None = None

    async def prepare(self) -> None:
        """Render the fixed prompts and remember the loop; call from the gateway's loop."""
        self._bridge = LoopBridge(asyncio.get_running_loop())
        for name, text in PROMPTS.items():
            self.prompts[name] = str(await self.tts.render(text))

    # -- helpers run in the flow thread ---------------------------------------------------------
    @property
    def bridge(self) -> LoopBridge:
        assert self._bridge is not None, "BindingFlow.prepare() was not awaited"
        return self._bridge

    def _audit(self, event: str, plate: str, actor: Actor, **detail: Any) -> None:
        fields = {k: v for k, v in (("caller_id", actor.caller_id),) if v}
        self.bridge(self.bindings.audit(event, plate, channel="ivr", **fields, **detail))

    def __call__(self, agi: FastAgi, request: AgiRequest) -> dict[str, Any]:
        raw_caller = request.env.get("agi_callerid", "")
        phone = caller_phone(raw_caller)
        actor = Actor("ivr", caller_id=phone or raw_caller[:32])
        ctx: dict[str, str] = {"ref": "", "plate": "", "step": "reference"}
        try:
            given = str(agi.get_variable("AGI_TOKEN") or "")
            if not self.token or not hmac.compare_digest(given.encode(), self.token.encode()):
                # Not a call Asterisk took from the carrier trunk: a forged session.
                self._audit("ivr_session_refused", "", actor, reason="invalid_token")
                return {"flow": "binding", "outcome": "refused", "reason": "invalid_token"}
            self._run(agi, request, actor, ctx)
        except _Ended as end:
            return {"flow": "binding", "outcome": end.outcome, "ref": ctx["ref"], **end.detail}
        except (SessionEnded, AGIException) as exc:
            # Hung up, went silent, or sent garbage: the request stays as it was.
            reason = "hangup" if isinstance(exc, SessionEnded) else "agi_error"
            self._audit(
                "ivr_abandoned",
                ctx["plate"],
                actor,
                ref=ctx["ref"],
                step=ctx["step"],
                reason=reason,
                error=type(exc).__name__,
            )
            return {"flow": "binding", "outcome": "abandoned", "ref": ctx["ref"], "reason": reason}
        return {"flow": "binding", "outcome": "ended", "ref": ctx["ref"]}

    def _play(self, agi: FastAgi, name: str, escape: str = "") -> str:
        return str(agi.stream_file(self.prompts[name], escape_digits=escape) or "")

    def _run(self, agi: FastAgi, request: AgiRequest, actor: Actor, ctx: dict[str, str]) -> None:
        record = self._find_request(agi, request, actor, ctx)
        ctx["plate"], ctx["ref"] = record["plate"], record["ref"]
        if record["status"] != "pending":
            self._audit(
                "ivr_refused", record["plate"], actor, ref=record["ref"], reason=record["status"]
            )
            self._play(agi, "expired" if record["status"] == "expired" else "closed")
            raise _Ended("refused", status=record["status"])
        ctx["step"] = "menu"
        self._menu(agi, record, actor, ctx)

    def _find_request(
        self, agi: FastAgi, request: AgiRequest, actor: Actor, ctx: dict[str, str]
    ) -> dict[str, str]:
        """The dialled extension if it is a reference, else what the caller keys."""
        candidate = request.env.get("agi_extension", "")
        if not is_ref(candidate):
            candidate = ""
        prompt = "enter_ref"
        for _ in range(INPUT_TRIES):
            if not candidate:
                # GET DATA takes keys while its prompt plays: a caller may key ahead.
                candidate = str(agi.get_data(self.prompts[prompt], CODE_TIMEOUT_MS, 8) or "")
            if not is_ref(candidate):
                self._audit("ivr_bad_input", "", actor, step="reference", input=candidate[:16])
                prompt = "bad_ref"
            else:
                record = self.bridge(self.requests.get(candidate))
                if record is not None:
                    return record
                self._audit("ivr_refused", "", actor, ref=candidate, reason="unknown_reference")
                prompt = "unknown_ref"
            candidate = ""
        self._play(agi, "goodbye")
        raise _Ended("no_reference")

    def _menu(
        self, agi: FastAgi, record: dict[str, str], actor: Actor, ctx: dict[str, str]
    ) -> None:
        plate, ref = record["plate"], record["ref"]
        bound = self.bridge(self.bindings.get(plate)) is not None
        # Both variants now: after a removal the menu goes on without a rendering pause, in
        # which keys would be lost.
        readbacks = {
            b: str(self.bridge(self.tts.render(readback_text(plate, record["phone"], b))))
            for b in ({True, False} if bound else {False})
        }
        digit, rounds = "", 0
        while digit or rounds < MENU_ROUNDS:
            if not digit:
                rounds += 1
                digit = str(agi.stream_file(readbacks[bound], escape_digits="123") or "")
                digit = digit or str(agi.wait_for_digit(DIGIT_WAIT_MS) or "")
            choice, digit = digit, ""
            if choice == "1":
                ctx["step"] = "code"
                self._code(agi, ref, actor, ctx)
            elif choice == "2":
                self._cancel(agi, ref, actor)
            elif choice == "3":
                ctx["step"] = "removal"
                outcome = self.bridge(
                    self.requests.remove_binding(plate, actor.caller_id, actor, ref)
                )
                bound = bound and outcome != "removed"
                # The caller may key the next choice while hearing how it went.
                digit = self._play(
                    agi, "removed" if outcome == "removed" else "removal_refused", "12"
                )
                ctx["step"] = "menu"
        self._audit("ivr_no_input", plate, actor, ref=ref, step="menu")
        self._play(agi, "goodbye")
        raise _Ended("no_input")

    def _verify(
        self, ref: str, code: str, actor: Actor, *, confirm: bool
    ) -> Coroutine[Any, Any, Verified]:
        return self.requests.verify(
            ref, code, actor, confirm=confirm, max_attempts=self.max_attempts
        )

    def _cancel(self, agi: FastAgi, ref: str, actor: Actor) -> None:
        self.bridge(self.requests.close(ref, "cancelled", actor, "caller_cancelled"))
        self._play(agi, "cancelled")
        raise _Ended("cancelled")

    def _code(self, agi: FastAgi, ref: str, actor: Actor, ctx: dict[str, str]) -> None:
        prompt, bad = "enter_code", 0
        while True:
            code = str(agi.get_data(self.prompts[prompt], CODE_TIMEOUT_MS, 6) or "")
            if not is_code(code):
                # Not an attempt: a half-typed code or a stray key costs the caller nothing.
                bad += 1
                self._audit("ivr_bad_input", ctx["plate"], actor, ref=ref, step="code")
                if bad >= INPUT_TRIES:
                    self._play(agi, "goodbye")
                    raise _Ended("no_input")
                prompt = "bad_code"
                continue
            v = self.bridge(self._verify(ref, code, actor, confirm=False))
            if v.outcome == "ok":
                break
            if v.outcome == "wrong":
                prompt = "wrong_code"
                continue
            self._play(agi, {"failed": "failed", "expired": "expired"}.get(v.outcome, "closed"))
            raise _Ended(v.outcome)
        ctx["step"] = "confirm"
        for _ in range(2):
            digit = self._play(agi, "confirm", "12") or str(agi.wait_for_digit(DIGIT_WAIT_MS) or "")
            if digit == "2":
                self._cancel(agi, ref, actor)
            if digit == "1":
                v = self.bridge(self._verify(ref, code, actor, confirm=True))
                if v.outcome == "confirmed":
                    self._play(agi, "bound")
                    raise _Ended("confirmed", replaced=v.replaced)
                self._play(agi, "expired" if v.outcome == "expired" else "closed")
                raise _Ended(v.outcome)
        self._audit("ivr_no_input", ctx["plate"], actor, ref=ref, step="confirm")
        self._play(agi, "goodbye")
        raise _Ended("no_input")
