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

ROOT=$(cd "$(dirname "$0")/.." && pwd)
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
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
OUT=${OUT:-$ROOT/benches/results/$STAMP}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d /tmp/ssegate-bench.XXXXXX)
PIDS=()
RUN_START=$(date +%s)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

log() { printf '\n== %s\n' "$*" >&2; }

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    sleep 0.2
    for pid in "${PIDS[@]}"; do
        kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- machine -----------------------------------------------------------------------------------------------

# File descriptors: 9,000 idle streams need ~18,000 in a proxy (client + upstream socket each).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if [ "$NOFILE" = unlimited ]; then NOFILE=1048576; fi

NCPU=$(nproc)
if [ "$NCPU" -ge 2 ]; then
    PROXY_CPU=1
    LOAD_CPU=0
    PINNING="system under test on CPU 1 (taskset -c 1, one worker/thread), mock upstream and load generator on CPU 0 (taskset -c 0)"
else
    PROXY_CPU=0
    LOAD_CPU=0
    PINNING="one CPU only: everything shares CPU 0"
fi
PIN_PROXY=(taskset -c "$PROXY_CPU")
PIN_LOAD=(taskset -c "$LOAD_CPU")

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

cd "$ROOT"
if [ "$BUILD" = 1 ]; then
    log "building release binaries"
    if [ -z "${SSEGATE_BIN:-}" ]; then
        cargo build --release -p ssegate
    fi
    cargo build --release -p ssegate-bench --bins
fi
RELEASE=${CARGO_TARGET_DIR:-$ROOT/target}/release
SSEGATE=${SSEGATE_BIN:-$RELEASE/ssegate}
MOCK=$RELEASE/mock-upstream
LOADGEN=$RELEASE/loadgen
for bin in "$SSEGATE" "$MOCK" "$LOADGEN"; do
    [ -x "$bin" ] || { echo "run.sh: $bin is missing (run without --no-build)" >&2; exit 1; }
done

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

