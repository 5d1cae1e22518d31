//! Resumable streams (`ssegate_resume_*`, `ssegate_streams_detached`): resume requests by result, replayed
//! events, detached streams, the memory store's retained bytes, store errors, and hand-overs at shutdown.
//!
//! Every call here is on a cold path (a resume request, a batch of replayed events, a stream detaching) or
//! takes a handle resolved once (retained bytes); none is on a route without `resume`.

use std::sync::OnceLock;

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec};

use super::{counter_vec, gauge, gauge_vec};

/// The `result` of a resume request (closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeResult {
    /// The stream was found and the reader allowed: it replays (and follows), or gets `204` at the end.
    Hit,
    /// No stream with this id (never existed, removed, or an id that does not parse).
    Miss,
    /// The stream is known but past its `ttl`.
    Expired,
    /// The reader asked for (or fell behind to) records no longer retained: `resume_gap`.
    Gap,
    /// Wrong or missing key, or another route's stream.
    Forbidden,
}

impl ResumeResult {
    pub const ALL: [ResumeResult; 5] = [
        ResumeResult::Hit,
        ResumeResult::Miss,
        ResumeResult::Expired,
        ResumeResult::Gap,
        ResumeResult::Forbidden,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResumeResult::Hit => "hit",
            ResumeResult::Miss => "miss",
            ResumeResult::Expired => "expired",
            ResumeResult::Gap => "gap",
            ResumeResult::Forbidden => "forbidden",
        }
    }
}

struct ResumeFamilies {
    requests: IntCounterVec,
    replayed: IntCounterVec,
    detached: IntGaugeVec,
    retained: IntGauge,
    store_errors: IntCounterVec,
    handovers: IntCounterVec,
}

fn families() -> &'static ResumeFamilies {
    static F: OnceLock<ResumeFamilies> = OnceLock::new();
    F.get_or_init(|| ResumeFamilies {
        requests: counter_vec(
            "ssegate_resume_requests_total",
            "Resume requests (Last-Event-ID or /_streams/<stream>), by route and result: hit, miss, expired, gap, forbidden.",
            &["route", "result"],
        ),
        replayed: counter_vec(
            "ssegate_resume_replayed_events_total",
            "Events sent to resuming readers from the resume store (replayed and followed), by route.",
            &["route"],
        ),
        detached: gauge_vec(
            "ssegate_streams_detached",
            "Streams whose client left and that go on recording for resume (on_disconnect = \"detach\"), by route.",
            &["route"],
        ),
        retained: gauge(
            "ssegate_resume_retained_bytes",
            "Bytes of event names and data the memory resume store retains (all routes).",
        ),
        store_errors: counter_vec(
            "ssegate_resume_store_errors_total",
            "Resume store operations that failed (the live stream goes on without resume), by store.",
            &["store"],
        ),
        handovers: counter_vec(
            "ssegate_resume_handovers_total",
            "Streams whose client was handed over to the next process at a shutdown or graceful upgrade (retry: and a clean close, the upstream recorded on), by route.",
            &["route"],
        ),
    })
}

/// Creates every family (at zero where it has no labels), so that `/metrics` shows them from the start.
pub fn init() {
    let f = families();
    for store in ["memory", "redis"] {
        f.store_errors.with_label_values(&[store]);
    }
}

/// One resume request's result.
pub fn request(route: &str, result: ResumeResult) {
    families().requests.with_label_values(&[route, result.as_str()]).inc();
}

/// `n` events sent to a reader from the store.
pub fn replayed(route: &str, n: u64) {
    if n > 0 {
        families().replayed.with_label_values(&[route]).inc_by(n);
    }
}

/// A store operation failed (`store`: `"memory"` or `"redis"`).
pub fn store_error(store: &'static str) {
    families().store_errors.with_label_values(&[store]).inc();
}

/// A stream's client was handed over at a shutdown.
pub fn handover(route: &str) {
    families().handovers.with_label_values(&[route]).inc();
}

/// The memory store's retained-bytes gauge.
pub fn retained_bytes() -> &'static IntGauge {
    &families().retained
}

/// Counts one detached stream while the guard lives.
pub fn detached(route: &str) -> Detached {
    let g = families().detached.with_label_values(&[route]);
    g.inc();
    Detached(g)
}

/// See [`detached`].
#[derive(Debug)]
pub struct Detached(IntGauge);

impl Drop for Detached {
    fn drop(&mut self) {
        self.0.dec();
    }
}
