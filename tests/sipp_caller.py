"""SIPp as a citizen calling in over the carrier trunk, keying DTMF (SIP INFO) on a script.

SIPp cannot hear the prompts, so a script is timed: every key is sent while the IVR waits for
input or plays a prompt that the key interrupts. The scenario is written per call from steps:
``Pause(ms)``, ``Keys(digits, gap_ms)``, ``ExpectHangup()`` (the IVR hangs up) or ``HangUp()``.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.sipp_phone import SippProcess
from tests.voice_stack import free_port


@dataclass(frozen=True)
class Pause:
    ms: int


@dataclass(frozen=True)
class Keys:
    digits: str
    gap_ms: int = 300


@dataclass(frozen=True)
class ExpectHangup:
    pass


@dataclass(frozen=True)
class HangUp:
    pass


Step = Pause | Keys | ExpectHangup | HangUp

_DIALOG = """From: "citizen" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>{to_tag}
Call-ID: [call_id]
CSeq: {cseq} {method}
Contact: <sip:{caller}@[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70"""


def _request(method: str, caller: str, cseq: int, body: str = "", ctype: str = "") -> str:
    head = (
        f"{method} sip:[service]@[remote_ip]:[remote_port] SIP/2.0\n"
        "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n"
        + _DIALOG.format(
            caller=caller,
            cseq=cseq,
            method=method,
            to_tag="" if method == "INVITE" else "[peer_tag_param]",
        )
    )
    if ctype:
        head += f"\nContent-Type: {ctype}"
    return f"{head}\nContent-Length: [len]\n\n{body}"


_SDP = """v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8
a=rtpmap:8 PCMA/8000
"""

_OK_TO_BYE = """SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

"""


def scenario(caller: str, steps: list[Step]) -> str:
    out = ['<?xml version="1.0" encoding="ISO-8859-1" ?>', '<scenario name="binding caller">']

    def send(msg: str, retrans: bool = False) -> None:
        attr = ' retrans="500"' if retrans else ""
        out.append(f"<send{attr}><![CDATA[\n{msg}\n]]></send>")

    send(_request("INVITE", caller, 1, _SDP, "application/sdp"), retrans=True)
    for code in (100, 180, 183):
        out.append(f'<recv response="{code}" optional="true"/>')
    out.append('<recv response="200" rtd="true"/>')
    send(_request("ACK", caller, 1))
    cseq = 2
    for step in steps:
        if isinstance(step, Pause):
            out.append(f'<pause milliseconds="{step.ms}"/>')
        elif isinstance(step, Keys):
            for i, digit in enumerate(step.digits):
                if i:
                    out.append(f'<pause milliseconds="{step.gap_ms}"/>')
                body = f"Signal={digit}\nDuration=160\n"
                send(_request("INFO", caller, cseq, body, "application/dtmf-relay"))
                out.append('<recv response="200"/>')
                cseq += 1
        elif isinstance(step, ExpectHangup):
            out.append('<recv request="BYE"/>')
            send(_OK_TO_BYE)
        else:
            send(_request("BYE", caller, cseq))
            out.append('<recv response="200"/>')
    out.append("</scenario>")
    return "\n".join(out)


class SippCaller(SippProcess):
    """One call from ``caller`` to ``dialled`` at Asterisk's SIP port, keyed per ``steps``."""

    def __init__(
        self, asterisk_sip: str, caller: str, dialled: str, steps: list[Step], workdir: Path
    ) -> None:
        exe = shutil.which("sipp")
        assert exe, "sipp is missing: run scripts/test.sh, which installs sip-tester"
        xml = workdir / f"caller-{dialled}-{free_port()}.xml"
        xml.write_text(scenario(caller, steps), encoding="ascii")
        self.log = xml.with_suffix(".log")
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    exe,
                    asterisk_sip,
                    "-sf",
                    str(xml),
                    "-s",
                    dialled,
                    "-i",
                    "127.0.0.1",
                    "-p",
                    str(free_port(kind=2)),  # SOCK_DGRAM: SIP over UDP
                    "-mp",
                    str(free_port(kind=2)),
                    "-m",
                    "1",
                    "-nostdin",
                    "-timeout",
                    "120",
                    "-trace_err",
                    "-error_file",
                    str(xml.with_suffix(".errors")),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=workdir,
            )

    def errors(self) -> str:
        err = Path(str(self.log.with_suffix(".errors")))
        return err.read_text(errors="replace")[-3000:] if err.exists() else ""
