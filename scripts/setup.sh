#!/usr/bin/env bash
# Installs what building and testing ssegate needs on a fresh Debian machine. Idempotent; quiet when
# everything is already there. Needs root (or sudo) only when something is missing.
set -euo pipefail

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)                 # pingora-core builds zlib-ng with cmake
[ -s /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates) # https upstreams use the system roots
command -v promtool >/dev/null 2>&1 || need+=(prometheus)          # promtool: checks metrics and alert rules
command -v curl >/dev/null 2>&1 || need+=(curl)

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
