#!/usr/bin/env bash
# Real-client tests (tests/clients): headless Chromium on the demo page, the npm `eventsource` package, the openai
# Python SDK, httpx-sse, and the deploy/ file checks — each against the real binary (target/debug/ssegate or
# $SSEGATE_BIN) on free 127.0.0.1 ports. Called by scripts/test.sh after the cargo tests.
#
#   scripts/clients.sh                 every test
#   scripts/clients.sh browser deploy  some of them (names: test_<name>.py in tests/clients)
#   scripts/clients.sh --install       only install the Python and npm packages
#
# System packages (chromium, chromium-driver, python3-venv, node, npm) come from scripts/setup.sh. The Python
# packages go into a venv at tests/clients/.venv (pinned in requirements.txt), the npm ones into
# tests/clients/node_modules (`npm ci` from package-lock.json); both are reinstalled only when those files change.
# Each test runs in its own process group with a time limit (CLIENT_TEST_TIMEOUT, default 60 s); the whole group
# (ssegate, mock upstreams, chromium, node) is killed when the test ends, fails, times out or this script is
# interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=tests/clients
venv=$dir/.venv
limit=${CLIENT_TEST_TIMEOUT:-60}
all=(browser cors eventsource openai_sdk anthropic_sdk httpx_sse ndjson dashboard deploy resume)

fingerprint() { sha256sum "$1" | cut -d' ' -f1; }

install() {
  local want
  want=$(fingerprint $dir/requirements.txt)
  if [ "$(cat $venv/.installed 2>/dev/null)" != "$want" ]; then
    echo "clients: installing Python packages into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-input -r $dir/requirements.txt
    echo "$want" >$venv/.installed
  fi
  want=$(fingerprint $dir/package-lock.json)
  if [ "$(cat $dir/node_modules/.installed 2>/dev/null)" != "$want" ]; then
    echo "clients: npm ci in $dir" >&2
    (cd $dir && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$want" >$dir/node_modules/.installed
  fi
}

if [ "${1:-}" = "--install" ]; then
  install
  exit 0
fi
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=("${all[@]}")
for t in "${tests[@]}"; do
  [ -f "$dir/test_$t.py" ] || { echo "clients: no test $dir/test_$t.py (known: ${all[*]})" >&2; exit 2; }
done

bin=${SSEGATE_BIN:-target/debug/ssegate}
if [ ! -x "$bin" ]; then
  echo "clients: $bin not found: run \`cargo build -p ssegate\` first (or set SSEGATE_BIN)" >&2
  exit 1
fi
SSEGATE_BIN=$(realpath "$bin")
export SSEGATE_BIN

started=$SECONDS
install
echo "clients: packages ready ($((SECONDS - started)) s)"

groups=()  # process groups of running tests; all killed on the way out
# Everything the tests write (configs, logs, browser profiles) goes to one directory, removed at the end.
run_tmp=$(mktemp -d "${TMPDIR:-/tmp}/ssegate-clients.XXXXXX")
export TMPDIR=$run_tmp
cleanup() {
  local g i
  for g in "${groups[@]}"; do kill -TERM -- "-$g" 2>/dev/null || true; done
  # A moment for the tests' own cleanup (temporary dirs), then nothing survives.
  for i in 1 2 3 4 5 6 7 8 9 10; do
    kill -0 "${groups[@]/#/-}" 2>/dev/null || break
    sleep 0.2
  done
  for g in "${groups[@]}"; do kill -KILL -- "-$g" 2>/dev/null || true; done
  rm -rf "$run_tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failed=()
for t in "${tests[@]}"; do
  start=$SECONDS
  # `setsid` makes the test the leader of a new process group: everything it starts can be killed at once.
  (cd $dir && exec setsid "$PWD/.venv/bin/python" -u "test_$t.py") &
  pid=$!
  groups+=("$pid")
  setsid bash -c 'sleep "$1"; echo "clients: $2 took longer than $1 s: killing it" >&2;
                  kill -TERM -- "-$3" 2>/dev/null; sleep 5; kill -KILL -- "-$3" 2>/dev/null' _ "$limit" "$t" "$pid" &
  watchdog=$!
  rc=0
  wait "$pid" || rc=$?
  kill -- "-$watchdog" 2>/dev/null || true
  wait "$watchdog" 2>/dev/null || true
  kill -KILL -- "-$pid" 2>/dev/null || true  # anything the test left behind
  if [ "$rc" -eq 0 ]; then
    echo "clients: PASS $t ($((SECONDS - start)) s)"
  else
    echo "clients: FAIL $t (exit $rc, $((SECONDS - start)) s)" >&2
    failed+=("$t")
  fi
done

echo "clients: ${#tests[@]} tests, ${#failed[@]} failed, $((SECONDS - started)) s"
[ ${#failed[@]} -eq 0 ] || { echo "clients: failed: ${failed[*]}" >&2; exit 1; }
