#!/usr/bin/env bash
# Installs what building and testing ssegate needs on a fresh Debian machine. Idempotent; quiet when
# everything is already there. Needs root (or sudo) only when something is missing.
#
#   scripts/setup.sh              build + test dependencies (what `make test` and .ci/run need)
#   scripts/setup.sh --build-only only what building the binary needs (what `make demo` needs)
#
# The test dependencies are Debian packages: promtool, Chromium + chromedriver (browser test of the demo page),
# Python's venv module, Node/npm, systemd-analyze (verifies deploy/systemd) and redis-server (the tests start
# their own, on a free loopback port; the package's system service is not used). The Python and npm packages of
# tests/clients are project-local (a venv and node_modules under tests/clients) and installed by scripts/clients.sh.
set -euo pipefail

build_only=0
[ "${1:-}" != "--build-only" ] || build_only=1

need=()
command -v make >/dev/null 2>&1 || need+=(make)                   # .ci/run calls `make test` after this script
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)            # the linker rustc calls; C parts of dependencies
command -v c++ >/dev/null 2>&1 || need+=(g++)                    # libFuzzer (C++) in the fuzz workspace that CI builds
command -v cmake >/dev/null 2>&1 || need+=(cmake)                 # pingora-core builds zlib-ng with cmake
[ -s /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates) # https upstreams use the system roots
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v openssl >/dev/null 2>&1 || need+=(openssl)             # tests/clients/test_h2_floods.py: a self-signed certificate
if [ "$build_only" -eq 0 ]; then
  command -v promtool >/dev/null 2>&1 || need+=(prometheus)        # promtool: checks metrics and alert rules
  [ -x /usr/bin/chromium ] || need+=(chromium)                     # tests/clients: the demo page in a real browser
  [ -x /usr/bin/chromedriver ] || need+=(chromium-driver)          # ... driven by selenium through the packaged driver
  command -v python3 >/dev/null 2>&1 || need+=(python3)
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
  command -v node >/dev/null 2>&1 || need+=(nodejs)
  command -v npm >/dev/null 2>&1 || need+=(npm)
  command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)    # test_deploy: `systemd-analyze verify` of the unit
  command -v redis-server >/dev/null 2>&1 || need+=(redis-server) # e2e resume_redis + store tests: a private redis-server
fi

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

for comp in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$comp" || rustup component add "$comp" >/dev/null 2>&1 || true
done
