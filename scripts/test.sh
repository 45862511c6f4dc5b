#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine (as root): installs what is missing, then
# lint, types and tests. The tests start their own Redis, SMSC simulator and gateway on
# ephemeral loopback ports and stop them again.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== ruff"
.venv/bin/ruff check gateway tests bench
.venv/bin/ruff format --check gateway tests bench
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
# Slowest tests listed at the end: the whole command must stay well inside CI's time. The
# tests run on two workers (each starts its own Redis, Asterisk and simulators on ephemeral
# ports); then the fault suite (bench/faults.py --short: processes killed under load) and
# the tests marked serial (a Sentinel failover) run alone: their timing assumes the machine.
# Arguments: pytest's, one run.
if [ "$#" -gt 0 ]; then
    exec .venv/bin/pytest "$@"
fi
.venv/bin/pytest -n 2 -m "not faults and not serial" --durations=25
exec .venv/bin/pytest -m "faults or serial" --durations=5
