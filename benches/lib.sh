# shellcheck shell=bash
# What the bench scripts share (run.sh, soak.sh, ab.sh and features-ab.sh source it): the binaries, CPU pinning,
# descriptors, free ports, readiness checks, ssegate configs, starting the processes and stopping them (only the
# PIDs a script started itself: another benchmark may run on the same machine), /proc samples, JSON fields.
# Everything listens on 127.0.0.1.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_NAME=$(basename "$0")
BENCH_PIDS=()   # processes this script started and has not reaped yet: stopped on exit
WORK=""         # the script's scratch directory (bench_init), removed on exit
PIN_PROXY=()    # command prefix pinning the system under test (bench_pinning)
PIN_LOAD=()     # command prefix pinning the mock upstream and the load generator
SSEGATE_ENV=()  # K=V environment of the ssegate process only
BENCH_LOG_GAP="" # non-empty: a blank line before each log line

# log MSG: a progress line on stderr.
log() { printf '%s== %s\n' "${BENCH_LOG_GAP:+$'\n'}" "$*" >&2; }

# die MSG: the message on stderr, exit 1.
die() {
    echo "$BENCH_NAME: $*" >&2
    exit 1
}

# bench_help: the script's leading comment block (its usage text).
bench_help() { awk 'NR > 1 && /^#/ {print; next} NR > 1 {exit}' "$0"; }

