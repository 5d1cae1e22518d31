#!/usr/bin/env bash
# What route features cost per event, A/B in one sitting: one release ssegate (pinned to CPU 1), the bench
# mock and loadgen (CPU 0); bursts of 5,000 messages (8 per upstream write) on three routes in turn — a plain
# NDJSON route, `provider = "ollama"` (end marker + token usage on the Ollama-shaped mock) and `resume` with the
# memory store — ROUNDS times (default 5). Prints each run's proxy CPU per event; every stream is checked for
# every seq once and in order (loadgen). Bursts make the per-event cost visible: at paced rates a fixed
# ~0.2 µs is lost in the 12–30 µs an event costs there. See benches/README.md, "What route features cost".
#
#   benches/features-ab.sh            # uses target/release (or $CARGO_TARGET_DIR/release; SSEGATE_BIN=path
#                                     # overrides the ssegate binary); ROUNDS=N in the environment
set -euo pipefail
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
bench_binaries release 0
need_bins "cargo build --release -p ssegate -p ssegate-bench --bins" "$SSEGATE" "$MOCK" "$LOADGEN"
bench_init features
bench_nofile 0
bench_pinning
start_mock

# features_config PORT ADMIN_PORT: a plain route, a provider preset, the memory resume store.
features_config() {
    ssegate_server "$1" "$2" 1
    ssegate_route ndjson 'format = "ndjson"'
    ssegate_route usage 'provider = "ollama"'
    ssegate_route resume 'format = "ndjson"' 'resume = { store = "memory", max_bytes = "4MiB", ttl = "1s" }'
}
start_ssegate features_config "$WORK/g.toml" "$WORK/g.log"

Q="n=5000&pace_ms=0&size=100&batch=8"
for i in $(seq 1 "${ROUNDS:-5}"); do
    for r in ndjson usage resume; do
        "${PIN_LOAD[@]}" "$LOADGEN" stream --method POST --mock-pid "$MOCK_PID" --pid "$SSEGATE_PID" --target "$r" \
            --scenario burst --json "$WORK/$r-$i.json" --url "http://127.0.0.1:$SSEGATE_PORT/$r/api/chat?$Q" --parse sse \
            --expect 5000 --streams 10 --duration 3 --warmup 1 --ramp-rate 1000 >/dev/null
        python3 -c "import json,sys;d=json.load(open(sys.argv[1]));s=d['seq'];print(sys.argv[2], round(d['cpu_us_per_event'],3), 'µs/event; lost/dup/reordered', s['lost'], s['duplicated'], s['reordered'])" "$WORK/$r-$i.json" "$r"
    done
done
