#!/usr/bin/env bash
# Load benchmarks of ssegate next to the floor (the mock read directly), nginx and (optionally) LiteLLM.
# See benches/README.md for what is measured and how.
#
#   benches/run.sh                  # full run (about 5 minutes after the builds, 6 with LiteLLM)
#   benches/run.sh --quick          # small counts, about 2 minutes: for development
#   benches/run.sh --with-litellm   # also LiteLLM (pip install 'litellm[proxy]' into a venv, first time only)
#
# Options: --out DIR (default benches/results/<UTC date-time>), --no-build (use the binaries in target/release,
# or $CARGO_TARGET_DIR/release when set; SSEGATE_BIN=path overrides the ssegate binary), --conditions TEXT (how
# busy the machine was, for the report).
#
# Results: DIR/*.json (one per measurement, from `loadgen`), DIR/meta.json, DIR/report.md (the tables,
# also printed at the end). Every process this script starts is killed on exit; traffic stays on 127.0.0.1.
set -euo pipefail
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
BENCH_LOG_GAP=1

QUICK=0
LITELLM=0
BUILD=1
OUT=""
CONDITIONS="${BENCH_CONDITIONS:-}"
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --with-litellm) LITELLM=1 ;;
        --no-build) BUILD=0 ;;
        --out) OUT="$2"; shift ;;
        --conditions) CONDITIONS="$2"; shift ;;
        -h|--help) bench_help; exit 0 ;;
        *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
OUT=${OUT:-$ROOT/benches/results/$STAMP}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
bench_init bench
RUN_START=$(date +%s)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# --- machine -----------------------------------------------------------------------------------------------

# File descriptors: 9,000 idle streams need ~18,000 in a proxy (client + upstream socket each).
bench_nofile 0
NCPU=$(nproc)
bench_pinning

# --- scenario sizes ----------------------------------------------------------------------------------------

PACED="n=200&pace_ms=10&size=100"
BURST="n=5000&pace_ms=0&size=100&batch=8"
LITELLM_BURST="n=1000&pace_ms=0&size=100&batch=8"
LITELLM_BURST_STREAMS=4
if [ "$QUICK" = 1 ]; then
    STREAMS=(1 20 100)
    WINDOW=(2 2 2)
    WARMUP=0.5
    BURST_STREAMS=4
    BURST_WINDOW=2
    IDLE_STREAMS=500
    IDLE_HOLD=3
    READY_RUNS=5
else
    STREAMS=(1 50 500)
    WINDOW=(6 8 10)
    WARMUP=1
    BURST_STREAMS=20
    BURST_WINDOW=6
    IDLE_STREAMS=9000
    IDLE_HOLD=10
    READY_RUNS=20
fi
# A proxied idle stream costs the proxy two descriptors; keep 500 spare.
MAX_IDLE=$(( (NOFILE - 500) / 2 ))
if [ "$IDLE_STREAMS" -gt "$MAX_IDLE" ]; then
    echo "run.sh: ulimit -n is $NOFILE: idle scenario reduced to $MAX_IDLE streams" >&2
    IDLE_STREAMS=$MAX_IDLE
fi

# nginx preallocates its connection table: enough for the idle scenario, not the whole descriptor limit.
NGINX_CONNS=$(( 2 * IDLE_STREAMS + 2000 ))
if [ "$NGINX_CONNS" -gt $(( NOFILE - 100 )) ]; then NGINX_CONNS=$(( NOFILE - 100 )); fi

# --- build and install -------------------------------------------------------------------------------------

bench_binaries release "$BUILD"
need_bins "run without --no-build" "$SSEGATE" "$MOCK" "$LOADGEN"