# bench_init NAME: a scratch directory /tmp/ssegate-NAME.XXXXXX in WORK; on exit every process still in
# BENCH_PIDS is stopped and WORK removed.
bench_init() {
    WORK=$(mktemp -d "/tmp/ssegate-$1.XXXXXX")
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

# bench_cleanup: SIGINT to every process in BENCH_PIDS (ssegate's and nginx's fast shutdown; pingora's SIGTERM
# would drain first), SIGKILL to those still there after 0.5 s, then WORK removed.
bench_cleanup() {
    local pid alive
    for pid in "${BENCH_PIDS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
    for _ in $(seq 1 10); do
        alive=0
        for pid in "${BENCH_PIDS[@]}"; do
            if [ -d "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then alive=1; fi
        done
        [ "$alive" = 1 ] || break
        sleep 0.05
    done
    for pid in "${BENCH_PIDS[@]}"; do
        kill -9 "$pid" 2>/dev/null || true
        { wait "$pid"; } 2>/dev/null || true
    done
    BENCH_PIDS=()
    [ -z "$WORK" ] || rm -rf "$WORK"
}

# track PID...: processes to stop on exit.
track() { BENCH_PIDS+=("$@"); }

# untrack PID...: processes that are gone (reaped): their numbers may be reused by other processes' children.
untrack() {
    local keep=() pid gone
    for pid in "${BENCH_PIDS[@]}"; do
        for gone in "$@"; do [ "$pid" != "$gone" ] || continue 2; done
        keep+=("$pid")
    done
    BENCH_PIDS=("${keep[@]}")
}

# stop_pid PID SIGNAL: signals a process this script started, waits for it to exit and forgets it (nothing
# when PID is empty).
stop_pid() {
    [ -n "$1" ] || return 0
    kill -"$2" "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    untrack "$1"
}

# pid_tree PID: PID and all its descendants, one a line.
pid_tree() {
    local pid=$1 child children
    echo "$pid"
    children=$(cat /proc/"$pid"/task/*/children 2>/dev/null || pgrep -P "$pid" 2>/dev/null || true)
    for child in $children; do
        pid_tree "$child"
    done
}

# bench_pinning: with 2 CPUs or more the system under test on CPU 1 (PIN_PROXY) and the mock upstream and the
# load generator on CPU 0 (PIN_LOAD); with one CPU everything on CPU 0. PINNING says which, for reports.
# shellcheck disable=SC2034 # PINNING is for the sourcing script
bench_pinning() {
    if [ "$(nproc)" -ge 2 ]; then
        PIN_PROXY=(taskset -c 1)
        PINNING="system under test on CPU 1 (taskset -c 1, one worker/thread), mock upstream and load generator on CPU 0 (taskset -c 0)"
    else
        PIN_PROXY=(taskset -c 0)
        PINNING="one CPU only: everything shares CPU 0"
    fi
    PIN_LOAD=(taskset -c 0)
}

# bench_nofile NEED: the descriptor limit raised to the hard limit (the hard limit first raised to NEED when it
# is lower, which needs CAP_SYS_RESOURCE; 0: no need); NOFILE is the limit reached (1048576 for unlimited).
bench_nofile() {
    local hard
    hard=$(ulimit -Hn)
    if [ "$hard" != unlimited ] && [ "$hard" -lt "$1" ]; then
        ulimit -Hn "$1" 2>/dev/null || true
    fi
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    NOFILE=$(ulimit -n)
    if [ "$NOFILE" = unlimited ]; then NOFILE=1048576; fi
}

# bench_binaries PROFILE BUILD: with BUILD=1 builds ssegate (unless SSEGATE_BIN is set) and the bench binaries in
# PROFILE (debug or release); sets SSEGATE (SSEGATE_BIN or the built one), MOCK and LOADGEN, from
# $CARGO_TARGET_DIR/PROFILE (default target/PROFILE).
# shellcheck disable=SC2034 # MOCK and LOADGEN are for the sourcing script
bench_binaries() {
    local pflag=()
    [ "$1" = release ] && pflag=(--release)
    if [ "$2" = 1 ]; then
        log "building $1 binaries"
        [ -n "${SSEGATE_BIN:-}" ] || (cd "$ROOT" && cargo build "${pflag[@]}" -p ssegate)
        (cd "$ROOT" && cargo build "${pflag[@]}" -p ssegate-bench --bins)
    fi
    local dir=${CARGO_TARGET_DIR:-$ROOT/target}/$1
    SSEGATE=${SSEGATE_BIN:-$dir/ssegate}
    MOCK=$dir/mock-upstream
    LOADGEN=$dir/loadgen
}

# need_bins HINT FILE...: exits with HINT unless every FILE is an executable.
need_bins() {
    local hint=$1 bin
    shift
    for bin in "$@"; do
        [ -x "$bin" ] || die "$bin is missing ($hint)"
    done
}

# free_port: a port nothing listens on (probed with bash's /dev/tcp), below the ephemeral range (32768-60999 on
# Linux): an outgoing connection's source port in TIME_WAIT / FIN_WAIT would make a later bind fail. Another
# process may still take it before it is bound: start_ssegate retries.
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

# http_get HOST PORT PATH: the whole answer (head and body) of a GET, nothing when nothing answers.
http_get() {
    (exec 3<>"/dev/tcp/$1/$2" && printf 'GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$3" "$1" >&3 \
        && cat <&3) 2>/dev/null || true
}

# http_status HOST PORT PATH: the status code of a GET (000 when nothing answers).
http_status() {
    local line
    line=$( (exec 3<>"/dev/tcp/$1/$2" && printf 'GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$3" "$1" >&3 \
        && head -c 12 <&3) 2>/dev/null || true)
    line=${line#HTTP/1.? }
    echo "${line:0:3}" | grep -E '^[0-9]{3}$' || echo 000
}

# wait_status HOST PORT PATH WANT SECONDS [PID]: waits until a GET answers WANT; fails after SECONDS, or at once
# when PID (the process meant to answer) has exited.
wait_status() {
    for _ in $(seq 1 $(( $5 * 50 ))); do
        [ "$(http_status "$1" "$2" "$3")" = "$4" ] && return 0
        if [ -n "${6:-}" ] && ! kill -0 "$6" 2>/dev/null; then
            echo "$BENCH_NAME: the process meant to answer on http://$1:$2 ($6) exited" >&2
            return 1
        fi
        sleep 0.02
    done
    echo "$BENCH_NAME: http://$1:$2$3 did not answer $4 within $5 s" >&2
    return 1
}

# start_mock: the bench mock upstream on a port of its own choosing (PIN_LOAD), MOCK_PID and MOCK_PORT set.
start_mock() {
    rm -f "$WORK/mock.addr"
    "${PIN_LOAD[@]}" "$MOCK" --listen 127.0.0.1:0 --addr-file "$WORK/mock.addr" >/dev/null 2>"$WORK/mock.err" &
    MOCK_PID=$!
    track "$MOCK_PID"
    for _ in $(seq 1 250); do [ -s "$WORK/mock.addr" ] && break; sleep 0.02; done
    [ -s "$WORK/mock.addr" ] || die "the mock upstream did not start: $(cat "$WORK/mock.err")"
    MOCK_PORT=$(cut -d: -f2 "$WORK/mock.addr")
}

# ssegate_server PORT ADMIN_PORT THREADS [LINE...]: the [server] table (with LINEs verbatim) and [admin].
ssegate_server() {
    printf '[server]\nlisten = ["127.0.0.1:%s"]\nthreads = %s\n' "$1" "$3"
    local admin=$2
    shift 3
    [ $# -eq 0 ] || printf '%s\n' "$@"
    printf '\n[admin]\nlisten = "127.0.0.1:%s"\n' "$admin"
}

# ssegate_route NAME [LINE...]: a [[route]] NAME at path /NAME to the mock upstream, with LINEs verbatim.
ssegate_route() {
    printf '\n[[route]]\nname = "%s"\npath_prefix = "/%s"\nupstream = "http://127.0.0.1:%s"\n' "$1" "$1" "$MOCK_PORT"
    shift
    [ $# -eq 0 ] || printf '%s\n' "$@"
}

# start_ssegate WRITER CONFIG LOG: starts $SSEGATE (PIN_PROXY, RUST_LOG=warn and SSEGATE_ENV) with the config
# `WRITER PORT ADMIN_PORT` prints, into CONFIG, on two free ports, and waits for /readyz; a process that exits
# first (a port taken in between, by a concurrent benchmark say) is retried twice on other ports. Sets
# SSEGATE_PID (ssegate's own: taskset and env exec it), SSEGATE_PORT, ADMIN_PORT.
start_ssegate() {
    local attempt
    for attempt in 1 2 3; do
        SSEGATE_PORT=$(free_port)
        ADMIN_PORT=$(free_port)
        [ "$ADMIN_PORT" != "$SSEGATE_PORT" ] || continue
        "$1" "$SSEGATE_PORT" "$ADMIN_PORT" >"$2"
        "${PIN_PROXY[@]}" env RUST_LOG=warn "${SSEGATE_ENV[@]}" "$SSEGATE" run --config "$2" >"$3" 2>&1 &
        SSEGATE_PID=$!
        track "$SSEGATE_PID"
        wait_status 127.0.0.1 "$ADMIN_PORT" /readyz 200 10 "$SSEGATE_PID" && kill -0 "$SSEGATE_PID" 2>/dev/null && return 0
        if kill -0 "$SSEGATE_PID" 2>/dev/null; then
            die "ssegate did not become ready (log: $(tail -3 "$3"))"
        fi
        stop_pid "$SSEGATE_PID" KILL
        echo "$BENCH_NAME: ssegate exited before ready (attempt $attempt: $(tail -1 "$3"))" >&2
    done
    die "ssegate did not start"
}

# stop_ssegate: SIGINT (pingora's fast shutdown: nothing to drain between scenarios) and wait.
stop_ssegate() {
    stop_pid "${SSEGATE_PID:-}" INT
    SSEGATE_PID=""
}

# proc_rss_kib PID: resident memory (VmRSS) in KiB.
proc_rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# proc_fds PID: open descriptors.
proc_fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# proc_cpu_ticks PID: user + system CPU time in clock ticks (getconf CLK_TCK a second).
proc_cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# json_get FILE PATH: the value at a dotted PATH of a JSON file (objects and lists as compact JSON; 0 when the
# file is missing). Without jq: python3 is on every CI machine.
json_get() {
    python3 -c 'import json, sys
try:
    v = json.load(open(sys.argv[1]))
except OSError:
    print(0); sys.exit()
for k in sys.argv[2].split("."):
    v = v[k]
print(json.dumps(v, separators=(",", ":")) if isinstance(v, (dict, list)) else v)' "$1" "$2"
}
