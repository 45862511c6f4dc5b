"""Outbound call flows. Parking: play the notice, take 1 (will move it) or 2 (not my vehicle).
Reminder: play the message, offer to repeat it.

Runs in a FastAGI worker thread. The notice is played, then the menu; no digit means one more
round; a hang-up at any point is ``no_input``. Prompts are audio paths without extension.
"""

from __future__ import annotations

import os
import time
from typing import Any

from asterisk.agi import AGIException

from gateway.ivr_flows.agi_env import AgiRequest
from gateway.ivr_flows.agi_server import FastAgi, SessionEnded

OUTCOMES = {"1": "acknowledged", "2": "disputed"}
WAIT_MS = 5000


def _wait_for_audio(prompt: str, within: float = 10.0) -> None:
    """The notice's speech is rendered while the phone rings; it is usually there already."""
    deadline = time.monotonic() + within
    while prompt and not os.path.exists(prompt + ".wav") and time.monotonic() < deadline:
        time.sleep(0.02)


def _digit(agi: FastAgi, prompt: str) -> str:
    if prompt:
        d = str(agi.stream_file(prompt, escape_digits="12") or "")
        if d:
            return d
    return str(agi.wait_for_digit(WAIT_MS) or "")


def call_identity(agi: FastAgi) -> dict[str, str]:
    """The notice and the one-time token the gateway put on this call's Originate."""
    if not agi.identity:  # a dialplan that does not pass them as arguments
        agi.identity = {
            "notice_id": str(agi.get_variable("NOTICE_ID") or ""),
            "token": str(agi.get_variable("AGI_TOKEN") or ""),
        }
    return dict(agi.identity)


def parking_flow(agi: FastAgi, request: AgiRequest) -> dict[str, Any]:
    ident = call_identity(agi)
    prompt = str(agi.get_variable("NOTICE_PROMPT") or "")
    menu = str(agi.get_variable("NOTICE_MENU") or "")
    thanks = str(agi.get_variable("NOTICE_THANKS") or "")
    digit, rounds = "", 0
    _wait_for_audio(prompt)
    try:
        while rounds < 2:
            rounds += 1
            digit = _digit(agi, prompt) if prompt else ""
            if digit not in OUTCOMES:
                digit = _digit(agi, menu)
            if digit in OUTCOMES:
                break
        if digit in OUTCOMES and thanks:
            agi.stream_file(thanks)
    except (SessionEnded, AGIException) as exc:
        if digit not in OUTCOMES:
            return {
                **ident,
                "outcome": "no_input",
                "detail": {"reason": "hangup", "error": type(exc).__name__, "rounds": rounds},
            }
    outcome = OUTCOMES.get(digit, "no_input")
    return {
        **ident,
        "outcome": outcome,
        "detail": {"digit": digit, "rounds": rounds},
    }


REPEAT_TEXT_DIGIT = "1"


def reminder_flow(agi: FastAgi, request: AgiRequest) -> dict[str, Any]:
    """A reminder call: the message, then "press 1 to hear it again" (once). Having heard it
    is the outcome; a hang-up during the message counts as heard only if the speech ended."""
    ident = call_identity(agi)
    prompt = str(agi.get_variable("NOTICE_PROMPT") or "")
    again = str(agi.get_variable("NOTICE_REPEAT") or "")
    _wait_for_audio(prompt)
    plays = 0
    try:
        while plays < 2:
            agi.stream_file(prompt)
            plays += 1
            if plays == 2 or not again:
                break
            digit = str(agi.stream_file(again, escape_digits=REPEAT_TEXT_DIGIT) or "")
            digit = digit or str(agi.wait_for_digit(WAIT_MS) or "")
            if digit != REPEAT_TEXT_DIGIT:
                break
    except (SessionEnded, AGIException) as exc:
        if plays == 0:
            return {
                **ident,
                "outcome": "no_input",
                "detail": {"reason": "hung up during the message", "error": type(exc).__name__},
            }
    return {**ident, "outcome": "listened", "detail": {"plays": plays}}
