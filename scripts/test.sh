#!/usr/bin/env bash
# The test command (README, .ci/run): builds the gateway binary the end-to-end tests start, then runs
# every test of the workspace, the real-client tests (scripts/clients.sh), then checks the shipped configs and
# Prometheus files.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

# The framing core must stay free of I/O runtimes.
if cargo tree -p ssegate-frame -e normal | grep -E -q '^(.* )?(tokio|pingora)'; then
  echo "ssegate-frame must not depend on tokio or pingora" >&2
  exit 1
fi

# The workspace's rust-version holds for every package in Cargo.lock.
scripts/msrv-check.py

cargo build -p ssegate
cargo test --workspace

# Soak smoke (benches/README.md, Soak; about 55 s): 300 streams (250 idle, 50 active) for 45 s against the debug
# binary just built: every event once and in order, RSS flat, descriptors back to the baseline. `make soak` is
# the long run (release, 9,000 streams, 10 minutes).
cargo build -p ssegate-bench --bins
soak_out=$(mktemp -d /tmp/ssegate-soak-smoke.XXXXXX)
benches/soak.sh --smoke --profile debug --no-build --out "$soak_out"
rm -rf "$soak_out"

# Real clients (Chromium, npm eventsource, openai SDK, httpx-sse) against the binary just built, and the deploy/
# checks (tests/clients/test_deploy.py).
scripts/clients.sh

for f in config/*.toml $(find deploy -name '*.toml' | sort); do
  target/debug/ssegate check --config "$f"
done
if [ -f deploy/prometheus/alerts.yml ]; then
  promtool check rules deploy/prometheus/alerts.yml
  promtool check config deploy/prometheus/prometheus.yml
  [ ! -f deploy/prometheus/alerts_test.yml ] || promtool test rules deploy/prometheus/alerts_test.yml
fi
