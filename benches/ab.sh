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
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
[ $# -ge 2 ] || { bench_help; exit 2; }
A=$1; B=$2; ROUNDS=${3:-3}
bench_binaries release 0
need_bins "cargo build --release -p ssegate-bench --bins" "$A" "$B" "$MOCK" "$LOADGEN"
bench_init ab
bench_nofile 0
bench_pinning
start_mock
echo "A = $A${A_NOTE:+ ($A_NOTE)}; B = $B${B_NOTE:+ ($B_NOTE)}; load average $(cut -d' ' -f1-3 /proc/loadavg)"

# ab_config PORT ADMIN_PORT: only keys every version accepts.
ab_config() {
    ssegate_server "$1" "$2" 1
    ssegate_route ndjson 'format = "ndjson"'
    ssegate_route idle 'format = "ndjson"' 'heartbeat_interval = "1s"'
}

# ab_start NAME: a fresh $SSEGATE, warmed up by one request.
ab_start() {
    start_ssegate ab_config "$WORK/g-$1.toml" "$WORK/$1.log"
    wait_status 127.0.0.1 "$SSEGATE_PORT" "/ndjson/api/chat?n=1&pace_ms=0" 200 5 "$SSEGATE_PID"
}

# ab_loadgen NAME MODE ARGS...: one loadgen measurement of the running ssegate (its human line in WORK).
ab_loadgen() {
    local name=$1 mode=$2
    shift 2
    "${PIN_LOAD[@]}" "$LOADGEN" "$mode" --mock-pid "$MOCK_PID" --pid "$SSEGATE_PID" --target "$name" "$@" \
        >/dev/null 2>>"$WORK/loadgen.err"
}

run() { # NAME BIN
    SSEGATE=$2
    ab_start "$1"
    ab_loadgen "$1" stream --method POST --scenario burst --json "$WORK/$1-b.json" \
        --url "http://127.0.0.1:$SSEGATE_PORT/ndjson/api/chat?n=5000&pace_ms=0&size=100&batch=8" --parse sse \
        --expect 5000 --streams 10 --duration 3 --warmup 1 --ramp-rate 1000
    ab_loadgen "$1" stream --method POST --scenario paced-50 --json "$WORK/$1-p.json" \
        --url "http://127.0.0.1:$SSEGATE_PORT/ndjson/api/chat?n=200&pace_ms=10&size=100" --parse sse \
        --expect 200 --streams 50 --duration 6 --warmup 1 --ramp-rate 1000
    stop_ssegate
    ab_start "$1"
    ab_loadgen "$1" idle --scenario idle-2000 --json "$WORK/$1-i.json" \
        --url "http://127.0.0.1:$SSEGATE_PORT/idle/api/chat?n=1&first_ms=600000" --streams 2000 \
        --ramp-rate 3000 --hold 8
    stop_ssegate
    python3 - "$WORK/$1-b.json" "$WORK/$1-p.json" "$WORK/$1-i.json" "$1" <<'PY'
import json, sys
b, p, i = (json.load(open(f)) for f in sys.argv[1:4])
bad = sum(r["seq"][k] for r in (b, p) for k in ("lost", "duplicated", "reordered"))
print(f"{sys.argv[4]}: burst {b['cpu_us_per_event']:.3f} µs/event | paced-50 {p['cpu_us_per_event']:.2f} µs/event"
      f" | idle {i['kib_per_stream']:.2f} KiB/stream ({i['streams_open']} open) | lost/dup/reordered {bad}")
PY
}
for i in $(seq 1 "$ROUNDS"); do run "A$i" "$A"; run "B$i" "$B"; done
