#!/usr/bin/env bash
# Auth benchmark (core platform issue). Two measurements, each against a
# baseline taken in the same run, on release builds over loopback.
#
# 1. Throughput. GET /api/auth/me with a valid token (JWT check, principal,
#    effective permissions, log line) vs a bare axum handler returning a
#    constant (bench/bare_axum.rs). Both servers are pinned to CPU 1 and wrk
#    to CPU 0, so neither server fights the load generator for a core; the
#    two are measured alternately, ROUNDS times, and the median ratio is
#    reported. Target: >= 0.70.
# 2. Latency isolation. /api/auth/me at a fixed rate (open loop,
#    bench/loadgen.rs, RATE req/s) idle, then while logins run at 8/s
#    (bench/logins.py). The login client runs under SCHED_IDLE next to the
#    measuring client so that it does not disturb the measurement itself;
#    the logins still arrive at 8/s (printed); ROUNDS idle/loaded pairs, median
#    of the per-round ratios. Target: loaded p99 < 2 x idle
#    p99 (argon2 never delays other requests).
#
# Needs: wrk and util-linux's taskset/chrt (apt-get install -y wrk), python3,
# 2+ CPUs. Loopback only; every step is bounded in time.
# Usage: bench/run.sh [seconds per step, default 8]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-8}
ROUNDS=${ROUNDS:-3}
RATE=${RATE:-10000}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 2; }

cargo build --release --bin plinth --example bare_axum --example loadgen >&2

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
BASE_PORT=$(free_port); PLINTH_PORT=$(free_port)
DATA=$(mktemp -d)
PW=bench-password-123
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DATA"; }
trap cleanup EXIT

taskset -c 1 target/release/examples/bare_axum "127.0.0.1:$BASE_PORT" & PIDS+=($!)
PLINTH_DATA_DIR="$DATA" PLINTH_LISTEN="127.0.0.1:$PLINTH_PORT" PLINTH_ADMIN_PASSWORD="$PW" \
  PLINTH_WATCH=false taskset -c 1 target/release/plinth serve 2>/dev/null & PIDS+=($!)
for _ in $(seq 1 100); do curl -sf "127.0.0.1:$PLINTH_PORT/readyz" >/dev/null && break; sleep 0.1; done
TOKEN=$(curl -sf "127.0.0.1:$PLINTH_PORT/api/auth/login" -H 'content-type: application/json' \
  -d "{\"email\":\"admin@localhost\",\"password\":\"$PW\"}" | python3 -c 'import sys,json; print(json.load(sys.stdin)["access_token"])')
AUTH="authorization: Bearer $TOKEN"
ME="http://127.0.0.1:$PLINTH_PORT/api/auth/me"

median() { python3 -c 'import sys,statistics; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }
wrk_rps() { taskset -c 0 wrk -t1 -c32 -d"${DUR}s" "$@" | awk '/Requests\/sec/ {print $2}'; }
field() { tr ' ' '\n' | awk -F= -v k="$1" '$1==k {print $2}'; }

echo "== 1. throughput: wrk -t1 -c32 -d${DUR}s, servers on CPU 1, wrk on CPU 0, $ROUNDS alternating rounds"
taskset -c 0 wrk -t1 -c32 -d2s "http://127.0.0.1:$BASE_PORT/" >/dev/null
taskset -c 0 wrk -t1 -c32 -d2s -H "$AUTH" "$ME" >/dev/null
RATIOS=()
for r in $(seq 1 "$ROUNDS"); do
  b=$(wrk_rps "http://127.0.0.1:$BASE_PORT/")
  m=$(wrk_rps -H "$AUTH" "$ME")
  ratio=$(python3 -c "print(round($m/$b, 3))")
  RATIOS+=("$ratio")
  echo "round $r: bare axum $b req/s, plinth /api/auth/me $m req/s, ratio $ratio"
done
R=$(median "${RATIOS[@]}")
python3 -c "r=$R; print(f'median ratio /me : baseline = {r:.2f} (target >= 0.70: {\"PASS\" if r >= 0.70 else \"FAIL\"})')"

echo "== 2. latency: /api/auth/me at $RATE req/s open loop for ${DUR}s (server on CPU 1, clients on CPU 0)"
LOAD="taskset -c 0 target/release/examples/loadgen $ME $RATE $DUR"
$LOAD "$AUTH" >/dev/null
IDLE=(); BUSY=(); LRATIOS=()
for r in $(seq 1 "$ROUNDS"); do
  out=$($LOAD "$AUTH"); echo "idle          : $out"; IDLE+=("$(echo "$out" | field p99_us)")
  taskset -c 0 chrt -i 0 python3 bench/logins.py "http://127.0.0.1:$PLINTH_PORT" admin@localhost "$PW" "$((DUR + 1))" 8 > "$DATA/logins.txt" &
  LP=$!; sleep 0.5
  out=$($LOAD "$AUTH"); echo "logins at 8/s : $out"; BUSY+=("$(echo "$out" | field p99_us)")
  LRATIOS+=("$(python3 -c "print(round(${BUSY[-1]} / ${IDLE[-1]}, 3))")")
  wait $LP; echo "                $(cat "$DATA/logins.txt")"
done
I=$(median "${IDLE[@]}"); B=$(median "${BUSY[@]}"); LR=$(median "${LRATIOS[@]}")
python3 -c "i=$I; b=$B; r=$LR; print(f'median p99: idle {i:.0f} us, with logins {b:.0f} us; per-round ratios ${LRATIOS[*]}; median ratio {r:.2f} (target < 2.0: {\"PASS\" if r < 2.0 else \"FAIL\"})')"
