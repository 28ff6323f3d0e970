#!/usr/bin/env bash
# Auth benchmark (issue: core platform).
#
#  1. Throughput: GET /api/auth/me with a valid token (JWT check + principal
#     + permission evaluation) vs a bare axum handler returning a constant,
#     both release builds, same machine, same run, same wrk settings.
#     Target: plinth >= 70% of the baseline.
#  2. Isolation of password hashing: /api/auth/me p99 under the same load,
#     idle vs while logins run at 8 per second (argon2id on blocking threads).
#     Target: loaded p99 < 2 x idle p99.
#
# Needs: wrk (apt-get install wrk), python3. Loopback only; every load step
# is bounded in time. Usage: bench/run.sh [seconds per step, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
CONN=${CONN:-32}
THREADS=${THREADS:-2}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 2; }

cargo build --release --bin plinth --example bare_axum >&2

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
BASE_PORT=$(free_port); PLINTH_PORT=$(free_port)
DATA=$(mktemp -d)
PW=bench-password-123
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DATA"; }
PIDS=()
trap cleanup EXIT

target/release/examples/bare_axum "127.0.0.1:$BASE_PORT" & PIDS+=($!)
PLINTH_DATA_DIR="$DATA" PLINTH_LISTEN="127.0.0.1:$PLINTH_PORT" PLINTH_ADMIN_PASSWORD="$PW" \
  PLINTH_WATCH=false target/release/plinth serve 2>/dev/null & PIDS+=($!)
for _ in $(seq 1 100); do curl -sf "127.0.0.1:$PLINTH_PORT/readyz" >/dev/null && break; sleep 0.1; done

TOKEN=$(curl -sf "127.0.0.1:$PLINTH_PORT/api/auth/login" -H 'content-type: application/json' \
  -d "{\"email\":\"admin@localhost\",\"password\":\"$PW\"}" | python3 -c 'import sys,json; print(json.load(sys.stdin)["access_token"])')

rps() { awk '/Requests\/sec/ {print $2}'; }
p99() { awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; print v}'; }

echo "method: wrk -t$THREADS -c$CONN -d${DUR}s on loopback, release builds, 2 cores shared by load generator and server"
wrk -t"$THREADS" -c"$CONN" -d2s "http://127.0.0.1:$BASE_PORT/" >/dev/null
wrk -t"$THREADS" -c"$CONN" -d2s -H "authorization: Bearer $TOKEN" "http://127.0.0.1:$PLINTH_PORT/api/auth/me" >/dev/null

BASE_OUT=$(wrk -t"$THREADS" -c"$CONN" -d"${DUR}s" --latency "http://127.0.0.1:$BASE_PORT/")
ME_OUT=$(wrk -t"$THREADS" -c"$CONN" -d"${DUR}s" --latency -H "authorization: Bearer $TOKEN" "http://127.0.0.1:$PLINTH_PORT/api/auth/me")
BASE_RPS=$(echo "$BASE_OUT" | rps); ME_RPS=$(echo "$ME_OUT" | rps); IDLE_P99=$(echo "$ME_OUT" | p99)
echo "bare axum constant:      $BASE_RPS req/s"
echo "plinth GET /api/auth/me: $ME_RPS req/s   p99 ${IDLE_P99} ms"
python3 -c "r=$ME_RPS/$BASE_RPS; print(f'ratio me/baseline: {r:.2f}  (target >= 0.70: {\"PASS\" if r>=0.70 else \"FAIL\"})')"

python3 bench/logins.py "http://127.0.0.1:$PLINTH_PORT" admin@localhost "$PW" "$((DUR + 1))" 8 > "$DATA/logins.txt" &
LPID=$!
sleep 0.5
LOAD_OUT=$(wrk -t"$THREADS" -c"$CONN" -d"${DUR}s" --latency -H "authorization: Bearer $TOKEN" "http://127.0.0.1:$PLINTH_PORT/api/auth/me")
wait $LPID
LOAD_RPS=$(echo "$LOAD_OUT" | rps); LOAD_P99=$(echo "$LOAD_OUT" | p99)
cat "$DATA/logins.txt"
echo "plinth /me while logging in at 8/s: $LOAD_RPS req/s   p99 ${LOAD_P99} ms"
python3 -c "r=$LOAD_P99/$IDLE_P99; print(f'p99 loaded/idle: {r:.2f}  (target < 2.0: {\"PASS\" if r<2.0 else \"FAIL\"})')"
