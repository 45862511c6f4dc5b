"""The fault suite in its short mode: one run of each SMS fault, 5,000 recipients a job, the
real processes under the restart supervisor. It passes only when no row has a stuck notice,
a missing callback or more duplicates than the SMPP window (``bench/faults.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.faults
@pytest.mark.timeout(600)
def test_fault_suite_short_mode_loses_nothing() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.faults", "--short"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=570,
        check=False,
    )
    print(run.stdout)  # the table, shown by pytest -rA or on failure
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
