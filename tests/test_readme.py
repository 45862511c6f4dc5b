"""The README is part of the product: its commands and settings (every one in
docs/settings.md, which it links) must be the real ones, and
every example of its "Try it" section works on a live gateway."""

# ruff: noqa: F811

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from gateway.sms.mo_inbox import watch
from gateway.sms.simulator import SmscSimulator
from tests.conftest import Gateway, running_voice_gateway
from tests.sipp_phone import SippPhone
from tests.test_deploy_files import _known_env

# The mail fixture is imported for pytest to find; the live stack names it as a parameter.
from tests.test_reminder_jobs import NOW, Inbox, smtp_server, window  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
SETTINGS_DOC = (ROOT / "docs" / "settings.md").read_text()  # the README links every setting here


def test_readme_starts_with_the_run_and_test_commands() -> None:
    head = README.split("```")[1]
    assert "scripts/run-local.sh" in head
    assert "scripts/test.sh" in head
    assert "scripts/test.sh" in (ROOT / ".ci/run").read_text()


def test_every_setting_is_documented() -> None:
    missing = [name for name in sorted(_known_env()) if f"`{name}`" not in SETTINGS_DOC]
    assert not missing, f"undocumented settings: {missing}"


def test_every_documented_setting_is_still_read() -> None:
    rows = [line for line in SETTINGS_DOC.splitlines() if line.startswith("| `GATEWAY_")]
    named = {n for row in rows for n in re.findall(r"`(GATEWAY_[A-Z0-9_<>]+)`", row.split("|")[1])}
    assert len(named) > 80
    unknown = sorted(named - _known_env())
    assert not unknown, f"documented but not read: {unknown}"


# -- the "Try it" section, run against a live gateway -------------------------------------------
TRY_IT = README.split("\n## Try it\n", 1)[1].split("\n## ", 1)[0]
PHONE = "13800138000"


@dataclass
class Step:
    command: str  # a curl or gateway command line
    expect: Any = None  # the "# {...}" line after it, parsed


def try_it() -> tuple[list[str], list[Step]]:
    """The section's shell lines: set-up lines (variables, files) and the commands, in order."""
    setup: list[str] = []
    steps: list[Step] = []
    for block in re.findall(r"```sh\n(.*?)```", TRY_IT, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line.startswith("# {"):
                steps[-1].expect = json.loads(re.sub(r": …", ': "…"', line[2:]))
            elif line.startswith(("curl ", "gateway ")) or "run/mo/" in line:
                steps.append(Step(line))  # an MO written to the simulator's inbox is a step
            elif line and not line.startswith("#"):
                setup.append(line)
    return setup, steps


def matches(want: Any, got: Any) -> bool:
    """``…`` stands for any value, ``"ntc_…"`` for any text starting so; objects may have more."""
    if want == "…":
        return True
    if isinstance(want, str) and want.endswith("…"):
        return isinstance(got, str) and got.startswith(want[:-1])
    if isinstance(want, dict):
        return isinstance(got, dict) and all(
            k in got and matches(v, got[k]) for k, v in want.items()
        )
    return bool(want == got)


def test_try_it_has_the_examples_a_newcomer_needs() -> None:
    _, steps = try_it()
    text = "\n".join(s.command for s in steps)
    for needed in (
        "/v1/accident-alerts",
        "/v1/binding-requests",
        "/verify",
        "/v1/parking-notices",
        "--data-binary @roads.csv",
        '"channel":"email"',
        "gateway jobs submit",
    ):
        assert needed in text, needed
    assert all(s.expect is not None for s in steps if s.command.startswith("curl -s -X POST"))


@pytest.fixture
async def live_stack(
    redis_server: str,
    prefix: str,
    smsc: SmscSimulator,
    asterisk: Any,
    tmp_path: Path,
    smtp_server: Inbox,
) -> AsyncIterator[Gateway]:
    """The local stack as scripts/run-local.sh runs it: calls go over the SIP trunk to a SIPp
    phone that answers and presses 1, mail to an SMTP server."""
    phone = SippPhone(
        "answer_dtmf",
        int(asterisk.env["GATEWAY_SIP_TRUNK_PORT"]),
        f"127.0.0.1:{asterisk.env['GATEWAY_SIP_BIND_PORT']}",
        1,
        tmp_path,
        "1",
    )
    try:
        async with running_voice_gateway(
            redis_server,
            prefix,
            smsc,
            asterisk,
            tmp_path,
            GATEWAY_SMTP_PORT=str(smtp_server.port),  # type: ignore[attr-defined]
            GATEWAY_JOB_SEND_WINDOW=window(NOW),  # the default window may be closed now
        ) as gw:
            # The simulator's MO inbox, where run-local.sh has it (run/mo under the cwd).
            inbox = asyncio.create_task(watch(smsc, tmp_path / "run" / "mo", "12122"))
            try:
                yield gw
            finally:
                inbox.cancel()
                await asyncio.gather(inbox, return_exceptions=True)
    finally:
        phone.stop()


async def _run(gw: Gateway, cwd: Path, setup: list[str], command: str) -> tuple[int, str]:
    addr = urlsplit(gw.base)
    proc = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        "\n".join([*setup, command.replace("http://127.0.0.1:8080", gw.base)]),
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "GATEWAY_HTTP_HOST": str(addr.hostname),
            "GATEWAY_HTTP_PORT": str(addr.port),
        },
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode()


async def _code_sent_to(smsc: SmscSimulator, ref: str) -> str:
    async with asyncio.timeout(10):
        while True:
            for msg in smsc.to([PHONE]):
                if ref in msg.text and (m := re.search(r"验证码(\d{6})", msg.text)):
                    return m.group(1)
            await asyncio.sleep(0.05)


async def test_every_try_it_example_works_on_the_live_stack(
    live_stack: Gateway, smsc: SmscSimulator, smtp_server: Inbox, tmp_path: Path
) -> None:
    gw = live_stack
    (tmp_path / "run").mkdir(exist_ok=True)  # the MO inbox watcher may have made it
    (tmp_path / "run" / "demo-key").write_text(gw._admin.token + "\n")
    setup, steps = try_it()
    seen: dict[str, str] = {}
    for step in steps:
        command = step.command
        for placeholder, name in (("ntc_…", "id"), ("job_…", "job_id"), ("REF", "ref")):
            if placeholder in command:
                command = command.replace(placeholder, seen[name])
        if "CODE" in command:
            command = command.replace("CODE", await _code_sent_to(smsc, seen["ref"]))
        deadline = time.monotonic() + 40
        while True:
            rc, out = await _run(gw, tmp_path, setup, command)
            assert rc == 0, (command, out)
            if step.expect is None:
                break
            got = json.loads(out)
            if matches(step.expect, got):
                break
            # A status the README says comes "a few seconds later": ask again.
            assert " -X POST " not in command, (command, got)
            assert time.monotonic() < deadline, (command, got)
            await asyncio.sleep(0.3)
        if step.expect is not None:
            seen.update({k: str(got[k]) for k in ("id", "job_id", "ref") if k in got})
    assert smtp_server.envelopes[-1].rcpt_tos == ["zhang.san@example.cn"]
