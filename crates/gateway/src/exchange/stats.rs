//! What one exchange did, for its metrics and its access-log line.

use std::time::Duration;

use ssegate_frame::Format;
use tokio::time::Instant;

use crate::metrics::RouteMetrics;

/// Per-stream statistics.
#[derive(Debug, Default)]
pub struct Stats {
    /// The frame format decoded (`None`: passed through or not started).
    pub format: Option<Format>,
    pub upstream_status: Option<u16>,
    /// Request received → first event flushed.
    pub first_event: Option<Duration>,
    last_event: Option<Instant>,
    /// Events delivered to the client.
    pub events: u64,
    /// Events decoded after the client left, delivered to nobody (`on_disconnect = "drain"`); `None`
    /// when no drain ran.
    pub drained_events: Option<u64>,
    pub bytes_out: u64,
    pub heartbeats: u64,
    /// The upstream's own request id (`[server] upstream_request_id_headers`), for the access log.
    pub upstream_request_id: Option<String>,
    /// The pool index of the backend whose answer was used (or last tried).
    pub backend: Option<usize>,
    /// Backends tried.
    pub attempts: u32,
    /// What `on_disconnect` did after the client left mid-stream (`None`: it did not leave).
    pub left: Option<Left>,
}

/// What the route's `on_disconnect` did once the client left during the body loop: the access log's
/// `disconnect` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Left {
    /// `abort`: the upstream was closed at once.
    Aborted,
    /// `drain`/`detach`: the upstream was read to its end.
    Completed,
    /// `drain`/`detach`: a failure or a deadline (`max_duration`, `idle_timeout`, shutdown) ended it.
    Failed,
    /// `detach`: no reader was attached for `detach_timeout`; the upstream was aborted.
    DetachTimeout,
}

impl Left {
    pub fn as_str(self) -> &'static str {
        match self {
            Left::Aborted => "aborted",
            Left::Completed => "completed",
            Left::Failed => "failed",
            Left::DetachTimeout => "detach_timeout",
        }
    }
}

impl Stats {
    /// `n` events were flushed at `now` from an upstream read at `read_at`, in a stream that started at
    /// `started`: the event counters, the time to first event, the gaps between events (0 between the
    /// events of one flush: they reach the client together) and the read→flush latency of each.
    pub fn events_flushed(
        &mut self,
        n: u64,
        now: Instant,
        read_at: Instant,
        started: Instant,
        m: &RouteMetrics,
    ) {
        if n == 0 {
            return;
        }
        self.events += n;
        m.events(self.format, n);
        match self.last_event {
            Some(last) => m.event_gap(now - last),
            None => {
                let first = now - started;
                self.first_event = Some(first);
                m.first_event(first);
            }
        }
        for _ in 1..n {
            m.event_gap(Duration::ZERO);
        }
        let latency = now - read_at;
        for _ in 0..n {
            m.event_latency(latency);
        }
        self.last_event = Some(now);
    }

    /// `n` body bytes were written to the client.
    #[inline]
    pub fn wrote(&mut self, n: usize, m: &RouteMetrics) {
        if n > 0 {
            self.bytes_out += n as u64;
            m.bytes_out(n as u64);
        }
    }

    /// A heartbeat was written.
    pub fn heartbeat(&mut self, m: &RouteMetrics) {
        self.heartbeats += 1;
        m.heartbeat();
    }
}
