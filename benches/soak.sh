#!/usr/bin/env bash
# Soak test: one ssegate process under many concurrent streams for a long time (issue 17).
#
#   benches/soak.sh                      # 9,000 streams (8,000 idle + 1,000 active) for 10 minutes
#   benches/soak.sh --smoke              # CI size: 300 streams (250 idle + 50 active) for 45 s
#   benches/soak.sh --streams 9000 --active 1000 --duration 150
#
# Options: --streams N (all streams, idle + active), --active M (paced streams that end and are replaced
# continuously), --duration S (seconds the full load is held), --messages K and --pace-ms P (per active
# stream: K messages, P ms apart), --heartbeat D (idle streams' heartbeat interval, e.g. 1s), --threads T
# (ssegate worker threads), --out DIR (default benches/results/soak-<UTC date-time>), --no-build (use the
# binaries in target/release, or $CARGO_TARGET_DIR/release; SSEGATE_BIN=path overrides the ssegate binary),
# --profile debug|release, --linger S (seconds to wait after the load for idle pooled upstream connections to expire; 65, smoke 0),
# --ssegate-env K=V (repeatable: an environment variable for the ssegate process only, e.g. MALLOC_ARENA_MAX=2 or
# LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2 to compare allocators; recorded in soak.json).
#
# What it checks (exit status 1 when one fails): every active stream delivered every sequence number once and in
# order (0 lost, 0 duplicated, 0 reordered, 0 unexpected), no stream failed, every idle stream was still open at
# the end, ssegate's open descriptors came back to the baseline after the load (apart from idle pooled upstream
# connections, which must be gone too after --linger), and RSS did not grow over the
# second half of the hold (end − middle ≤ max(4 MiB, 10 % of middle)). Reported: events delivered, RSS at the
# start (every stream open) / middle / end of the hold and after the load, its slope (least squares over the
# samples of the hold), descriptors before / during / after, ssegate CPU (% of one core over the hold).
# Everything listens on 127.0.0.1; every process the script starts is killed on exit; it ends by itself.
set -euo pipefail
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"

STREAMS=9000
ACTIVE=1000
DURATION=600
MESSAGES=50
PACE_MS=100
HEARTBEAT=1s
THREADS=1
BUILD=1
PROFILE=release
OUT=""
SAMPLE_S=5
LINGER=65
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) STREAMS=300; ACTIVE=50; DURATION=45; SAMPLE_S=1; LINGER=0 ;;
        --linger) LINGER="$2"; shift ;;
        --streams) STREAMS="$2"; shift ;;
        --active) ACTIVE="$2"; shift ;;
        --duration) DURATION="$2"; shift ;;
        --messages) MESSAGES="$2"; shift ;;
        --pace-ms) PACE_MS="$2"; shift ;;
        --heartbeat) HEARTBEAT="$2"; shift ;;
        --threads) THREADS="$2"; shift ;;
        --sample) SAMPLE_S="$2"; shift ;;
        --no-build) BUILD=0 ;;
        --profile) PROFILE="$2"; shift ;;
        --out) OUT="$2"; shift ;;
        --ssegate-env)
            case "$2" in *=*) SSEGATE_ENV+=("$2") ;; *) echo "soak.sh: --ssegate-env needs K=V" >&2; exit 2 ;; esac
            shift ;;
        -h|--help) bench_help; exit 0 ;;
        *) echo "soak.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
IDLE=$(( STREAMS - ACTIVE ))
if [ "$IDLE" -lt 0 ] || [ "$ACTIVE" -lt 1 ] || [ "$DURATION" -lt 4 ]; then
    echo "soak.sh: need --active ≥ 1, --active ≤ --streams and --duration ≥ 4" >&2
    exit 2
fi

STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
# The commit checked out when the run starts (a commit made during a long run must not be recorded).
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?")
OUT=${OUT:-$ROOT/benches/results/soak-$STAMP}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
bench_init soak

