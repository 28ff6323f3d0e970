#!/usr/bin/env bash
# Lua vs Rhai (Lua issue), release build, loopback, 32 connections: the same
# script route — read a row and update it in one transaction — written in
# Rhai (plugin benchp, touch.rhai) and in Lua (plugin benchl, touch.lua),
# alternating rounds; prints req/s and p99 of each and the median
# Lua/Rhai ratio (target >= 0.80).
#
# Needs: wrk, sqlite3 (apt-get install -y wrk sqlite3), python3.
# Usage: bench/lua.sh [seconds per run, default 8]
#        PERF=out.data [PERF_RUNTIME=lua|rhai] bench/lua.sh  (perf profile of one run)
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
mkdir -p "$WORK/scripts/benchl"
sed -e 's/^name = "benchp"/name = "benchl"/' -e 's/BENCHP_EDIT/BENCHL_EDIT/g' \
    -e 's/touch.rhai/touch.lua/' -e 's/^version = "1.0.0"/version = "1.0.0"\nruntime = "lua"/' \
    "$WORK/manifests/benchp.toml" > "$WORK/manifests/benchl.toml"
cat > "$WORK/scripts/benchl/touch.lua" <<'LUA'
function handle(ctx, req)
    local row = ctx.db.get("row", req.params.id)
    if row == nil then ctx.fail(404, "no such row") end
    return ctx.db.update("row", row.id, { n = row.n + 1 })
end

function constant(ctx, req) return 42 end
LUA

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
sqlite3 "$DATA/plinth.db" >/dev/null <<SQL
PRAGMA busy_timeout = 5000;
WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < $ROWS)
INSERT INTO benchl_row (id, tenant_id, created_at, updated_at, created_by, name, n)
SELECT lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-7' || substr(hex(randomblob(2)), 2) || '-8' || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6))),
       t.id, strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || x || ' seconds'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
       NULL, 'Row ' || x, 0
FROM n, tenants t;
SQL
sqlite3 "$DATA/plinth.db" "SELECT id FROM benchp_row ORDER BY random() LIMIT 2000" > "$WORK/ids.txt"
sqlite3 "$DATA/plinth.db" "SELECT id FROM benchl_row ORDER BY random() LIMIT 2000" > "$WORK/idsl.txt"

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
cat > "$WORK/rhai.lua" <<LUA
dofile("$WORK/common.lua")
request = function() return wrk.format("POST", "/api/benchp/row/" .. ids[math.random(#ids)] .. "/touch") end
LUA
cat > "$WORK/lua.lua" <<LUA
dofile("$WORK/common.lua")
idsl = {}
for line in io.lines("$WORK/idsl.txt") do idsl[#idsl + 1] = line end
request = function() return wrk.format("POST", "/api/benchl/row/" .. idsl[math.random(#idsl)] .. "/touch") end
LUA
run() { wrk -t2 -c32 -d"${DUR}s" -s "$WORK/$1.lua" "$BASE" | tail -1; }
if [ -n "${PERF:-}" ]; then
  # Profile the server while the Lua route runs (PERF=<output file>).
  perf record -F 2000 -g -p "$PID" -o "$PERF" -- sleep "$DUR" 2>/dev/null & PERF_PID=$!
  run "${PERF_RUNTIME:-lua}"; wait "$PERF_PID"; exit 0
fi
echo "method: wrk -t2 -c32 -d${DUR}s, release build, loopback, $ROWS rows each, $ROUNDS alternating rounds"
wrk -t2 -c32 -d2s -s "$WORK/lua.lua" "$BASE" >/dev/null
ratios=()
for r in $(seq 1 "$ROUNDS"); do
  read -r rrs rp50 rp99 rerr <<<"$(run rhai)"
  read -r lrs lp50 lp99 lerr <<<"$(run lua)"
  ratio=$(python3 -c "print(f'{$lrs / $rrs:.2f}')")
  ratios+=("$ratio")
  echo "round $r: rhai $rrs req/s (p50 $rp50 ms, p99 $rp99 ms, non-2xx $rerr) | lua $lrs req/s (p50 $lp50 ms, p99 $lp99 ms, non-2xx $lerr) | ratio $ratio"
done
python3 -c "import statistics,sys; r=[float(x) for x in sys.argv[1:]]; print(f'median lua/rhai ratio: {statistics.median(r):.2f} (target >= 0.80)')" "${ratios[@]}"
