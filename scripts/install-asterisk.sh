#!/usr/bin/env bash
# Installs Debian 11's Asterisk 16 on Debian 12 (which has no asterisk package): adds the
# bullseye suites from the same mirrors the machine already uses, pinned low so that bookworm
# stays preferred, and installs only asterisk and what it needs. Safe to run again.
set -euo pipefail
command -v asterisk >/dev/null 2>&1 && exit 0

# Mirrors: read from the machine's own sources (deb822 or one-line format).
shopt -s nullglob
src_files=(/etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list)
[ -f /etc/apt/sources.list ] && src_files+=(/etc/apt/sources.list)
uris=$(
    {
        grep -h '^URIs:' "${src_files[@]}" | awk '{for (i = 2; i <= NF; i++) print $i}'
        grep -h '^deb ' "${src_files[@]}" | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; break}}'
    } 2>/dev/null | sort -u || true
)
main_uri=$(grep -v security <<<"$uris" | grep -E '/debian/?$' | head -n1 || true)
sec_uri=$(grep -E 'debian-security/?$' <<<"$uris" | head -n1 || true)
if [ -z "$main_uri" ] || [ -z "$sec_uri" ]; then
    echo "install-asterisk: cannot find the Debian and Debian-security mirrors in apt sources" >&2
    exit 1
fi
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
cat >/etc/apt/sources.list.d/notice-gateway-bullseye.sources <<SRC
Types: deb
URIs: $main_uri
Suites: bullseye
Components: main
Signed-By: $keyring

Types: deb
URIs: $sec_uri
Suites: bullseye-security
Components: main
Signed-By: $keyring
SRC
cat >/etc/apt/preferences.d/notice-gateway-bullseye <<'PIN'
Package: *
Pin: release n=bullseye
Pin-Priority: 100

Package: *
Pin: release n=bullseye-security
Pin-Priority: 100
PIN
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends asterisk >/dev/null
# The package starts a system Asterisk where systemd runs; the gateway runs private ones.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now asterisk >/dev/null 2>&1 || true
fi
pkill -x asterisk 2>/dev/null || true
