//! # ssegate-bench
//!
//! The load-benchmark harness of ssegate (see `benches/README.md`): two binaries and the pieces they share.
//!
//! - `mock-upstream`: a minimal HTTP/1.1 server streaming NDJSON (Ollama), SSE (OpenAI), a JSON array
//!   (Gemini) or raw text lines, paced and chunked as asked ([`params`]); every message carries its
//!   sequence number and its send time ([`marker`]).
//! - `loadgen`: N concurrent streams, per-event latency (receive time − embedded send time, both
//!   `CLOCK_REALTIME`), sequence checks ([`seq`]), CPU and RSS of the proxy from `/proc` ([`procfs`]);
//!   idle streams with heartbeats; start-up time; CPU per `/metrics` scrape ([`scrape`]); the Markdown report.
//!
//! The criterion benches of the framing core live in `benches/frame.rs` of the same crate.

pub mod chunked;
pub mod http;
pub mod marker;
pub mod msg;
pub mod params;
pub mod procfs;
pub mod report;
pub mod scrape;
pub mod seq;
pub mod stats;
