#!/usr/bin/env bash
# Hot reload under load (hot-reload issue), release build, loopback:
#   wrk -t2 -c32 drives POST /api/benchp/row/<random id>/touch (a Rhai route
#   that reads a row and updates it in one transaction) while a probe
#   rewrites touch.rhai EDITS times, once every 500 ms, each version
#   answering {"v": N, ...}. The probe polls the same route on its own
#   connection right after each write and takes the time from the end of
#   the write to the first response of version N (an upper bound: it
#   includes one request under load).
# Prints: failed requests during the edits (non-2xx + socket errors; goal
# 0), reload latency p50/p95/max (goal p95 <= 100 ms), and req/s during the
# edits against a baseline run of the same length just before (the dip).
#
# Needs: wrk, sqlite3 (apt-get install -y wrk sqlite3), python3.
# Usage: bench/reload.sh [edits, default 20]
set -euo pipefail
cd "$(dirname "$0")/.."
EDITS=${1:-20}
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
    #{ v: 0, row: ctx.db.update("row", row.id, #{ n: row.n + 1 }) }
}

fn constant(ctx, req) { 42 }
RHAI

PLINTH_DATA_DIR="$DATA" PLINTH_LISTEN="127.0.0.1:$PORT" PLINTH_ADMIN_PASSWORD="$PW" PLINTH_WATCH=true \
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
    latency:percentile(99) / 1000, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
cat > "$WORK/script.lua" <<LUA
dofile("$WORK/common.lua")
request = function() return wrk.format("POST", "/api/benchp/row/" .. ids[math.random(#ids)] .. "/touch") end
LUA

DUR=$(( EDITS / 2 + 2 ))
echo "method: wrk -t2 -c32 -d${DUR}s, release build, loopback, $ROWS rows; $EDITS rewrites of the script, one every 500 ms"
wrk -t2 -c32 -d2s -s "$WORK/script.lua" "$BASE" >/dev/null
read -r brs bp50 bp99 berr <<<"$(wrk -t2 -c32 -d"${DUR}s" -s "$WORK/script.lua" "$BASE" | tail -1)"
echo "baseline (no edits): $brs req/s (p50 $bp50 ms, p99 $bp99 ms, failed $berr)"

wrk -t2 -c32 -d"${DUR}s" -s "$WORK/script.lua" "$BASE" | tail -1 > "$WORK/during.txt" &
WRK=$!
sleep 0.5
python3 - "$WORK/scripts/benchp/touch.rhai" "$PORT" "$TOKEN" "$(head -1 "$WORK/ids.txt")" "$EDITS" <<'PY'
import http.client, json, statistics, sys, time
path, port, token, row, edits = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
template = open(path).read()
conn = http.client.HTTPConnection("127.0.0.1", port)
headers = {"authorization": "Bearer " + token}
def version():
    conn.request("POST", "/api/benchp/row/%s/touch" % row, headers=headers)
    r = conn.getresponse()
    body = r.read()
    if r.status != 200:
        raise SystemExit("probe got %d: %s" % (r.status, body[:200]))
    return json.loads(body)["v"]
lat = []
for n in range(1, edits + 1):
    began = time.monotonic()
    with open(path, "w") as f:
        f.write(template.replace("v: 0,", "v: %d," % n))
    written = time.monotonic()
    while version() != n:
        if time.monotonic() - written > 5:
            raise SystemExit("version %d not served within 5 s" % n)
    lat.append((time.monotonic() - written) * 1000)
    time.sleep(max(0.0, 0.5 - (time.monotonic() - began)))
lat.sort()
p95 = lat[min(len(lat) - 1, round(0.95 * (len(lat) - 1)))]
print("reload latency, write to first response of the new version (%d edits): p50 %.1f ms, p95 %.1f ms, max %.1f ms (goal p95 <= 100 ms)"
      % (len(lat), statistics.median(lat), p95, lat[-1]))
PY
wait "$WRK"
read -r drs dp50 dp99 derr <<<"$(cat "$WORK/during.txt")"
echo "during the edits: $drs req/s (p50 $dp50 ms, p99 $dp99 ms, failed $derr; goal 0 failed)"
python3 -c "print(f'throughput during edits / baseline: {$drs / $brs:.2f}')"