# A port nothing listens on (probed with bash's /dev/tcp), below the ephemeral range (32768-60999 on Linux):
# an outgoing connection's source port in TIME_WAIT / FIN_WAIT would make a later bind fail.
free_port() {
    local p
    while true; do
        p=$(( 20000 + RANDOM % 12000 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
}

# http_status HOST PORT PATH: the status code of a GET (000 when nothing answers).
http_status() {
    local line
    line=$( (exec 3<>"/dev/tcp/$1/$2" && printf 'GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$3" "$1" >&3 \
        && head -c 12 <&3) 2>/dev/null || true)
    line=${line#HTTP/1.? }
    echo "${line:0:3}" | grep -E '^[0-9]{3}$' || echo 000
}

wait_status() { # HOST PORT PATH WANT SECONDS
    local i
    for i in $(seq 1 $(( $5 * 50 ))); do
        [ "$(http_status "$1" "$2" "$3")" = "$4" ] && return 0
        sleep 0.02
    done
    echo "run.sh: http://$1:$2$3 did not answer $4 within $5 s" >&2
    return 1
}

# All descendants of a PID (and the PID itself).
pid_tree() {
    local pid=$1 child children
    echo "$pid"
    children=$(cat /proc/"$pid"/task/*/children 2>/dev/null || pgrep -P "$pid" 2>/dev/null || true)
    for child in $children; do
        pid_tree "$child"
    done
}

# stop_pid PID SIGNAL: signals a process this script started and waits for it to exit (nothing when PID is empty).
stop_pid() {
    [ -n "$1" ] || return 0
    kill -"$2" "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

MOCK_PID=""
MOCK_PORT=""
start_mock() {
    rm -f "$WORK/mock.addr"
    "${PIN_LOAD[@]}" "$MOCK" --listen 127.0.0.1:0 --addr-file "$WORK/mock.addr" >/dev/null 2>"$WORK/mock.err" &
    MOCK_PID=$!
    PIDS+=("$MOCK_PID")
    for _ in $(seq 1 250); do [ -s "$WORK/mock.addr" ] && break; sleep 0.02; done
    MOCK_PORT=$(cut -d: -f2 "$WORK/mock.addr")
}

SSEGATE_PID=""
SSEGATE_PORT=""
ADMIN_PORT=""
write_ssegate_config() { # FILE PORT ADMIN_PORT
    cat >"$1" <<EOF
[server]
listen = ["127.0.0.1:$2"]
threads = 1
shutdown_drain = "0s"
pid_file = "$WORK/ssegate-$2.pid"
upgrade_sock = "$WORK/ssegate-$2.sock"

[admin]
listen = "127.0.0.1:$3"

[[route]]
name = "ndjson"
path_prefix = "/ndjson"
upstream = "http://127.0.0.1:$MOCK_PORT"
format = "ndjson"

[[route]]
name = "sse"
path_prefix = "/sse"
upstream = "http://127.0.0.1:$MOCK_PORT"
format = "sse"

[[route]]
name = "usage"
path_prefix = "/usage"
upstream = "http://127.0.0.1:$MOCK_PORT"
provider = "ollama"

[[route]]
name = "resume"
path_prefix = "/resume"
upstream = "http://127.0.0.1:$MOCK_PORT"
format = "ndjson"
resume = { store = "memory", max_bytes = "4MiB", ttl = "10m" }

[[route]]
name = "idle"
path_prefix = "/idle"
upstream = "http://127.0.0.1:$MOCK_PORT"
format = "ndjson"
heartbeat_interval = "1s"
EOF
}

start_ssegate() {
    stop_ssegate
    SSEGATE_PORT=$(free_port)
    ADMIN_PORT=$(free_port)
    write_ssegate_config "$WORK/ssegate.toml" "$SSEGATE_PORT" "$ADMIN_PORT"
    RUST_LOG=warn "${PIN_PROXY[@]}" "$SSEGATE" run --config "$WORK/ssegate.toml" >"$WORK/ssegate.log" 2>&1 &
    SSEGATE_PID=$!
    PIDS+=("$SSEGATE_PID")
    wait_status 127.0.0.1 "$ADMIN_PORT" /readyz 200 10
    # One request so that the baseline includes the first-use allocations.
    wait_status 127.0.0.1 "$SSEGATE_PORT" "/ndjson/api/chat?n=1&pace_ms=0" 200 5
}

# SIGINT: pingora's fast shutdown (nothing to drain between scenarios).
stop_ssegate() { stop_pid "$SSEGATE_PID" INT; SSEGATE_PID=""; }

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
    PIDS+=("$NGINX_PID")
    wait_status 127.0.0.1 "$NGINX_PORT" "/api/chat?n=1&pace_ms=0" 200 10
    mapfile -t NGINX_PIDS < <(pid_tree "$NGINX_PID")
    PIDS+=("${NGINX_PIDS[@]}")
}

stop_nginx() { stop_pid "$NGINX_PID" TERM; NGINX_PID=""; }

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
    PIDS+=("$LITELLM_PID")
    wait_status 127.0.0.1 "$LITELLM_PORT" /health/liveliness 200 120
    mapfile -t LITELLM_PIDS < <(pid_tree "$LITELLM_PID")
    PIDS+=("${LITELLM_PIDS[@]}")
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
    local nd=/api/chat?$q sse=/v1/chat/completions?$q
    case "$target" in
        direct-ndjson) SUT_PIDS=(); stream "$target" "$scenario" "http://127.0.0.1:$MOCK_PORT$nd" ndjson - "$streams" "$window" "$expect" ;;
        direct-sse) SUT_PIDS=(); stream "$target" "$scenario" "http://127.0.0.1:$MOCK_PORT$sse" sse - "$streams" "$window" "$expect" ;;
        ssegate-ndjson)
            SUT_PIDS=("$SSEGATE_PID")
            stream "$target" "$scenario" "http://127.0.0.1:$SSEGATE_PORT/ndjson$nd" sse direct-ndjson "$streams" "$window" "$expect" ;;
        ssegate-usage)
            SUT_PIDS=("$SSEGATE_PID")
            stream "$target" "$scenario" "http://127.0.0.1:$SSEGATE_PORT/usage$nd" sse direct-ndjson "$streams" "$window" "$expect" ;;
        ssegate-resume)
            SUT_PIDS=("$SSEGATE_PID")
            stream "$target" "$scenario" "http://127.0.0.1:$SSEGATE_PORT/resume$nd" sse direct-ndjson "$streams" "$window" "$expect" ;;
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

scrape_cost() { # PID HOST PORT COUNT: CPU of PID per GET /metrics, as a result file on stdout
    local before after bytes=0 i
    before=$(cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {printf "%.0f", s}')
    for i in $(seq 1 "$4"); do
        bytes=$( (exec 3<>"/dev/tcp/$2/$3" && printf 'GET /metrics HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$2" >&3 && cat <&3) | wc -c)
    done
    after=$(cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {printf "%.0f", s}')
    printf '{"kind": "scrape", "target": "ssegate", "scenario": "scrape", "scrapes": %d, "bytes": %d, "cpu_ms_per_scrape": %s}\n' \
        "$4" "$bytes" "$(awk -v a="$before" -v b="$after" -v n="$4" 'BEGIN {printf "%.3f", (b - a) / n / 1e6}')"
}

# resume_retained PID HOST PORT: the memory resume store's retained bytes (its gauge), the events recorded on the
# `resume` route and the process's RSS, as a result file on stdout.
resume_retained() {
    local m
    m=$( (exec 3<>"/dev/tcp/$2/$3" && printf 'GET /metrics HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$2" >&3 && cat <&3) | tr -d '\r')
    local bytes events rss
    bytes=$(awk '/^ssegate_resume_retained_bytes[ {]/ {s += $NF} END {printf "%.0f", s}' <<<"$m")
    events=$(awk '/^ssegate_events_total\{/ && /route="resume"/ {s += $NF} END {printf "%.0f", s}' <<<"$m")
    rss=$(awk '/^VmRSS:/ {print $2}' /proc/"$1"/status)
    printf '{"kind": "resume", "target": "ssegate-resume", "scenario": "resume-retained", "retained_bytes": %s, "events": %s, "rss_kib": %s, "rss_start_kib": %s}\n' \
        "$bytes" "$events" "$rss" "$RSS_START"
}

# --- the runs ----------------------------------------------------------------------------------------------
# Scenario by scenario, every target back to back, so that whatever else runs on the machine affects the
# targets of one table alike. The proxies idle (no CPU) while another target is measured.

log "results in $OUT"
start_mock
start_ssegate
RSS_START=$(awk '/^VmRSS:/ {print $2}' /proc/"$SSEGATE_PID"/status)
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
scrape_cost "$SSEGATE_PID" 127.0.0.1 "$ADMIN_PORT" 20 >"$OUT/scrape--ssegate.json"
cat "$OUT/scrape--ssegate.json" >&2
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
fi

log "idle: $IDLE_STREAMS streams, ssegate (fresh process, heartbeat every 1 s)"
start_ssegate
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
write_ssegate_config "$WORK/ready.toml" "$RPORT" "$RADMIN"
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
