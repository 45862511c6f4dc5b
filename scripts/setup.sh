#!/usr/bin/env bash
# Installs everything the gateway and its tests need on a fresh Debian 12 machine (as root):
# system packages (Redis and Redis Sentinel, Asterisk, SIPp, espeak-ng, sox), a virtualenv in
# .venv and the Python packages. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for pkg in redis-server:redis-server redis-sentinel:redis-sentinel sipp:sip-tester espeak-ng:espeak-ng sox:sox; do
    command -v "${pkg%%:*}" >/dev/null 2>&1 || need_apt+=("${pkg#*:}")
done
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
# sox reads gTTS's MP3 only with this format plugin.
dpkg -s libsox-fmt-mp3 >/dev/null 2>&1 || need_apt+=(libsox-fmt-mp3)
# The interop tests' independent SMSCs: Net::SMPP (Perl), and node-smpp on Debian's Node.
dpkg -s libnet-smpp-perl >/dev/null 2>&1 || need_apt+=(libnet-smpp-perl)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
# The console's browser test drives Debian's Chromium through Playwright (no browser download).
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
# A Chinese font, so the console's screenshots show its text.
dpkg -s fonts-wqy-microhei >/dev/null 2>&1 || need_apt+=(fonts-wqy-microhei)
if [ "${#need_apt[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
    # Debian starts the packaged redis-server where systemd runs; the gateway uses private ones.
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        systemctl disable --now redis-server redis-sentinel >/dev/null 2>&1 || true
    fi
fi

# node-smpp at the version the lock file pins, into the interop folder (ignored by git).
interop=tests/interop/node
if [ ! -f "$interop/node_modules/.package-lock.json" ] || [ "$interop/package-lock.json" -nt "$interop/node_modules/.package-lock.json" ]; then
    (cd "$interop" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

# Debian 12 has no asterisk package; this adds Debian 11's (see the script).
scripts/install-asterisk.sh

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
    # pip's own output only matters when it fails
    if ! .venv/bin/pip install -q -e '.[dev]' >.venv/pip-install.log 2>&1; then
        cat .venv/pip-install.log >&2
        exit 1
    fi
    rm -f .venv/.installed-*
    touch "$stamp"
fi
