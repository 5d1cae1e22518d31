# The two commands of the README's quick start, and a few more.
.PHONY: demo test clients lint bench load-bench soak fuzz

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

# Load benchmarks: the floor, ssegate, nginx (installed when missing); about 5 minutes after the builds.
load-bench:
	benches/run.sh

# Soak: 9,000 streams (8,000 idle with heartbeats, 1,000 active, replaced as they end) for 10 minutes against one
# release ssegate; checks nothing lost, RSS flat, descriptors back to the baseline. SOAK_ARGS=--smoke: 300 streams
# for 45 s (see benches/README.md, Soak).
soak:
	benches/soak.sh $(SOAK_ARGS)
