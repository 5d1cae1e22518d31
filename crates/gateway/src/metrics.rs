//! Every metric ssegate exports is named here, and only here. (Contract stub: to be implemented.)

use std::time::Duration;

use ssegate_frame::Format;

/// How a stream ended: the `outcome` label (closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    ClientClosed,
    UpstreamError,
    Timeout,
    Shutdown,
    Rejected,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::ClientClosed => "client_closed",
            Outcome::UpstreamError => "upstream_error",
            Outcome::Timeout => "timeout",
            Outcome::Shutdown => "shutdown",
            Outcome::Rejected => "rejected",
        }
    }
}

/// Per-route handles, resolved once at start-up so the hot path does no label lookups.
#[derive(Debug)]
pub struct RouteMetrics;

/// Decrements `ssegate_streams_active{route}` when dropped.
#[derive(Debug)]
pub struct ActiveStream;

/// Decrements `ssegate_downstream_connections_open` when dropped.
#[derive(Debug)]
pub struct OpenConnection;

/// Registers every metric (idempotent) and `ssegate_build_info`.
pub fn init() {}

/// Handles for `route`.
pub fn route(_name: &str) -> RouteMetrics {
    RouteMetrics
}

/// A downstream connection was accepted.
pub fn connection_opened() -> OpenConnection {
    OpenConnection
}

impl RouteMetrics {
    pub fn stream_started(&self) -> ActiveStream {
        ActiveStream
    }
    pub fn upstream_header(&self, _d: Duration) {}
    pub fn first_event(&self, _d: Duration) {}
    pub fn event_gap(&self, _d: Duration) {}
    pub fn event_latency(&self, _d: Duration) {}
    /// `label` is a Format name or "passthrough".
    pub fn events(&self, _format: Option<Format>, _n: u64) {}
    pub fn bytes_in(&self, _n: u64) {}
    pub fn bytes_out(&self, _n: u64) {}
    pub fn heartbeat(&self) {}
    pub fn client_disconnect(&self) {}
    pub fn decode_error(&self, _kind: &'static str) {}
    pub fn upstream_error(&self, _kind: &'static str) {}
    pub fn finished(&self, _format: Option<Format>, _outcome: Outcome, _duration: Duration) {}
}
