# The two commands of the README's quick start, and a few more.
.PHONY: demo test lint bench fuzz

demo:
	@scripts/setup.sh
	cargo run --release -p ssegate -- demo

test:
	scripts/test.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

bench:
	cargo bench -p ssegate-bench --bench frame
