"""What the SMSC simulator is scripted to do, and what it records of each message."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Script:
    """Scripted behaviour; numbers are matched on their last 11 digits."""

    receipt_delay: float = 0.2
    undeliverable: set[str] = field(default_factory=set)
    reject: set[str] = field(default_factory=set)
    expire: set[str] = field(default_factory=set)
    throttle_first: int = 0  # answer the first N submits with ESME_RTHROTTLED
    throttle_every: int = 0  # and then every Nth submit
    send_receipts: bool = True
    # deliver_sm (receipts, MO) awaiting the ESME's response at once, like an SMSC's window.
    receipt_window: int = 512
    # A receipt the ESME refused for now or left unanswered (30 s) is sent again this much
    # later on the bind it came from, or on a later bind of its system_id, as an SMSC
    # retries it; one refused for good (ESME_RX_P_APPN) is not.
    receipt_retry: float = 5.0


@dataclass(frozen=True)
class ReceivedMessage:
    source: str
    destination: str
    text: str
    parts: int
    message_ids: tuple[str, ...]
