#!/usr/bin/env bash
# Before/after of two ssegate release binaries in one sitting, alternating A B A B …, on a plain NDJSON route:
# proxy CPU per event in a burst (10 streams × 5,000 messages, 8 per write: the per-event cost, least noisy),
# CPU per event at 50 paced streams (one message per write every 10 ms) and RSS per idle stream (2,000 streams,
# heartbeat 1 s). Every stream is checked for every seq once and in order. Each binary must accept the config
# below (the plain keys of every version). Same pinning as run.sh: ssegate on CPU 1, mock and loadgen on CPU 0.
#
#   benches/ab.sh BIN_A BIN_B [ROUNDS]     # ROUNDS default 3; the mock and loadgen from target/release
#                                          # (or $CARGO_TARGET_DIR/release)
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,9p' "$0"; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
R=${CARGO_TARGET_DIR:-$ROOT/target}/release
A=$1; B=$2; ROUNDS=${3:-3}
for b in "$A" "$B" "$R/mock-upstream" "$R/loadgen"; do [ -x "$b" ] || { echo "ab.sh: $b missing" >&2; exit 1; }; done
W=$(mktemp -d)
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
ulimit -n "$(ulimit -Hn)"
MP=$(port)
taskset -c 0 "$R/mock-upstream" --listen "127.0.0.1:$MP" >/dev/null 2>&1 & MOCK=$!
trap 'kill $MOCK 2>/dev/null; pkill -f "$W/g" 2>/dev/null; rm -rf "$W"' EXIT
echo "A = $A${A_NOTE:+ ($A_NOTE)}; B = $B${B_NOTE:+ ($B_NOTE)}; load average $(cut -d' ' -f1-3 /proc/loadavg)"
run() { # NAME BIN
  local GP AP GW
  GP=$(port); AP=$(port)
  cat >"$W/g-$1.toml" <<T
[server]
listen = ["127.0.0.1:$GP"]
threads = 1
[admin]
listen = "127.0.0.1:$AP"
[[route]]
name = "ndjson"
path_prefix = "/ndjson"
upstream = "http://127.0.0.1:$MP"
format = "ndjson"
[[route]]
name = "idle"
path_prefix = "/idle"
upstream = "http://127.0.0.1:$MP"
format = "ndjson"
heartbeat_interval = "1s"
T
  RUST_LOG=warn taskset -c 1 "$2" run --config "$W/g-$1.toml" >"$W/$1.log" 2>&1 & GW=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$AP/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
  curl -fs "http://127.0.0.1:$GP/ndjson/api/chat?n=1&pace_ms=0" >/dev/null
  taskset -c 0 "$R/loadgen" stream --method POST --mock-pid "$MOCK" --pid "$GW" --target "$1" --scenario burst \
    --json "$W/$1-b.json" --url "http://127.0.0.1:$GP/ndjson/api/chat?n=5000&pace_ms=0&size=100&batch=8" --parse sse \
    --expect 5000 --streams 10 --duration 3 --warmup 1 --ramp-rate 1000 >/dev/null
  taskset -c 0 "$R/loadgen" stream --method POST --mock-pid "$MOCK" --pid "$GW" --target "$1" --scenario paced-50 \
    --json "$W/$1-p.json" --url "http://127.0.0.1:$GP/ndjson/api/chat?n=200&pace_ms=10&size=100" --parse sse \
    --expect 200 --streams 50 --duration 6 --warmup 1 --ramp-rate 1000 >/dev/null
  kill $GW; wait $GW 2>/dev/null || true
  GP=$(port); AP=$(port)
  sed -i "s/^listen = \[.*/listen = [\"127.0.0.1:$GP\"]/; s/^listen = \"127.*/listen = \"127.0.0.1:$AP\"/" "$W/g-$1.toml"
  RUST_LOG=warn taskset -c 1 "$2" run --config "$W/g-$1.toml" >"$W/$1.log" 2>&1 & GW=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$AP/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
  curl -fs "http://127.0.0.1:$GP/ndjson/api/chat?n=1&pace_ms=0" >/dev/null
  taskset -c 0 "$R/loadgen" idle --mock-pid "$MOCK" --pid "$GW" --target "$1" --scenario idle-2000 \
    --json "$W/$1-i.json" --url "http://127.0.0.1:$GP/idle/api/chat?n=1&first_ms=600000" --streams 2000 \
    --ramp-rate 3000 --hold 8 >/dev/null
  kill $GW; wait $GW 2>/dev/null || true
  python3 - "$W/$1-b.json" "$W/$1-p.json" "$W/$1-i.json" "$1" <<'PY'
import json, sys
b, p, i = (json.load(open(f)) for f in sys.argv[1:4])
bad = sum(r["seq"][k] for r in (b, p) for k in ("lost", "duplicated", "reordered"))
print(f"{sys.argv[4]}: burst {b['cpu_us_per_event']:.3f} µs/event | paced-50 {p['cpu_us_per_event']:.2f} µs/event"
      f" | idle {i['kib_per_stream']:.2f} KiB/stream ({i['streams_open']} open) | lost/dup/reordered {bad}")
PY
}
for i in $(seq 1 "$ROUNDS"); do run "A$i" "$A"; run "B$i" "$B"; done 2>&1 | grep -E '^(A|B)[0-9]+: '

