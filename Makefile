# The two commands of the README's quick start, and a few more.
.PHONY: demo test clients lint bench provider-bench load-bench soak fuzz mutants

demo:
	@scripts/setup.sh --build-only
	cargo run --release -p ssegate -- demo

test:
	scripts/test.sh

# Only the real-client tests (tests/clients) and the deploy/ checks, against target/debug/ssegate.
clients:
	@scripts/setup.sh
	cargo build -p ssegate
	scripts/clients.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

# Framing-core throughput (criterion).
bench:
	cargo bench -p ssegate-bench --bench frame

# What a provider preset (usage, end marker) costs per event, in thread CPU time (a release pingora build).
provider-bench:
	cargo bench -p ssegate --bench provider

# Load benchmarks: the floor, ssegate, nginx (installed when missing); about 5 minutes after the builds.
load-bench:
	benches/run.sh

# Soak: 9,000 streams (8,000 idle with heartbeats, 1,000 active, replaced as they end) for 10 minutes against one
# release ssegate; checks nothing lost, RSS flat, descriptors back to the baseline. SOAK_ARGS=--smoke: 300 streams
# for 45 s (see benches/README.md, Soak).
soak:
	benches/soak.sh $(SOAK_ARGS)

# The fuzz targets (fuzz/, its own workspace) for FUZZ_SECONDS each: libFuzzer when cargo-fuzz and a nightly
# toolchain are installed, else the stable runner fuzz/examples/stable.rs (seeds, then generated and mutated
# inputs). Failing inputs land in fuzz/artifacts/<target>/. CI only builds and smoke-tests:
#   cargo build --manifest-path fuzz/Cargo.toml --all-targets && cargo test --manifest-path fuzz/Cargo.toml --lib
FUZZ_SECONDS ?= 10
fuzz:
	cd fuzz && cargo build --release --all-targets
	@if cargo +nightly fuzz --version >/dev/null 2>&1; then \
	  for t in decode encode json eventstream; do \
	    mkdir -p fuzz/corpus/$$t && \
	    (cd fuzz && cargo +nightly fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) -max_len=4096) || exit 1; \
	  done; \
	else \
	  echo "cargo-fuzz or nightly missing: running the stable runner"; \
	  cd fuzz && cargo run --release --example stable -- --seconds $(FUZZ_SECONDS); \
	fi

# Mutation testing of the framing core with cargo-mutants (slow: about an hour on 2 cores; not in CI). See
# docs/MUTANTS.md for the last result and scripts/mutants.sh for the options and the gateway's targeted runs.
mutants:
	scripts/mutants.sh frame
