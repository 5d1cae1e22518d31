#!/usr/bin/env python3
"""Checks the workspace's `rust-version` claim against Cargo.lock.

Every package the build of this host can use (normal, build and dev dependencies, from `cargo metadata
--filter-platform <host>`) must declare a `rust-version` no newer than the workspace's, or none. Cargo only
checks a dependency's `rust-version` against the toolchain that builds it, so a lock-file update could
otherwise raise the real minimum silently. Run by scripts/test.sh; fix by pinning the dependency in
Cargo.lock (`cargo update -p NAME --precise VERSION`) or, with a reason, raising `rust-version`.
"""
import json
import subprocess
import sys


def version(s: str) -> tuple[int, ...]:
    parts = [int(p) for p in s.split(".")[:3]]
    return tuple(parts + [0] * (3 - len(parts)))


host = next(line.split(": ", 1)[1] for line in subprocess.run(
    ["rustc", "-vV"], check=True, capture_output=True, text=True).stdout.splitlines() if line.startswith("host: "))
meta = json.loads(subprocess.run(
    ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", host],
    check=True, capture_output=True, text=True).stdout)
packages = {p["id"]: p for p in meta["packages"]}
members = [packages[i] for i in meta["workspace_members"]]
claims = {p["rust_version"] for p in members if p.get("rust_version")}
if len(claims) != 1:
    sys.exit(f"msrv-check: workspace members declare {sorted(claims) or 'no'} rust-version; expected one")
msrv = claims.pop()
used = {node["id"] for node in meta["resolve"]["nodes"]}
too_new = sorted((version(p["rust_version"]), p["name"], p["version"]) for i, p in packages.items()
                 if i in used and p.get("rust_version") and version(p["rust_version"]) > version(msrv))
if too_new:
    lines = "\n".join(f"  {name} {ver} needs Rust {'.'.join(map(str, rv))}" for rv, name, ver in too_new)
    sys.exit(f"msrv-check: the workspace claims rust-version {msrv}, but Cargo.lock has:\n{lines}")
print(f"msrv-check: {len(used)} packages, none needs a Rust newer than {msrv}")