if ! command -v nginx >/dev/null 2>&1; then
    log "installing nginx (Debian package)"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y --no-install-recommends nginx >/dev/null 2>&1 || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y --no-install-recommends nginx >/dev/null; }
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if [ "$LITELLM" = 1 ]; then
    VENV=${LITELLM_VENV:-$HOME/.cache/ssegate-bench/litellm-venv}
    if [ ! -x "$VENV/bin/litellm" ]; then
        log "installing LiteLLM into $VENV"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q 'litellm[proxy]'
    fi
fi

# --- helpers -----------------------------------------------------------------------------------------------

# run_config PORT ADMIN_PORT: ssegate's config of the load benchmarks (one worker thread, a route per target).
run_config() {
    ssegate_server "$1" "$2" 1 'shutdown_drain = "0s"' "pid_file = \"$WORK/ssegate-$1.pid\"" \
        "upgrade_sock = \"$WORK/ssegate-$1.sock\""
    ssegate_route ndjson 'format = "ndjson"'
    ssegate_route sse 'format = "sse"'
    ssegate_route usage 'provider = "ollama"'
    ssegate_route resume 'format = "ndjson"' 'resume = { store = "memory", max_bytes = "4MiB", ttl = "10m" }'
    ssegate_route idle 'format = "ndjson"' 'heartbeat_interval = "1s"'
}

# restart_ssegate: a fresh ssegate (the previous one stopped), warmed up by one request so that the baseline
# includes the first-use allocations.
restart_ssegate() {
    stop_ssegate
    start_ssegate run_config "$WORK/ssegate.toml" "$WORK/ssegate.log"
    wait_status 127.0.0.1 "$SSEGATE_PORT" "/ndjson/api/chat?n=1&pace_ms=0" 200 5 "$SSEGATE_PID"
}

NGINX_PID=""
NGINX_PORT=""
NGINX_PIDS=()
start_nginx() {
    stop_nginx
    NGINX_PORT=$(free_port)
    local dir="$WORK/nginx"
    rm -rf "$dir"
    mkdir -p "$dir"
    cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
worker_rlimit_nofile $NOFILE;
events { worker_connections $NGINX_CONNS; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    upstream mock {
        server 127.0.0.1:$MOCK_PORT;
        keepalive 512;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=8192;
        location / {
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 3600s;
        }
    }
}
EOF
    "${PIN_PROXY[@]}" "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/out.log" 2>&1 &
    NGINX_PID=$!
    track "$NGINX_PID"
    wait_status 127.0.0.1 "$NGINX_PORT" "/api/chat?n=1&pace_ms=0" 200 10 "$NGINX_PID"
    mapfile -t NGINX_PIDS < <(pid_tree "$NGINX_PID")
    track "${NGINX_PIDS[@]:1}"
}

# The master's SIGTERM stops its workers too.
stop_nginx() {
    [ -z "$NGINX_PID" ] || untrack "${NGINX_PIDS[@]}"
    stop_pid "$NGINX_PID" TERM
    NGINX_PID=""
}

LITELLM_PID=""
LITELLM_PORT=""
LITELLM_PIDS=()
start_litellm() {
    LITELLM_PORT=$(free_port)
    cat >"$WORK/litellm.yaml" <<EOF
model_list:
  - model_name: paced
    litellm_params:
      model: ollama_chat/x
      api_base: "http://127.0.0.1:$MOCK_PORT/_/$PACED"
  - model_name: burst
    litellm_params:
      model: ollama_chat/x
      api_base: "http://127.0.0.1:$MOCK_PORT/_/$LITELLM_BURST"
general_settings:
  master_key: sk-ssegate-bench
litellm_settings:
  telemetry: false
  drop_params: true
EOF
    LITELLM_LOCAL_MODEL_COST_MAP=True "${PIN_PROXY[@]}" "$VENV/bin/litellm" --config "$WORK/litellm.yaml" \
        --host 127.0.0.1 --port "$LITELLM_PORT" --num_workers 1 >"$WORK/litellm.log" 2>&1 &
    LITELLM_PID=$!
    track "$LITELLM_PID"
    wait_status 127.0.0.1 "$LITELLM_PORT" /health/liveliness 200 120 "$LITELLM_PID"
    mapfile -t LITELLM_PIDS < <(pid_tree "$LITELLM_PID")
    track "${LITELLM_PIDS[@]:1}"
}

