#!/usr/bin/env bash
# Runs the gateway with its local stack on the embedded defaults (as root on Debian 12):
# a private Redis on 127.0.0.1:6379, the SMSC simulator on 127.0.0.1:2775 (it prints every
# message it receives, decoded), a private Asterisk rendered from dialplan/ (AMI 5038, SIP
# 5060), a SIPp "phone" on the carrier side (5070) that answers and presses 1, and the
# gateway's API on http://127.0.0.1:8080 with its workers (FastAGI on 4573).
# Ctrl-C stops all of it; nothing is left running.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
mkdir -p run
export PATH="$PWD/.venv/bin:$PATH"

# Redis and the simulator run in sessions of their own, so that Ctrl-C (which signals the
# whole foreground group) reaches the gateway first and they go down after it.
pids=()
cleanup() {
    # Reverse start order: the gateway finishes with Redis still there.
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill "${pids[i]}" 2>/dev/null || true
        wait "${pids[i]}" 2>/dev/null || true
    done
}
trap cleanup EXIT INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in 6379 2775 8080 5038 4573; do
    if port_busy "$port"; then
        echo "port $port on 127.0.0.1 is in use; stop what holds it (or set GATEWAY_* ports)" >&2
        exit 1
    fi
done

setsid redis-server --port 6379 --bind 127.0.0.1 --dir "$PWD/run" --save 60 1000 \
    --appendonly yes --loglevel warning >run/redis.log 2>&1 &
pids+=($!)
for _ in $(seq 50); do port_busy 6379 && break; sleep 0.1; done

setsid gateway smsc-sim --mo-inbox run/mo &
pids+=($!)
setsid gateway smtp-sink &  # email reminders land here, printed
pids+=($!)

gateway asterisk-config run/asterisk >/dev/null
setsid asterisk -C "$PWD/run/asterisk/asterisk.conf" -f -n >run/asterisk.log 2>&1 &
pids+=($!)
setsid sipp -sf tests/sipp/answer_dtmf.xml -i 127.0.0.1 -p 5070 -nostdin \
    -set digit 1 -set asterisk 127.0.0.1:5060 >run/sipp.log 2>&1 &
pids+=($!)

if [ ! -s run/demo-key ]; then
    gateway --log-level WARNING keys add --name local-demo --role admin \
        --callback-host 127.0.0.1 --json >run/demo-key.json
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["key"])' \
        run/demo-key.json >run/demo-key
    echo "An admin key for trying the API is in run/demo-key (secret: run/demo-key.json)."
fi

cat <<MSG

Gateway starting on http://127.0.0.1:8080 (Ctrl-C stops everything). Try:

  curl -s -X POST http://127.0.0.1:8080/v1/accident-alerts \\
    -H "Authorization: Bearer \$(cat run/demo-key)" -H 'Content-Type: application/json' \\
    -d '{"accident_type":"injury","reporter_phone":"13800138000","location":"北京路","case_id":"A-1"}'

See the README for a parking notice that rings the SIPp phone. The command centre's console:
http://127.0.0.1:8080/console/ (log in with the key in run/demo-key).

MSG
# The gateway runs under the restart supervisor, as compose restarts its container: a gateway
# that exits non-zero is started again after 1 s; Ctrl-C stops the supervisor and the gateway.
python -m gateway.supervisor --name gateway -- gateway serve &
pids+=($!)
wait -n "${pids[@]}"
