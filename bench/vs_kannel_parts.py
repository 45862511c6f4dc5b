"""The side-by-side benchmark's parts: Debian's kannel package, a private configuration, the
sendsms URL, the receipt counter both sides report to, and the report.

Everything here but :func:`ensure_kannel` is pure, so it is tested without Kannel installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

BEARERBOX = "/usr/sbin/bearerbox"
SMSBOX = "/usr/sbin/smsbox"

# Kannel's dlr-url %d: 1 delivered to the phone, 2 not delivered (dlr-mask=3 asks for both).
KANNEL_FINAL = {1: "delivered", 2: "undeliverable"}
# The gateway's final statuses (a webhook with any other status is not a receipt).
GATEWAY_FINAL = frozenset({"delivered", "undeliverable", "expired", "rejected", "failed"})


def ensure_kannel() -> str:
    """Debian's kannel package, installed if missing, with its system service left stopped
    and disabled: the benchmark runs its own bearerbox and smsbox. Returns the version."""
    if not (os.access(BEARERBOX, os.X_OK) and os.access(SMSBOX, os.X_OK)):
        if os.geteuid() != 0:
            raise SystemExit("kannel is not installed: run this once as root to install it")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        print("installing Debian's kannel package ...", flush=True)
        install = ["apt-get", "install", "-y", "-qq", "kannel"]
        if subprocess.run(install, check=False, env=env).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)  # stale lists
            subprocess.run(install, check=True, env=env)
        _service_off()
    out = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "kannel"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "?"


def _service_off() -> None:
    """Stop the packaged service if the install started it, and keep it from starting."""
    if shutil.which("systemctl") and os.path.isdir("/run/systemd/system"):
        subprocess.run(["systemctl", "disable", "--now", "kannel"], check=False)
        return
    if os.path.exists("/etc/init.d/kannel"):
        subprocess.run(["/etc/init.d/kannel", "stop"], check=False, capture_output=True)
    if shutil.which("update-rc.d"):
        subprocess.run(["update-rc.d", "kannel", "disable"], check=False, capture_output=True)


@dataclass(frozen=True)
class KannelPorts:
    admin: int
    smsbox: int
    sendsms: int
    smsc: int


@dataclass(frozen=True)
class KannelAccount:
    """The sendsms user and the SMPP bind Kannel uses."""

    user: str = "bench"
    password: str = "bench"
    system_id: str = "kannel"
    smpp_password: str = "kannel"
    sender: str = "12122"


def render_config(ports: KannelPorts, window: int, account: KannelAccount = KannelAccount()) -> str:
    """One kannel.conf for bearerbox and smsbox: loopback only, DLRs kept in memory (no
    message store, as the gateway's Redis in the benchmark keeps no append-only file), one
    SMPP transceiver bind with ``window`` submits unanswered at once."""
    return f"""\
group = core
admin-port = {ports.admin}
admin-interface = 127.0.0.1
admin-password = {account.password}
admin-deny-ip = "*.*.*.*"
admin-allow-ip = "127.0.0.1"
smsbox-port = {ports.smsbox}
smsbox-interface = 127.0.0.1
box-deny-ip = "*.*.*.*"
box-allow-ip = "127.0.0.1"
dlr-storage = internal

group = smsc
smsc = smpp
smsc-id = sim
host = 127.0.0.1
port = {ports.smsc}
transceiver-mode = true
smsc-username = {account.system_id}
smsc-password = {account.smpp_password}
system-type = "VMA"
interface-version = 34
max-pending-submits = {window}
enquire-link-interval = 30

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {ports.smsbox}
sendsms-port = {ports.sendsms}
sendsms-interface = 127.0.0.1
global-sender = {account.sender}

group = sendsms-user
username = {account.user}
password = {account.password}
max-messages = 1
"""


def sendsms_url(
    port: int, account: KannelAccount, to: str, text: str, dlr_url: str, dlr_mask: int = 3
) -> str:
    """The sendsms request for one UCS-2 message whose receipts go to ``dlr_url`` (which
    carries Kannel's ``%d`` status placeholder; it is url-encoded here, as Kannel wants)."""
    query = urlencode(
        {
            "username": account.user,
            "password": account.password,
            "from": account.sender,
            "to": to,
            "text": text,
            "coding": "2",
            "charset": "UTF-8",
            "dlr-mask": str(dlr_mask),
            "dlr-url": dlr_url,
        }
    )
    return f"http://127.0.0.1:{port}/cgi-bin/sendsms?{query}"


def destination(i: int) -> str:
    return f"139{i:08d}"


def undeliverable(n: int, every: int) -> list[str]:
    """The destinations the simulator makes undeliverable: every ``every``-th of ``n``."""
    return [destination(i) for i in range(n) if every and i % every == every - 1]


@dataclass
class Leg:
    """One side's receipts in one round, keyed by the message's id on that side."""

    name: str
    side: str
    expected: set[str] = field(default_factory=set)  # ids whose submit was accepted
    finals: dict[str, float] = field(default_factory=dict)  # id -> first final receipt
    statuses: dict[str, int] = field(default_factory=dict)  # final status -> count
    duplicates: int = 0  # a second final receipt for one id
    other: int = 0  # callbacks that are not final receipts (the gateway's "submitted")

    def final(self, key: str, status: str, at: float | None = None) -> None:
        if key in self.finals:
            self.duplicates += 1
            return
        self.finals[key] = time.perf_counter() if at is None else at
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def missing(self) -> set[str]:
        """Accepted messages without a final receipt."""
        return self.expected - self.finals.keys()

    def lost(self) -> int:
        return len(self.missing())

    def last(self) -> float | None:
        return max(self.finals.values()) if self.finals else None


class ReceiptCounter:
    """What the receiver got, per leg: Kannel's dlr-url GETs and the gateway's webhooks."""

    def __init__(self) -> None:
        self.legs: dict[str, Leg] = {}
        self.unknown = 0  # a callback for no leg (nothing of this run asked for it)

    def leg(self, name: str, side: str) -> Leg:
        self.legs[name] = Leg(name, side)
        return self.legs[name]

    def kannel(self, leg: str, key: str, dlr_type: str) -> None:
        """A dlr-url fetch: ``type`` is Kannel's %d."""
        got = self.legs.get(leg)
        if got is None:
            self.unknown += 1
            return
        try:
            status = KANNEL_FINAL.get(int(dlr_type))
        except ValueError:
            status = None
        if status is None:
            got.other += 1
        else:
            got.final(key, status)

    def gateway(self, leg: str, body: dict[str, object]) -> None:
        """A gateway webhook: its ``id`` and ``status``."""
        got = self.legs.get(leg)
        if got is None:
            self.unknown += 1
            return
        status = str(body.get("status"))
        if status in GATEWAY_FINAL:
            got.final(str(body.get("id")), status)
        else:
            got.other += 1


@dataclass
class LegResult:
    """One side's figures in one round."""

    side: str
    round: int
    sent: int
    accepted: int
    accept_seconds: float  # first submit to the last request answered
    e2e_seconds: float  # first submit to the last final receipt
    receipts: int  # final receipts of accepted messages, within the grace period
    lost: int
    cpu: dict[str, float]  # CPU seconds per process over the leg
    duplicates: int = 0
    other_callbacks: int = 0

    @property
    def accepted_per_s(self) -> float:
        return self.accepted / self.accept_seconds if self.accept_seconds > 0 else 0.0

    @property
    def receipts_per_s(self) -> float:
        return self.receipts / self.e2e_seconds if self.e2e_seconds > 0 else 0.0


def cpu_line(cpu: dict[str, float], messages: int) -> str:
    total = sum(cpu.values())
    per = total * 1000 / messages if messages else 0.0
    parts = ", ".join(f"{name} {secs:.2f}" for name, secs in cpu.items())
    return f"{parts} (all {total:.2f} s, {per:.2f} ms/message)"


def leg_line(r: LegResult) -> str:
    return (
        f"round {r.round} {r.side:<8} accepted {r.accepted}/{r.sent} at {r.accepted_per_s:,.0f}/s,"
        f" receipts {r.receipts} at {r.receipts_per_s:,.0f}/s end to end"
        f" ({r.e2e_seconds:.2f} s), lost {r.lost}, duplicates {r.duplicates},"
        f" other callbacks {r.other_callbacks}\n"
        f"        cpu s: {cpu_line(r.cpu, r.accepted)}"
    )


def ratio(gateway: float, kannel: float) -> float:
    return gateway / kannel if kannel > 0 else float("inf")


def table(results: list[LegResult]) -> str:
    """The rounds as one markdown table: both sides' figures and the ratio per round."""
    rows = [
        "| round | side | accepted/s | receipts/s end to end | lost after grace | "
        "CPU s per process | CPU ms/message | ratio gateway/Kannel (receipts/s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rounds = sorted({r.round for r in results})
    for n in rounds:
        legs = {r.side: r for r in results if r.round == n}
        k, g = legs.get("kannel"), legs.get("gateway")
        rate = f"{ratio(g.receipts_per_s, k.receipts_per_s):.2f}" if k and g else "–"
        for r in (k, g):
            if r is None:
                continue
            cpu = ", ".join(f"{name} {secs:.2f}" for name, secs in r.cpu.items())
            per = sum(r.cpu.values()) * 1000 / r.accepted if r.accepted else 0.0
            rows.append(
                f"| {n} | {r.side} | {r.accepted_per_s:,.0f} | {r.receipts_per_s:,.0f} | "
                f"{r.lost} | {cpu} | {per:.2f} | {rate if r is g else ''} |"
            )
    return "\n".join(rows)
