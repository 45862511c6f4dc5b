"""Notice status values (part of the API) and the one table of wire error codes.

``NoticeStatus`` is the one list of a notice's statuses, with each one's rank and whether it
ends the notice; the Lua scripts' tables are rendered from it. Every wire-level outcome (SMPP
command_status, AGI results, AMI errors and hangup causes) is mapped here, in one place, to
what the gateway does about it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

SKIPPED_STATUSES: Final = ("opted_out", "capped", "duplicate")
JOB_STATUSES: Final = ("receiving", "running", "waiting_window", "finished", "cancelled", "aborted")


class Finality(StrEnum):
    OPEN = "open"  # more is to come
    ATTEMPT = "attempt"  # ends one attempt; a channel that retries moves on from it
    HARD = "hard"  # ends the notice: nothing changes it afterwards


class NoticeStatus(StrEnum):
    """A notice's status. Ranks keep a notice from moving backwards when events arrive out
    of order; rank 3 is an outcome, rank 4 what the officer found afterwards."""

    QUEUED = "queued"
    SUBMITTED = "submitted"
    DIALING = "dialing"
    ANSWERED = "answered"
    DELIVERED = "delivered"
    UNDELIVERABLE = "undeliverable"
    EXPIRED = "expired"
    REJECTED = "rejected"
    FAILED = "failed"
    ACKNOWLEDGED = "acknowledged"
    DISPUTED = "disputed"
    NO_INPUT = "no_input"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    SENT = "sent"
    CANCELLED = "cancelled"
    LISTENED = "listened"
    UNREACHABLE = "unreachable"
    # The officer found the car gone after the notice: the parking notice's last word, after
    # the call's own outcome (kept in the history before it).
    MOVED = "moved"

    @property
    def rank(self) -> int:
        return _TABLE[self][0]

    @property
    def finality(self) -> Finality:
        return _TABLE[self][1]

    @property
    def is_hard(self) -> bool:
        return self.finality is Finality.HARD


# Every status a notice can have (GET /v1/notices/{id}, webhooks), in the order they come;
# a job's counts may also say a recipient was skipped: SKIPPED_STATUSES.
NOTICE_STATUSES: Final = tuple(s.value for s in NoticeStatus)

_S = NoticeStatus
_TABLE: Final[dict[NoticeStatus, tuple[int, Finality]]] = {
    _S.QUEUED: (0, Finality.OPEN),
    _S.SUBMITTED: (1, Finality.OPEN),
    _S.DIALING: (1, Finality.OPEN),
    _S.ANSWERED: (2, Finality.OPEN),
    _S.DELIVERED: (3, Finality.HARD),
    _S.UNDELIVERABLE: (3, Finality.HARD),
    _S.EXPIRED: (3, Finality.HARD),
    _S.REJECTED: (3, Finality.HARD),
    _S.FAILED: (3, Finality.ATTEMPT),
    _S.ACKNOWLEDGED: (3, Finality.HARD),
    _S.DISPUTED: (3, Finality.HARD),
    _S.NO_INPUT: (3, Finality.HARD),
    _S.BUSY: (3, Finality.ATTEMPT),
    _S.NO_ANSWER: (3, Finality.ATTEMPT),
    _S.SENT: (3, Finality.HARD),
    _S.CANCELLED: (3, Finality.HARD),
    _S.LISTENED: (3, Finality.HARD),
    _S.UNREACHABLE: (3, Finality.HARD),
    _S.MOVED: (4, Finality.HARD),
}

HARD_STATUSES: Final = frozenset(s for s in NoticeStatus if s.finality is Finality.HARD)
ATTEMPT_STATUSES: Final = frozenset(s for s in NoticeStatus if s.finality is Finality.ATTEMPT)
# A job's row is done once its notice has an outcome. SMS and email make one attempt, so
# an attempt's end is the notice's; a voice notice ends only with a hard status.
JOB_FINAL_STATUSES: Final = HARD_STATUSES | ATTEMPT_STATUSES
VOICE_JOB_FINAL_STATUSES: Final = HARD_STATUSES


class SmppAction(StrEnum):
    OK = "ok"
    RETRY = "retry"  # back off, then submit again
    REBIND = "rebind"  # the session is unusable; submit again after reconnecting
    FINAL = "final"  # the SMSC refused this message for good


# SMPP 3.4 command_status values (section 5.1.3) and what each means for a submit_sm.
SMPP_STATUS: Final[dict[int, tuple[str, SmppAction]]] = {
    0x00000000: ("ESME_ROK", SmppAction.OK),
    0x00000001: ("ESME_RINVMSGLEN", SmppAction.FINAL),
    0x00000002: ("ESME_RINVCMDLEN", SmppAction.FINAL),
    0x00000003: ("ESME_RINVCMDID", SmppAction.FINAL),
    0x00000004: ("ESME_RINVBNDSTS", SmppAction.REBIND),
    0x00000005: ("ESME_RALYBND", SmppAction.REBIND),
    0x00000008: ("ESME_RSYSERR", SmppAction.RETRY),
    0x0000000A: ("ESME_RINVSRCADR", SmppAction.FINAL),
    0x0000000B: ("ESME_RINVDSTADR", SmppAction.FINAL),
    0x0000000C: ("ESME_RINVMSGID", SmppAction.FINAL),
    0x0000000D: ("ESME_RBINDFAIL", SmppAction.REBIND),
    0x00000014: ("ESME_RMSGQFUL", SmppAction.RETRY),
    0x00000033: ("ESME_RINVNUMDESTS", SmppAction.FINAL),
    0x00000045: ("ESME_RSUBMITFAIL", SmppAction.FINAL),
    0x00000048: ("ESME_RINVSRCTON", SmppAction.FINAL),
    0x00000049: ("ESME_RINVSRCNPI", SmppAction.FINAL),
    0x00000050: ("ESME_RINVDSTTON", SmppAction.FINAL),
    0x00000051: ("ESME_RINVDSTNPI", SmppAction.FINAL),
    0x00000058: ("ESME_RTHROTTLED", SmppAction.RETRY),
    0x00000061: ("ESME_RINVSCHED", SmppAction.FINAL),
    0x00000062: ("ESME_RINVEXPIRY", SmppAction.FINAL),
    0x00000064: ("ESME_RX_T_APPN", SmppAction.RETRY),
    0x00000065: ("ESME_RX_P_APPN", SmppAction.FINAL),
    0x00000066: ("ESME_RX_R_APPN", SmppAction.FINAL),
    0x000000FF: ("ESME_RUNKNOWNERR", SmppAction.FINAL),
}


def smpp_outcome(command_status: int) -> tuple[str, SmppAction]:
    """Name and action for a submit_sm_resp command_status; unknown codes are final."""
    return SMPP_STATUS.get(command_status, (f"0x{command_status:08X}", SmppAction.FINAL))


# AMI OriginateResponse "Reason" (Asterisk's AST_CONTROL_* of the outcome) -> call status.
ORIGINATE_REASON: Final[dict[int, NoticeStatus]] = {
    0: _S.FAILED,  # no such channel / could not dial
    1: _S.NO_ANSWER,  # hung up before answer
    3: _S.NO_ANSWER,  # rang until the originate timeout
    4: _S.ANSWERED,
    5: _S.BUSY,
    8: _S.FAILED,  # congestion
}


def originate_outcome(reason: int) -> NoticeStatus:
    """Status for an OriginateResponse Reason (PJSIP reports most failures as 0; the dial's
    DIALSTATUS, below, says why)."""
    return ORIGINATE_REASON.get(reason, _S.FAILED)


# Dial()'s DIALSTATUS, reported by AMI DialEnd; it says why an originate was not answered.
DIAL_STATUS: Final[dict[str, NoticeStatus]] = {
    "BUSY": _S.BUSY,
    "NOANSWER": _S.NO_ANSWER,
    "CANCEL": _S.NO_ANSWER,
    "CONGESTION": _S.FAILED,
    "CHANUNAVAIL": _S.FAILED,
}
