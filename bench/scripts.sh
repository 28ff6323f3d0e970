#!/usr/bin/env bash
# Script route benchmark (scripting issue), release build, loopback, 32 connections:
#   patch   PATCH /api/benchp/row/<random id> {"n": k}   generated CRUD (baseline)
#   script  POST  /api/benchp/row/<random id>/touch       a Rhai route that reads the row
#                                                        and updates it in one transaction
#   const   GET   /api/benchp/const                       a Rhai route returning a constant
# ROUNDS alternating rounds of patch and script; prints each round and the
# median of the per-round script/patch req/s ratios (target >= 0.70).
#
# Needs: wrk, sqlite3 (apt-get install -y wrk sqlite3), python3.
# Usage: bench/scripts.sh [seconds per run, default 8]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-8}
ROUNDS=${ROUNDS:-3}
ROWS=${ROWS:-10000}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 2; }
command -v sqlite3 >/dev/null || { echo "sqlite3 not found: apt-get install -y sqlite3" >&2; exit 2; }
cargo build --release --bin plinth >&2

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
DATA=$(mktemp -d); WORK=$(mktemp -d)
PW=bench-password-123
BASE="http://127.0.0.1:$PORT"
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$DATA" "$WORK"; }
trap cleanup EXIT

mkdir -p "$WORK/manifests" "$WORK/scripts/benchp"
cat > "$WORK/manifests/benchp.toml" <<'TOML'
name = "benchp"
version = "1.0.0"
description = "Script route benchmark"
default_install = true

[permissions]
BENCHP_EDIT = "Edit rows"

[grants]
ADMIN = ["BENCHP_EDIT"]

[entities.row]
permissions = { list = "BENCHP_EDIT", read = "BENCHP_EDIT", create = "BENCHP_EDIT", update = "BENCHP_EDIT", delete = "BENCHP_EDIT" }

[entities.row.fields]
name = { type = "text", required = true }
n    = { type = "integer", default = 0, min = 0 }

[[routes]]
method = "POST"
path = "/row/{id}/touch"
permission = "BENCHP_EDIT"
script = "touch.rhai"

[[routes]]
method = "GET"
path = "/const"
permission = "BENCHP_EDIT"
script = "touch.rhai"
function = "constant"
TOML
cat > "$WORK/scripts/benchp/touch.rhai" <<'RHAI'
fn handle(ctx, req) {
    let row = ctx.db.get("row", req.params.id);
    if row == () { ctx.fail(404, "no such row"); }
    ctx.db.update("row", row.id, #{ n: row.n + 1 })
}

fn constant(ctx, req) { 42 }
RHAI

PLINTH_DATA_DIR="$DATA" PLINTH_LISTEN="127.0.0.1:$PORT" PLINTH_ADMIN_PASSWORD="$PW" PLINTH_WATCH=false \
  PLINTH_MANIFESTS_DIR="$WORK/manifests" PLINTH_SCRIPTS_DIR="$WORK/scripts" \
  target/release/plinth serve 2>/dev/null & PID=$!
for _ in $(seq 1 100); do curl -sf "$BASE/readyz" >/dev/null && break; sleep 0.1; done
TOKEN=$(curl -sf "$BASE/api/auth/login" -H 'content-type: application/json' \
  -d "{\"email\":\"admin@localhost\",\"password\":\"$PW\"}" | python3 -c 'import sys,json; print(json.load(sys.stdin)["access_token"])')

sqlite3 "$DATA/plinth.db" >/dev/null <<SQL
PRAGMA busy_timeout = 5000;
WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < $ROWS)
INSERT INTO benchp_row (id, tenant_id, created_at, updated_at, created_by, name, n)
SELECT lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-7' || substr(hex(randomblob(2)), 2) || '-8' || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6))),
       t.id, strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || x || ' seconds'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
       NULL, 'Row ' || x, 0
FROM n, tenants t;
SQL
sqlite3 "$DATA/plinth.db" "SELECT id FROM benchp_row ORDER BY random() LIMIT 2000" > "$WORK/ids.txt"

cat > "$WORK/common.lua" <<LUA
ids = {}
for line in io.lines("$WORK/ids.txt") do ids[#ids + 1] = line end
wrk.headers["authorization"] = "Bearer $TOKEN"
wrk.headers["content-type"] = "application/json"
done = function(summary, latency, requests)
  io.write(string.format("%.0f %.2f %.2f %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.errors.status))
end
LUA
cat > "$WORK/patch.lua" <<LUA
dofile("$WORK/common.lua")
request = function()
  return wrk.format("PATCH", "/api/benchp/row/" .. ids[math.random(#ids)], nil, '{"n":' .. math.random(0, 1000) .. '}')
end
LUA
cat > "$WORK/script.lua" <<LUA
dofile("$WORK/common.lua")
request = function() return wrk.format("POST", "/api/benchp/row/" .. ids[math.random(#ids)] .. "/touch") end
LUA
cat > "$WORK/const.lua" <<LUA
dofile("$WORK/common.lua")
request = function() return wrk.format("GET", "/api/benchp/const") end
LUA

# PROFILE=script (or patch, const): one 7 s run under `perf record` of the server instead.
if [ -n "${PROFILE:-}" ]; then
  perf record -F 2000 -o /tmp/plinth-server.perf -p "$PID" -- sleep 6 >/dev/null 2>&1 &
  wrk -t2 -c32 -d7s -s "$WORK/$PROFILE.lua" "$BASE" | tail -1
  wait
  echo "profile: perf report -i /tmp/plinth-server.perf"
  exit 0
fi
run() { wrk -t2 -c32 -d"${DUR}s" -s "$WORK/$1.lua" "$BASE" | tail -1; }
echo "method: wrk -t2 -c32 -d${DUR}s, release build, loopback, $ROWS rows, $ROUNDS alternating rounds"
wrk -t2 -c32 -d2s -s "$WORK/patch.lua" "$BASE" >/dev/null
ratios=()
for r in $(seq 1 "$ROUNDS"); do
  read -r prs pp50 pp99 perr <<<"$(run patch)"
  read -r srs sp50 sp99 serr <<<"$(run script)"
  ratio=$(python3 -c "print(f'{$srs / $prs:.2f}')")
  ratios+=("$ratio")
  echo "round $r: patch $prs req/s (p50 $pp50 ms, p99 $pp99 ms, non-2xx $perr) | script $srs req/s (p50 $sp50 ms, p99 $sp99 ms, non-2xx $serr) | ratio $ratio"
done
read -r crs cp50 cp99 cerr <<<"$(run const)"
echo "const script route: $crs req/s (p50 $cp50 ms, p99 $cp99 ms, non-2xx $cerr)"
python3 -c "import statistics,sys; r=[float(x) for x in sys.argv[1:]]; print(f'median script/patch ratio: {statistics.median(r):.2f} (target >= 0.70)')" "${ratios[@]}"
