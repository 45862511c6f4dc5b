"""The fault suite in its short mode: one run of each SMS fault, 5,000 recipients a job, the
real processes under the restart supervisor. It passes only when no row has a stuck notice,
a missing callback or more duplicates than the SMPP window (``bench/faults.py``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.faults
@pytest.mark.timeout(600)
def test_fault_suite_short_mode_loses_nothing() -> None:
    # Its own session: when it overruns, the whole group (supervisor, Redis, workers) goes.
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.faults", "--short"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=570)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    print(out)  # the table, shown by pytest -rA or on failure
    assert proc.returncode == 0, out[-4000:] + err[-2000:]
