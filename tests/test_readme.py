"""The README is part of the product: its commands and settings must be the real ones."""

from __future__ import annotations

import re
from pathlib import Path

from tests.test_deploy_files import _known_env

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_starts_with_the_run_and_test_commands() -> None:
    head = README.split("```")[1]
    assert "scripts/run-local.sh" in head
    assert "scripts/test.sh" in head
    assert "scripts/test.sh" in (ROOT / ".ci/run").read_text()


def test_every_setting_is_documented() -> None:
    missing = [name for name in sorted(_known_env()) if f"`{name}`" not in README]
    assert not missing, f"undocumented settings: {missing}"


def test_every_documented_setting_is_still_read() -> None:
    rows = [line for line in README.splitlines() if line.startswith("| `GATEWAY_")]
    named = {n for row in rows for n in re.findall(r"`(GATEWAY_[A-Z0-9_<>]+)`", row.split("|")[1])}
    assert len(named) > 80
    unknown = sorted(named - _known_env())
    assert not unknown, f"documented but not read: {unknown}"