# Descriptors: the proxy holds two per stream (client + upstream; + at most 128 pooled upstream connections),
# the mock and the load generators one each. Raising the hard limit needs CAP_SYS_RESOURCE.
NEED=$(( 2 * STREAMS + 500 ))
bench_nofile "$NEED"
[ "$NOFILE" -ge "$NEED" ] || die "ulimit -n is $NOFILE, $NEED needed for $STREAMS streams"

bench_binaries "$PROFILE" "$BUILD"
need_bins "run without --no-build" "$SSEGATE" "$MOCK" "$LOADGEN"

# --- processes ---------------------------------------------------------------------------------------------

# soak_config PORT ADMIN_PORT: an `active` route and an `idle` one with heartbeats.
soak_config() {
    ssegate_server "$1" "$2" "$THREADS" 'shutdown_drain = "0s"' "pid_file = \"$WORK/ssegate.pid\"" \
        "upgrade_sock = \"$WORK/ssegate.sock\""
    ssegate_route active 'format = "ndjson"'
    # Idle streams outlive the defaults (idle_timeout 300 s, max_duration 1 h) in long soaks.
    ssegate_route idle 'format = "ndjson"' "heartbeat_interval = \"$HEARTBEAT\"" 'idle_timeout = "24h"' 'max_duration = "0s"'
}

start_mock
# RSS, descriptors and CPU are read from /proc/SSEGATE_PID (ssegate's own PID: env execs it).
start_ssegate soak_config "$WORK/ssegate.toml" "$OUT/ssegate.log"
PORT=$SSEGATE_PORT
# A few requests first, so that the baseline includes the first-use allocations and pooled connections.
for _ in 1 2 3; do wait_status 127.0.0.1 "$PORT" "/active/api/chat?n=1&pace_ms=0" 200 5 "$SSEGATE_PID"; done
sleep 1

rss_kib() { proc_rss_kib "$SSEGATE_PID"; }
fds() { proc_fds "$SSEGATE_PID"; }
cpu_ticks() { proc_cpu_ticks "$SSEGATE_PID"; }
# ssegate's sockets connected to the mock: idle pooled upstream connections once the load is over (pingora keeps
# them up to 60 s, POOL_IDLE in exchange/pump.rs, at most 128 per upstream).
upstream_socks() {
    local port_hex inodes
    port_hex=$(printf '%04X' "$MOCK_PORT")
    inodes=$(find "/proc/$SSEGATE_PID/fd" -mindepth 1 -maxdepth 1 -printf '%l\n' 2>/dev/null | sed -n 's/^socket:\[\([0-9]*\)\]$/\1/p' | sort -u)
    awk -v p="$port_hex" 'NR>1 { split($3, r, ":"); if (r[2] == p) print $10 }' /proc/net/tcp | sort -u | comm -12 - <(echo "$inodes") | wc -l
}
TCK=$(getconf CLK_TCK)

RSS_BASE=$(rss_kib)
FDS_BASE=$(fds)
POOL_BASE=$(upstream_socks)
log "ssegate $SSEGATE_PID ready: RSS $RSS_BASE KiB, $FDS_BASE descriptors; $STREAMS streams ($IDLE idle, $ACTIVE active) for $DURATION s"

# --- load --------------------------------------------------------------------------------------------------

IDLE_RAMP=3000
ACTIVE_RAMP=1000
ACTIVE_RAMP_S=$(( (ACTIVE + ACTIVE_RAMP - 1) / ACTIVE_RAMP ))
T0=$(date +%s.%N)
LG_PIDS=()
if [ "$IDLE" -gt 0 ]; then
    "$LOADGEN" idle --url "http://127.0.0.1:$PORT/idle/api/chat?n=1&first_ms=3600000" --streams "$IDLE" \
        --ramp-rate "$IDLE_RAMP" --settle 2 --hold "$DURATION" --pid "$SSEGATE_PID" --mock-pid "$MOCK_PID" \
        --target ssegate --scenario "soak-idle-$IDLE" --json "$OUT/idle.json" >/dev/null 2>"$OUT/idle.err" &
    LG_PIDS+=($!)
    track $!
