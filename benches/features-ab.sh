#!/usr/bin/env bash
# What route features cost per event, A/B in one sitting: one release ssegate (pinned to CPU 1), the bench
# mock and loadgen (CPU 0); bursts of 5,000 messages (8 per upstream write) on three routes in turn — a plain
# NDJSON route, `provider = "ollama"` (end marker + token usage on the Ollama-shaped mock) and `resume` with the
# memory store — ROUNDS times (default 5). Prints each run's proxy CPU per event; every stream is checked for
# every seq once and in order (loadgen). Bursts make the per-event cost visible: at paced rates a fixed
# ~0.2 µs is lost in the 12–30 µs an event costs there. See benches/README.md, "What route features cost".
#
#   benches/features-ab.sh            # uses target/release (or $CARGO_TARGET_DIR/release)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
R=${CARGO_TARGET_DIR:-$ROOT/target}/release
for b in ssegate mock-upstream loadgen; do
  [ -x "$R/$b" ] || { echo "features-ab.sh: $R/$b missing: cargo build --release -p ssegate -p ssegate-bench --bins" >&2; exit 1; }
done
W=$(mktemp -d)
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
MP=$(port); GP=$(port); AP=$(port)
taskset -c 0 "$R/mock-upstream" --listen "127.0.0.1:$MP" >/dev/null 2>&1 & MOCK=$!
cat >$W/g.toml <<T
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
name = "usage"
path_prefix = "/usage"
upstream = "http://127.0.0.1:$MP"
provider = "ollama"
[[route]]
name = "resume"
path_prefix = "/resume"
upstream = "http://127.0.0.1:$MP"
format = "ndjson"
resume = { store = "memory", max_bytes = "4MiB", ttl = "1s" }
T
RUST_LOG=warn taskset -c 1 "$R/ssegate" run --config "$W/g.toml" >"$W/g.log" 2>&1 & GW=$!
trap 'kill $MOCK $GW 2>/dev/null; rm -rf "$W"' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$AP/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
Q="n=5000&pace_ms=0&size=100&batch=8"
for i in $(seq 1 ${ROUNDS:-5}); do
  for r in ndjson usage resume; do
    taskset -c 0 "$R/loadgen" stream --method POST --mock-pid "$MOCK" --pid "$GW" --target "$r" --scenario burst \
      --json "$W/$r-$i.json" --url "http://127.0.0.1:$GP/$r/api/chat?$Q" --parse sse --expect 5000 --streams 10 \
      --duration 3 --warmup 1 --ramp-rate 1000 >/dev/null
    python3 -c "import json,sys;d=json.load(open(sys.argv[1]));s=d['seq'];print(sys.argv[2], round(d['cpu_us_per_event'],3), 'µs/event; lost/dup/reordered', s['lost'], s['duplicated'], s['reordered'])" "$W/$r-$i.json" "$r"
  done
done
