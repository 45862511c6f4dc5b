"""A private Asterisk for the tests, rendered from dialplan/ with ephemeral ports."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from gateway.settings import Settings
from gateway.voice.asterisk_config import render


def settings_from(env: dict[str, str]) -> Settings:
    """Settings read with ``env`` laid over the process environment, which is restored."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return Settings()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class AsteriskProcess:
    env: dict[str, str]
    dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="gw-asterisk-")))
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def create(cls) -> AsteriskProcess:
        env = {
            "GATEWAY_AMI_PORT": str(free_port()),
            "GATEWAY_AGI_PORT": str(free_port()),
            "GATEWAY_SIP_BIND_PORT": str(free_port(socket.SOCK_DGRAM)),
            "GATEWAY_SIP_TRUNK_PORT": str(free_port(socket.SOCK_DGRAM)),
            "GATEWAY_SIP_DTMF_MODE": "info",
        }
        return cls(env)

    def settings(self) -> Settings:
        return settings_from(self.env)

    @property
    def ami_port(self) -> int:
        return int(self.env["GATEWAY_AMI_PORT"])

    def start(self) -> None:
        exe = shutil.which("asterisk")
        assert exe, "asterisk is missing: run scripts/test.sh, which installs it"
        conf = render(self.settings(), self.dir)
        with (self.dir / "console.log").open("ab") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen(
                [exe, "-C", str(conf), "-f", "-n"],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.ami_port), timeout=0.2):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("asterisk exited at start") from None
                time.sleep(0.1)
        raise TimeoutError("asterisk did not open AMI")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