# The processes of the system under test (the proxy measured); loadgen reads their CPU and RSS.
SUT_PIDS=()
# loadgen MODE TARGET SCENARIO NAME [loadgen args...]: one measurement, the result in OUT/NAME--TARGET.json.
loadgen() {
    local mode=$1 target=$2 scenario=$3 name=$4 pid args=()
    shift 4
    for pid in "${SUT_PIDS[@]}"; do args+=(--pid "$pid"); done
    "${PIN_LOAD[@]}" "$LOADGEN" "$mode" --method POST --mock-pid "$MOCK_PID" "${args[@]}" \
        --target "$target" --scenario "$scenario" --json "$OUT/$name--$target.json" "$@" >/dev/null
}

# stream TARGET SCENARIO URL PARSE FLOOR STREAMS WINDOW EXPECT [extra loadgen args...]
stream() {
    local target=$1 scenario=$2 url=$3 parse=$4 floor=$5 streams=$6 window=$7 expect=$8
    shift 8
    local args=(--url "$url" --parse "$parse" --expect "$expect" --streams "$streams"
        --duration "$window" --warmup "$WARMUP" --ramp-rate 1000)
    [ "$floor" = - ] || args+=(--floor "$floor")
    loadgen stream "$target" "$scenario" "$scenario" "${args[@]}" "$@"
}

# idle TARGET URL: IDLE_STREAMS streams that stay open without messages (the upstream's first one is 10 minutes
# away), held IDLE_HOLD seconds.
idle() {
    loadgen idle "$1" "idle-$IDLE_STREAMS" idle --url "$2?n=1&first_ms=600000" --streams "$IDLE_STREAMS" \
        --ramp-rate 3000 --hold "$IDLE_HOLD"
}

# run_target TARGET SCENARIO STREAMS WINDOW paced|burst: one target in one scenario.
run_target() {
    local target=$1 scenario=$2 streams=$3 window=$4 mode=$5 q=$PACED expect=200
    if [ "$mode" = burst ]; then q=$BURST; expect=5000; fi
    local nd="/api/chat?$q" sse="/v1/chat/completions?$q"
    case "$target" in
        direct-ndjson) SUT_PIDS=(); stream "$target" "$scenario" "http://127.0.0.1:$MOCK_PORT$nd" ndjson - "$streams" "$window" "$expect" ;;
        direct-sse) SUT_PIDS=(); stream "$target" "$scenario" "http://127.0.0.1:$MOCK_PORT$sse" sse - "$streams" "$window" "$expect" ;;
        ssegate-ndjson|ssegate-usage|ssegate-resume)
            SUT_PIDS=("$SSEGATE_PID")
            stream "$target" "$scenario" "http://127.0.0.1:$SSEGATE_PORT/${target#ssegate-}$nd" sse direct-ndjson \
                "$streams" "$window" "$expect" ;;
        ssegate-sse)
            SUT_PIDS=("$SSEGATE_PID")
            stream "$target" "$scenario" "http://127.0.0.1:$SSEGATE_PORT/sse$sse" sse direct-sse "$streams" "$window" "$expect" ;;
        nginx-ndjson)
            SUT_PIDS=("${NGINX_PIDS[@]}")
            stream "$target" "$scenario" "http://127.0.0.1:$NGINX_PORT$nd" ndjson direct-ndjson "$streams" "$window" "$expect" ;;
        nginx-sse)
            SUT_PIDS=("${NGINX_PIDS[@]}")
            stream "$target" "$scenario" "http://127.0.0.1:$NGINX_PORT$sse" sse direct-sse "$streams" "$window" "$expect" ;;
        litellm)
            SUT_PIDS=("${LITELLM_PIDS[@]}")
            local model=paced
            if [ "$mode" = burst ]; then
                # Shorter bursts: LiteLLM delivers ~2,500 events/s on one core; 5,000-message streams would take minutes.
                model=burst; streams=$LITELLM_BURST_STREAMS; expect=1000
            fi
            stream litellm "$scenario" "http://127.0.0.1:$LITELLM_PORT/v1/chat/completions" sse direct-ndjson \
                "$streams" "$window" "$expect" --header "Authorization: Bearer sk-ssegate-bench" --read-timeout 60 \
                --body '{"model":"'"$model"'","messages":[{"role":"user","content":"hi"}],"stream":true}' ;;
    esac
}

