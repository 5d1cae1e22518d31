# The two commands of the README's quick start, and a few more.
.PHONY: demo test clients lint bench load-bench fuzz

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
