"""SIPp playing the citizen's phone on the carrier side of the trunk."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SCENARIOS = Path(__file__).resolve().parent / "sipp"


class SippProcess:
    """A running SIPp: wait for it to finish its calls, or stop it."""

    proc: subprocess.Popen[bytes]

    def finish(self, within: float = 60) -> int:
        """Wait for SIPp to handle its calls; its exit code (0: all calls as scripted)."""
        try:
            return self.proc.wait(within)
        except subprocess.TimeoutExpired:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class SippPhone(SippProcess):
    def __init__(
        self,
        scenario: str,
        port: int,
        asterisk_sip: str,
        calls: int,
        workdir: Path,
        digit: str = "1",
    ) -> None:
        exe = shutil.which("sipp")
        assert exe, "sipp is missing: run scripts/test.sh, which installs sip-tester"
        self.log = workdir / f"sipp-{scenario}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    exe,
                    "-sf",
                    str(SCENARIOS / f"{scenario}.xml"),
                    "-i",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-m",
                    str(calls),
                    "-nostdin",
                    "-timeout",
                    "120",
                    # SIPp refuses variables its scenario does not use.
                    *(["-set", "digit", digit] if scenario == "answer_dtmf" else []),
                    *(["-set", "asterisk", asterisk_sip] if scenario.startswith("answer") else []),
                    "-trace_err",
                    "-error_file",
                    str(workdir / f"sipp-{scenario}-errors.log"),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=workdir,
            )