# resume_retained PID HOST PORT: the memory resume store's retained bytes (its gauge), the events recorded on the
# `resume` route and the process's RSS, as a result file on stdout.
resume_retained() {
    local m
    m=$(http_get "$2" "$3" /metrics | tr -d '\r')
    local bytes events rss
    bytes=$(awk '/^ssegate_resume_retained_bytes[ {]/ {s += $NF} END {printf "%.0f", s}' <<<"$m")
    events=$(awk '/^ssegate_events_total\{/ && /route="resume"/ {s += $NF} END {printf "%.0f", s}' <<<"$m")
    rss=$(proc_rss_kib "$1")
    printf '{"kind": "resume", "target": "ssegate-resume", "scenario": "resume-retained", "retained_bytes": %s, "events": %s, "rss_kib": %s, "rss_start_kib": %s}\n' \
        "$bytes" "$events" "$rss" "$RSS_START"
}

# --- the runs ----------------------------------------------------------------------------------------------
# Scenario by scenario, every target back to back, so that whatever else runs on the machine affects the
# targets of one table alike. The proxies idle (no CPU) while another target is measured.

log "results in $OUT"
start_mock
restart_ssegate
RSS_START=$(proc_rss_kib "$SSEGATE_PID")
start_nginx
TARGETS=(direct-ndjson direct-sse ssegate-ndjson ssegate-usage ssegate-resume ssegate-sse nginx-ndjson nginx-sse)
for i in 0 1 2; do
    log "paced-${STREAMS[$i]}: ${STREAMS[$i]} streams, 10 ms between messages"
    for t in "${TARGETS[@]}"; do
        run_target "$t" "paced-${STREAMS[$i]}" "${STREAMS[$i]}" "${WINDOW[$i]}" paced
    done
done
log "ssegate: what the memory resume store retains for the paced streams above (ttl 10m: all of them)"
resume_retained "$SSEGATE_PID" 127.0.0.1 "$ADMIN_PORT" >"$OUT/resume-retained--ssegate.json"
cat "$OUT/resume-retained--ssegate.json" >&2
log "ssegate: ${STREAMS[2]} streams again while /metrics is scraped every second"
SUT_PIDS=("$SSEGATE_PID")
stream ssegate-ndjson "paced-${STREAMS[2]}-scrape" "http://127.0.0.1:$SSEGATE_PORT/ndjson/api/chat?$PACED" sse direct-ndjson \
    "${STREAMS[2]}" "${WINDOW[2]}" 200 --scrape "http://127.0.0.1:$ADMIN_PORT/metrics"
log "burst: $BURST_STREAMS streams of 5,000 messages, 8 per write, no pause"
for t in "${TARGETS[@]}"; do
    run_target "$t" burst "$BURST_STREAMS" "$BURST_WINDOW" burst
done
log "ssegate: CPU per /metrics scrape (no streams open, every series populated)"
sleep 1
"${PIN_LOAD[@]}" "$LOADGEN" scrape --url "http://127.0.0.1:$ADMIN_PORT/metrics" --count 20 --pid "$SSEGATE_PID" \
    --target ssegate --json "$OUT/scrape--ssegate.json" >/dev/null
stop_ssegate
stop_nginx

