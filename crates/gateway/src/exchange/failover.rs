//! Failover before the first event: which backends a request tried, and whether a failed attempt may move
//! on to another one. The point of no return is the first *event* written to the client: an early
//! committed `200 text/event-stream` and heartbeats do not count, an answer passed through as it is does.

use http::HeaderValue;

use super::choose::Committed;
use super::End;
use crate::error::ErrorType;
use crate::metrics::RetryReason;
use crate::upstream::pool::Tried;

/// An attempt that failed in a way another backend may fix.
#[derive(Debug)]
pub(super) struct AttemptFailed {
    pub ty: ErrorType,
    /// For the client.
    pub public: &'static str,
    /// For the log (addresses, pingora's error chain; never a header value).
    pub detail: String,
    pub reason: RetryReason,
}

impl AttemptFailed {
    /// The failure of an attempt, as [`Failure::Attempt`].
    pub fn failure(
        ty: ErrorType,
        public: &'static str,
        detail: &dyn std::fmt::Display,
        reason: RetryReason,
    ) -> Failure {
        Failure::Attempt(AttemptFailed { ty, public, detail: detail.to_string(), reason })
    }
}

/// Why an attempt did not produce an upstream session.
#[derive(Debug)]
pub(super) enum Failure {
    /// The attempt failed: fail over, or report it.
    Attempt(AttemptFailed),
    /// The exchange ended (client gone, shutdown, `max_duration`, a write that failed).
    End(End),
}

/// A request's way through its route's pool.
#[derive(Debug, Default)]
pub(super) struct Attempts {
    pub tried: Tried,
    /// The value of the `hash:header:` header, when the route hashes.
    pub key: Option<HeaderValue>,
    /// Attempts started.
    pub count: u32,
    /// The backend of the current attempt.
    pub backend: Option<usize>,
}

impl Attempts {
    pub fn key(&self) -> Option<&[u8]> {
        self.key.as_ref().map(HeaderValue::as_bytes)
    }
}

/// Whether nothing but an early commit and heartbeats reached the client.
pub(super) fn before_first_event(committed: Committed, events: u64) -> bool {
    committed != Committed::Passthrough && events == 0
}
