//! Logging: `tracing` everywhere, pingora's `log` output bridged in, one access line per finished stream.
//! (Contract stub: to be implemented.)

use std::time::Duration;

use crate::metrics::Outcome;

/// `--log-format`
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber (level from `RUST_LOG`, default `info`) and the `log` bridge.
pub fn init(_format: LogFormat) {}

/// One finished stream (or non-streaming exchange).
#[derive(Debug)]
pub struct AccessRecord<'a> {
    pub route: &'a str,
    pub method: &'a str,
    /// Path without the query string.
    pub path: &'a str,
    pub upstream_status: Option<u16>,
    /// A frame format name, or "passthrough".
    pub format: &'a str,
    pub outcome: Outcome,
    pub duration: Duration,
    pub first_event: Option<Duration>,
    pub events: u64,
    pub bytes_out: u64,
    pub heartbeats: u64,
    /// The error type when the stream ended in an error (`upstream_reset`, ...).
    pub error: Option<&'static str>,
}

/// Writes the access line for `rec` (target `ssegate::access`, level info).
pub fn access(_rec: &AccessRecord<'_>) {}