if [ "$LITELLM" = 1 ]; then
    log "LiteLLM $("$VENV/bin/pip" show litellm 2>/dev/null | sed -n 's/^Version: //p') (paced-${STREAMS[0]}, paced-${STREAMS[1]}, a shorter burst)"
    start_litellm
    for i in 0 1; do
        run_target litellm "paced-${STREAMS[$i]}" "${STREAMS[$i]}" "${WINDOW[$i]}" paced
    done
    run_target litellm burst "$BURST_STREAMS" "$BURST_WINDOW" burst
    kill "${LITELLM_PIDS[@]}" 2>/dev/null || true
    untrack "${LITELLM_PIDS[@]}"
    stop_pid "$LITELLM_PID" TERM
fi

log "idle: $IDLE_STREAMS streams, ssegate (fresh process, heartbeat every 1 s)"
restart_ssegate
SUT_PIDS=("$SSEGATE_PID")
idle ssegate "http://127.0.0.1:$SSEGATE_PORT/idle/api/chat"
stop_ssegate

log "idle: $IDLE_STREAMS streams, nginx (fresh process, no heartbeats)"
start_nginx
SUT_PIDS=("${NGINX_PIDS[@]}")
idle nginx "http://127.0.0.1:$NGINX_PORT/api/chat"
stop_nginx

log "start → ready: $READY_RUNS starts of ssegate"
RPORT=$(free_port)
RADMIN=$(free_port)
run_config "$RPORT" "$RADMIN" >"$WORK/ready.toml"
# The load generator runs on the proxy's CPU here: it only polls, and ssegate inherits the pinning.
"${PIN_PROXY[@]}" "$LOADGEN" ready --admin "127.0.0.1:$RADMIN" --probe "http://127.0.0.1:$RPORT/ndjson/api/chat?n=1&pace_ms=0" \
    --runs "$READY_RUNS" --target ssegate --json "$OUT/ready--ssegate.json" -- "$SSEGATE" run --config "$WORK/ready.toml" >/dev/null

# --- report ------------------------------------------------------------------------------------------------

RUN_S=$(( $(date +%s) - RUN_START ))
if [ -n "${SSEGATE_BIN:-}" ]; then
    # A prebuilt binary: say where it came from (a file next to it, BIN.commit, may name the commit).
    SSEGATE_DESC=$SSEGATE_BIN
    if [ -f "$SSEGATE_BIN.commit" ]; then
        SSEGATE_DESC="$SSEGATE_DESC (built from $(cat "$SSEGATE_BIN.commit"))"
    fi
else
    SSEGATE_DESC="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet -- crates 2>/dev/null || echo ' with uncommitted changes in crates/')"
fi
CPU_MODEL=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
CMD="benches/run.sh"
[ "$QUICK" = 1 ] && CMD="$CMD --quick"
[ "$LITELLM" = 1 ] && CMD="$CMD --with-litellm"
if [ -z "$CONDITIONS" ]; then
    CONDITIONS="load average before the run $LOAD_BEFORE (other work on the machine shows there)"
fi
cat >"$OUT/meta.json" <<EOF
{
  "date": "$(date -u +'%Y-%m-%d %H:%M UTC')",
  "nproc": $NCPU,
  "cpu_model": "${CPU_MODEL//\"/}",
  "kernel": "$(uname -r)",
  "ssegate": "$SSEGATE_DESC",
  "nginx": "$("$NGINX" -v 2>&1 | sed 's/.*: //')",
  "command": "$CMD",
  "quick": $QUICK,
  "run_s": $RUN_S,
  "pinning": "$PINNING",
  "conditions": "${CONDITIONS//\"/}",
  "load_before": "$LOAD_BEFORE",
  "load_after": "$(cut -d' ' -f1-3 /proc/loadavg)"
}
EOF
"$LOADGEN" report --dir "$OUT" --out "$OUT/report.md"
log "done in ${RUN_S} s: $OUT/report.md"