fi
# The active streams' window ends with the idle hold (idle: ramp + settle 2 s + hold).
IDLE_OPEN_S=$(( IDLE > 0 ? (IDLE + IDLE_RAMP - 1) / IDLE_RAMP + 2 : 0 ))
WINDOW=$(( DURATION + IDLE_OPEN_S - ACTIVE_RAMP_S ))
"$LOADGEN" stream --url "http://127.0.0.1:$PORT/active/api/chat?n=$MESSAGES&pace_ms=$PACE_MS&size=100" \
    --parse sse --expect "$MESSAGES" --streams "$ACTIVE" --ramp-rate "$ACTIVE_RAMP" --warmup 0 --duration "$WINDOW" \
    --pid "$SSEGATE_PID" --mock-pid "$MOCK_PID" --target ssegate --scenario "soak-active-$ACTIVE" \
    --json "$OUT/active.json" >/dev/null 2>"$OUT/active.err" &
LG_PIDS+=($!)
track $!

# Samples every SAMPLE_S seconds: seconds since the start, RSS KiB, descriptors, CPU ticks.
echo "t_s,rss_kib,fds,cpu_ticks" >"$OUT/samples.csv"
sample() { printf '%s,%s,%s,%s\n' "$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')" \
    "$(rss_kib)" "$(fds)" "$(cpu_ticks)" >>"$OUT/samples.csv"; }
# The hold starts once every stream is open (two descriptors each in ssegate) and settled; it ends 2 s before
# the idle load generator's hold does (it starts counting only once all its streams are open, plus 2 s).
END_AT=$(awk -v a="$T0" -v o="$IDLE_OPEN_S" -v d="$DURATION" 'BEGIN{printf "%.3f", a + o + d - 2}')
for _ in $(seq 1 600); do
    [ "$(fds)" -ge $(( FDS_BASE + 2 * STREAMS * 95 / 100 )) ] && break
    sleep 0.1
done
sleep 2
HOLD_START=$(date +%s.%N)
HOLD_FROM=$(awk -v a="$T0" -v b="$HOLD_START" 'BEGIN{printf "%.1f", b-a}')
CPU_START=$(cpu_ticks)
RSS_START=$(rss_kib)
FDS_OPEN=$(fds)
sample
MID_AT=$(awk -v a="$HOLD_START" -v e="$END_AT" 'BEGIN{printf "%.3f", (a + e) / 2}')
RSS_MID=""
while :; do
    now=$(date +%s.%N)
    left=$(awk -v n="$now" -v e="$END_AT" -v s="$SAMPLE_S" 'BEGIN{l = e - n; if (l > s) l = s; printf "%.3f", l}')
    if awk -v l="$left" 'BEGIN{exit !(l <= 0)}'; then break; fi
    if [ -z "$RSS_MID" ] && awk -v n="$now" -v m="$MID_AT" 'BEGIN{exit !(n >= m)}'; then RSS_MID=$(rss_kib); fi
    kill -0 "$SSEGATE_PID" 2>/dev/null || { echo "soak.sh: ssegate exited during the soak" >&2; exit 1; }
    sleep "$left"
    sample
done
RSS_END=$(rss_kib)
FDS_END_HOLD=$(fds)
CPU_END=$(cpu_ticks)
HOLD_END=$(date +%s.%N)
[ -n "$RSS_MID" ] || RSS_MID=$RSS_END

LG_FAIL=0
for pid in "${LG_PIDS[@]}"; do wait "$pid" || LG_FAIL=1; done
untrack "${LG_PIDS[@]}"
# Descriptors back to the baseline: everything but the idle pooled upstream connections at once, those after
# their 60 s idle time (waited for with --linger 65, the default of long runs).
for _ in $(seq 1 50); do
    FDS_AFTER=$(fds)
    POOL_AFTER=$(upstream_socks)
    [ $(( FDS_AFTER - POOL_AFTER )) -le $(( FDS_BASE - POOL_BASE )) ] && break
    sleep 0.2
