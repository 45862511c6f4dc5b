"""Notice status values (part of the API) and the one table of wire error codes.

Every wire-level outcome (SMPP command_status, later AGI results, AMI errors and hangup
causes) is mapped here, in one place, to what the gateway does about it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

# Every status a notice can have (GET /v1/notices/{id}, webhooks), in the order they come;
# a job's counts may also say a recipient was skipped: opted_out, capped, duplicate.
NOTICE_STATUSES: Final = (
    "queued",
    "submitted",
    "dialing",
    "answered",
    "delivered",
    "undeliverable",
    "expired",
    "rejected",
    "failed",
    "sent",
    "acknowledged",
    "disputed",
    "no_input",
    "listened",
    "busy",
    "no_answer",
    "unreachable",
    "cancelled",
)
SKIPPED_STATUSES: Final = ("opted_out", "capped", "duplicate")
JOB_STATUSES: Final = ("receiving", "running", "waiting_window", "finished", "cancelled", "aborted")


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
ORIGINATE_REASON: Final[dict[int, str]] = {
    0: "failed",  # no such channel / could not dial
    1: "no_answer",  # hung up before answer
    3: "no_answer",  # rang until the originate timeout
    4: "answered",
    5: "busy",
    8: "failed",  # congestion
}


def originate_outcome(reason: int) -> str:
    """Status for an OriginateResponse Reason (PJSIP reports most failures as 0; the dial's
    DIALSTATUS, below, says why)."""
    return ORIGINATE_REASON.get(reason, "failed")


# Dial()'s DIALSTATUS, reported by AMI DialEnd; it says why an originate was not answered.
DIAL_STATUS: Final[dict[str, str]] = {
    "BUSY": "busy",
    "NOANSWER": "no_answer",
    "CANCEL": "no_answer",
    "CONGESTION": "failed",
    "CHANUNAVAIL": "failed",
}
