#!/usr/bin/env bash
# Generated CRUD benchmark (plugins issue): two tenants x 10,000 items of the
# example inventory plugin; at 32 connections for each scenario:
#   list  GET  /api/inventory/item?limit=20&offset=<random>  (with total)
#   get   GET  /api/inventory/item/<random id>
#   create POST /api/inventory/item (unique sku per request)
#   update PATCH /api/inventory/item/<random id>
# Prints req/s and p50/p99 per scenario (wrk --latency). Rows are seeded with
# sqlite3 directly (seeding is not what is measured); every request goes
# through HTTP, auth, permission and installation checks.
#
# Needs: wrk, sqlite3 (apt-get install -y wrk sqlite3), python3.
# Usage: bench/crud.sh [seconds per scenario, default 8]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-8}
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

start() {
  PLINTH_DATA_DIR="$DATA" PLINTH_LISTEN="127.0.0.1:$PORT" PLINTH_ADMIN_PASSWORD="$PW" PLINTH_WATCH=false \
    target/release/plinth serve 2>/dev/null & PID=$!
  for _ in $(seq 1 100); do curl -sf "$BASE/readyz" >/dev/null && break; sleep 0.1; done
}
start
login() { curl -sf "$BASE/api/auth/login" -H 'content-type: application/json' -d "$1" | python3 -c 'import sys,json; print(json.load(sys.stdin)["access_token"])'; }
TOKEN=$(login "{\"email\":\"admin@localhost\",\"password\":\"$PW\"}")
curl -sf "$BASE/api/tenants" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d "{\"slug\":\"second\",\"name\":\"Second\",\"admin\":{\"email\":\"admin@second.test\",\"password\":\"$PW\"}}" >/dev/null

# Seed ROWS items per tenant.
sqlite3 "$DATA/plinth.db" >/dev/null <<SQL
PRAGMA busy_timeout = 5000;
WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < $ROWS)
INSERT INTO inventory_item (id, tenant_id, created_at, updated_at, created_by, name, sku, quantity, status)
SELECT lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-7' || substr(hex(randomblob(2)), 2) || '-8' || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6))),
       t.id, strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || x || ' seconds'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
       NULL, 'Item ' || x, 'SKU-' || x, x % 100, 'active'
FROM n, tenants t;
SQL
sqlite3 "$DATA/plinth.db" "SELECT id FROM inventory_item WHERE tenant_id = (SELECT id FROM tenants WHERE slug = 'default') ORDER BY random() LIMIT 2000" > "$WORK/ids.txt"

cat > "$WORK/common.lua" <<LUA
ids = {}
for line in io.lines("$WORK/ids.txt") do ids[#ids + 1] = line end
wrk.headers["authorization"] = "Bearer $TOKEN"
wrk.headers["content-type"] = "application/json"
LUA
cat > "$WORK/list.lua" <<LUA
dofile("$WORK/common.lua")
request = function() return wrk.format("GET", "/api/inventory/item?limit=20&offset=" .. math.random(0, $ROWS - 20)) end
LUA
cat > "$WORK/get.lua" <<LUA
dofile("$WORK/common.lua")
request = function() return wrk.format("GET", "/api/inventory/item/" .. ids[math.random(#ids)]) end
LUA
cat > "$WORK/create.lua" <<LUA
dofile("$WORK/common.lua")
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("tag", tostring(threads) .. "-" .. tostring(os.time()))
end
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("POST", "/api/inventory/item", nil,
    '{"name":"Bench","sku":"B-' .. tag .. '-' .. counter .. '","quantity":1}')
end
LUA
cat > "$WORK/update.lua" <<LUA
dofile("$WORK/common.lua")
request = function()
  return wrk.format("PATCH", "/api/inventory/item/" .. ids[math.random(#ids)], nil,
    '{"quantity":' .. math.random(0, 1000) .. '}')
end
LUA
cat > "$WORK/report.lua" <<'LUA'
done = function(summary, latency, requests)
  local non2xx = summary.errors.status
  io.write(string.format("%.0f req/s  p50 %.2f ms  p99 %.2f ms  non-2xx %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, non2xx))
end
LUA
for s in list get create update; do cat "$WORK/report.lua" >> "$WORK/$s.lua"; done

echo "method: wrk -t2 -c32 -d${DUR}s per scenario, release build, loopback, 2 tenants x $ROWS items, default logging"
wrk -t2 -c32 -d2s -s "$WORK/get.lua" "$BASE" >/dev/null
for s in list get create update; do
  printf '%-7s ' "$s"; wrk -t2 -c32 -d"${DUR}s" -s "$WORK/$s.lua" "$BASE" | tail -1
done
