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
    # need the binary). The selectors name files and functions of the exchange stages: check them with
    # `scripts/mutants.sh list gateway AREA` after refactors.
    area=${1:-}
    case $area in
      # The client-EOF watch of the exchange: noticing a client that went away while waiting on the upstream.
      client-eof) sel=(--file crates/gateway/src/exchange/mod.rs --file crates/gateway/src/exchange/disconnect.rs \
                      --file crates/gateway/src/edge.rs --re '\bwake\b|client_left|client_gone|body_left|write_failed|drain_some|keep_if_body_done') ;;
      # Timers and deadlines: idle, heartbeat, max_duration, drain after shutdown (plus the unit tests on a
      # paused clock in exchange/timers_tests.rs).
      timers) sel=(--file crates/gateway/src/exchange/timers.rs --file crates/gateway/src/exchange/mod.rs \
                  --re 'Timers::|on_timer|\btimer\b|check_shutdown|shutdown_started') ;;
      # The answer choice: decode, passthrough or an error event, from the upstream's status and headers
      # (table-tested in exchange/choose.rs), and the heads the downstream writer commits.
      answer) sel=(--file crates/gateway/src/exchange/choose.rs --file crates/gateway/src/exchange/downstream.rs \
                  --re 'choose|is_json|commit_sse|commit_passthrough|passthrough_header|chunked_allowed') ;;
      # Error classification: every ErrorType's status, outcome, source and counter (error.rs), the JSON body.
      errors) sel=(--file crates/gateway/src/error.rs --file crates/gateway/src/respond.rs \
                  --file crates/gateway/src/exchange/end.rs --re 'ErrorType::|Outcome::|End::|json_body') ;;
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
