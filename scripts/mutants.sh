#!/usr/bin/env bash
# Mutation testing with cargo-mutants (https://mutants.rs): every mutant that no test catches is a behaviour
# the tests do not pin down. Slow, so not in CI; the last result and the verdict on every missed mutant are
# in docs/MUTANTS.md.
#
#   scripts/mutants.sh frame              # the framing core (crates/frame), about 650 mutants
#   scripts/mutants.sh frame FILE...      # only these files, e.g. crates/frame/src/encode/sse.rs
#   scripts/mutants.sh gateway AREA       # one targeted area of the gateway (see below)
#   scripts/mutants.sh list frame|gateway AREA   # list the mutants only (no build)
#
# Output: $MUTANTS_OUT (default /tmp/mutants-<what>)/mutants.out/{caught,missed,timeout,unviable}.txt.
# Rerunning with MUTANTS_ITERATE=1 tests only the mutants not caught by the previous run in that directory.
#
# Options used, and why:
# - `-j 1`: one mutant at a time (a build and test run already use both cores of a small machine);
# - `--timeout 40`: the frame tests take ~10 s; a mutant that turns a loop infinite is a "timeout" (caught);
# - `--cargo-test-arg=--lib --cargo-test-arg=--tests`: no doctests (recompiling ~20 doctests per mutant
#   triples the time); every doc example's claim is also a unit test;
# - `crates/frame/src/testing.rs` is excluded: it is the test oracle itself (its mutants are "does the oracle
#   still find bugs", checked by hand as in docs/MUTANTS.md), not production code;
# - `CARGO_PROFILE_DEV_DEBUG=0`: no debug info, faster links.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo mutants --version >/dev/null 2>&1; then
  echo "cargo-mutants is not installed: cargo install cargo-mutants --locked" >&2
  exit 1
fi

list=()
if [ "${1:-}" = list ]; then
  list=(--list)
  shift
fi
what=${1:-frame}
shift || true
out=${MUTANTS_OUT:-/tmp/mutants-$what${1:+-$1}}
common=(-j 1 --output "$out")
[ -z "${MUTANTS_ITERATE:-}" ] || common+=(--iterate)
export CARGO_PROFILE_DEV_DEBUG=0

case $what in
  frame)
    files=()
    for f in "$@"; do files+=(--file "$f"); done
    exec cargo mutants "${list[@]}" -p ssegate-frame "${common[@]}" --timeout "${MUTANTS_TIMEOUT:-40}" \
      --exclude crates/frame/src/testing.rs \
      --cargo-test-arg=--lib --cargo-test-arg=--tests "${files[@]}"
    ;;
  gateway)
    # Targeted areas only (the whole gateway is thousands of mutants, each needing a pingora rebuild). The
    # end-to-end tests (package ssegate-tests) start the `ssegate` binary: SSEGATE_BIN is not set, so they
    # use target/debug/ssegate of the scratch copy, which `cargo test -p ssegate` builds (integration tests
    # need the binary). Function names are those of crates/gateway/src/stream.rs at the time of writing:
    # check them with `scripts/mutants.sh list gateway AREA` after refactors.
    area=${1:-}
    case $area in
      # The client-EOF watch of the exchange: noticing a client that went away while waiting on the upstream.
      client-eof) sel=(--file crates/gateway/src/stream.rs --re "Exchange<'a>::(pump|wake|client_gone)|drain_some|keep_if_body_done") ;;
      # Timers and deadlines: idle, heartbeat, max_duration, drain after shutdown.
      timers) sel=(--file crates/gateway/src/stream.rs --re '::(next|due|on_timer|heartbeat|check_shutdown)\b|shutdown_started') ;;
      # The answer choice: SSE or passthrough or a JSON error, from the upstream's status and headers.
      answer) sel=(--file crates/gateway/src/stream.rs --re 'commit_sse|is_json|passthrough_header|chunked_allowed|header_str|outcome|preflight_answer') ;;
      # Error classification: ErrorType, its status and wire name, the error type of an ending, upstream failures.
      errors) sel=(--file crates/gateway/src/respond.rs --file crates/gateway/src/stream.rs --file crates/gateway/src/upstream.rs \
                  --re 'ErrorType::|error_type|upstream_fail|::fail\b|public_message|json_body|error_event') ;;
      *) echo "usage: $0 gateway client-eof|timers|answer|errors" >&2; exit 2 ;;
    esac
    exec cargo mutants "${list[@]}" "${common[@]}" --timeout "${MUTANTS_TIMEOUT:-300}" \
      --test-package ssegate --test-package ssegate-tests "${sel[@]}"
    ;;
  *)
    echo "usage: $0 [list] frame [FILE...] | $0 [list] gateway client-eof|timers|answer|errors" >&2
    exit 2
    ;;
esac