done
if [ "$LINGER" -gt 0 ]; then
    log "waiting $LINGER s for the pooled upstream connections ($POOL_AFTER) to expire"
    sleep "$LINGER"
fi
FDS_LINGER=$(fds)
POOL_LINGER=$(upstream_socks)
sleep 1
RSS_AFTER=$(rss_kib)
sample
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report ------------------------------------------------------------------------------------------------

HOLD_S=$(awk -v a="$HOLD_START" -v b="$HOLD_END" 'BEGIN{printf "%.1f", b-a}')
CPU_PCT=$(awk -v a="$CPU_START" -v b="$CPU_END" -v t="$TCK" -v s="$HOLD_S" 'BEGIN{printf "%.1f", (b-a)/t/s*100}')
# Least-squares slope of RSS over the hold's samples, KiB per minute.
SLOPE=$(awk -F, -v lo="$HOLD_FROM" -v hi="$(awk -v a="$T0" -v b="$HOLD_END" 'BEGIN{print b-a}')" \
    'NR>1 && $1>=lo && $1<=hi {n++; sx+=$1; sy+=$2; sxx+=$1*$1; sxy+=$1*$2}
     END{ if (n<2 || n*sxx-sx*sx==0) print 0; else printf "%.1f", (n*sxy-sx*sy)/(n*sxx-sx*sx)*60 }' "$OUT/samples.csv")

A=$OUT/active.json
I=$OUT/idle.json
[ -s "$A" ] || { echo "soak.sh: no result from the active streams ($(cat "$OUT/active.err"))" >&2; exit 1; }
EVENTS=$(json_get "$A" events_total)
LOST=$(json_get "$A" seq.lost); DUP=$(json_get "$A" seq.duplicated); REORD=$(json_get "$A" seq.reordered); UNEXP=$(json_get "$A" seq.unexpected)
COMPLETED=$(json_get "$A" streams_completed); FAILED_A=$(json_get "$A" streams_failed)
IDLE_OPEN=$(json_get "$I" streams_open); IDLE_OPEN_END=$(json_get "$I" streams_open_at_end); FAILED_I=$(json_get "$I" streams_failed)
HB=$(json_get "$I" heartbeats_total)

FAIL=()
[ "$LG_FAIL" = 0 ] || FAIL+=("a load generator failed")
[ "$LOST/$DUP/$REORD/$UNEXP" = 0/0/0/0 ] || FAIL+=("lost/dup/reordered/unexpected $LOST/$DUP/$REORD/$UNEXP")
[ "$FAILED_A" = 0 ] || FAIL+=("$FAILED_A active streams failed: $(json_get "$A" errors)")
[ "$FAILED_I" = 0 ] || FAIL+=("$FAILED_I idle streams failed: $(json_get "$I" errors)")
[ "$IDLE_OPEN_END" = "$IDLE" ] || FAIL+=("$IDLE_OPEN_END of $IDLE idle streams open at the end")
[ "$COMPLETED" -gt 0 ] || FAIL+=("no active stream completed")
[ $(( FDS_AFTER - POOL_AFTER )) -le $(( FDS_BASE - POOL_BASE )) ] ||
    FAIL+=("descriptors other than pooled upstream connections: $(( FDS_AFTER - POOL_AFTER )) after the load, $(( FDS_BASE - POOL_BASE )) before")
[ "$LINGER" = 0 ] || [ "$FDS_LINGER" -le "$FDS_BASE" ] || FAIL+=("descriptors $FDS_LINGER $LINGER s after the load, $FDS_BASE before")
GROWTH_OK=$(awk -v m="$RSS_MID" -v e="$RSS_END" 'BEGIN{ lim = m/10; if (lim < 4096) lim = 4096; print (e - m <= lim) ? 1 : 0 }')
[ "$GROWTH_OK" = 1 ] || FAIL+=("RSS grew from $RSS_MID KiB (middle) to $RSS_END KiB (end)")
VERDICT=pass
[ ${#FAIL[@]} -eq 0 ] || VERDICT="FAIL: $(IFS=';'; echo "${FAIL[*]}")"

SSEGATE_ENV_JSON=$(python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "${SSEGATE_ENV[@]}")
export SSEGATE_ENV_JSON VERDICT STAMP PROFILE LOAD_END HEARTBEAT STREAMS IDLE ACTIVE DURATION HOLD_S MESSAGES PACE_MS THREADS EVENTS \
    COMPLETED HB LOST DUP REORD UNEXP RSS_BASE RSS_START RSS_MID RSS_END RSS_AFTER SLOPE FDS_BASE POOL_BASE FDS_OPEN \
    FDS_END_HOLD FDS_AFTER POOL_AFTER LINGER FDS_LINGER POOL_LINGER CPU_PCT IDLE_OPEN IDLE_OPEN_END
COMMIT="$COMMIT" python3 -c 'import json, os
e = os.environ
n = lambda k: json.loads(e[k])
print(json.dumps({
    "kind": "soak", "date": e["STAMP"], "commit": e["COMMIT"], "profile": e["PROFILE"], "verdict": e["VERDICT"],
    "streams": n("STREAMS"), "idle": n("IDLE"), "active": n("ACTIVE"), "duration_s": n("DURATION"),
    "hold_s": n("HOLD_S"), "messages": n("MESSAGES"), "pace_ms": n("PACE_MS"), "heartbeat": e["HEARTBEAT"],
    "threads": n("THREADS"), "ssegate_env": n("SSEGATE_ENV_JSON"), "events": n("EVENTS"), "active_streams_completed": n("COMPLETED"),
    "heartbeats": n("HB"), "idle_open": n("IDLE_OPEN"), "idle_open_at_end": n("IDLE_OPEN_END"),
    "seq": {"lost": n("LOST"), "duplicated": n("DUP"), "reordered": n("REORD"), "unexpected": n("UNEXP")},
    "rss_kib": {"base": n("RSS_BASE"), "start": n("RSS_START"), "middle": n("RSS_MID"), "end": n("RSS_END"),
                "after": n("RSS_AFTER"), "slope_kib_per_min": n("SLOPE")},
    "fds": {"base": n("FDS_BASE"), "base_pooled_upstream": n("POOL_BASE"), "open": n("FDS_OPEN"),
            "end_of_hold": n("FDS_END_HOLD"), "after": n("FDS_AFTER"), "after_pooled_upstream": n("POOL_AFTER"),
            "linger_s": n("LINGER"), "after_linger": n("FDS_LINGER"), "after_linger_pooled_upstream": n("POOL_LINGER")},
    "cpu_pct_of_one_core": n("CPU_PCT"), "loadavg_end": e["LOAD_END"],
}, indent=2))' >"$OUT/soak.json"

mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k/1024}'; }
cat >&2 <<EOF

soak: $STREAMS streams ($IDLE idle with heartbeats every $HEARTBEAT, $ACTIVE active: $MESSAGES messages ${PACE_MS} ms apart, replaced as they end) held $HOLD_S s, ssegate $PROFILE, threads = $THREADS
  events delivered      $EVENTS in $COMPLETED completed active streams; $HB heartbeats on idle streams
  lost/dup/reord/unexp  $LOST/$DUP/$REORD/$UNEXP; failed streams: active $FAILED_A, idle $FAILED_I; idle open at the end $IDLE_OPEN_END of $IDLE
  RSS MiB               before $(mib "$RSS_BASE"), start $(mib "$RSS_START"), middle $(mib "$RSS_MID"), end $(mib "$RSS_END"), after the load $(mib "$RSS_AFTER"); slope over the hold $SLOPE KiB/min
  descriptors           before $FDS_BASE ($POOL_BASE pooled upstream), all open $FDS_OPEN, end of hold $FDS_END_HOLD, after the load $FDS_AFTER ($POOL_AFTER pooled upstream), $LINGER s later $FDS_LINGER ($POOL_LINGER pooled)
  ssegate CPU           $CPU_PCT % of one core over the hold (load average at the end: $LOAD_END)
  verdict               $VERDICT
  results               $OUT
EOF
[ "$VERDICT" = pass ]
