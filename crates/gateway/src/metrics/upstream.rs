//! Pool metrics: per backend (label `backend` = the backend's `name`) its requests by result, its
//! up/down state, its ejections and its header latency; per route the failovers by reason. The families
//! are created on first use (the first route built); the handles of one pool are resolved once, when the
//! pool is built, and moved once per attempt — never per event.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec};

use super::{counter_vec, gauge_vec, histogram_vec, LATENCY_BUCKETS};

/// `ssegate_upstream_failovers_total{reason}`: why a request moved on to another backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    /// Connect, TLS, send, or the connection broke before the response head.
    Connect,
    /// No response head within `header_timeout`.
    Timeout,
    /// A status listed in `retry.on`.
    Status,
    /// No event within `retry.first_event_timeout`.
    FirstEvent,
}

impl RetryReason {
    pub const ALL: [RetryReason; 4] =
        [RetryReason::Connect, RetryReason::Timeout, RetryReason::Status, RetryReason::FirstEvent];

    pub fn as_str(self) -> &'static str {
        match self {
            RetryReason::Connect => "connect",
            RetryReason::Timeout => "timeout",
            RetryReason::Status => "status",
            RetryReason::FirstEvent => "first_event",
        }
    }
}

/// `ssegate_backend_requests_total{result}`: how one attempt on a backend ended: `ok` (its answer was
/// used), or the [`RetryReason`] it failed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendResult {
    Ok,
    Failed(RetryReason),
}

impl BackendResult {
    pub const ALL: [BackendResult; 5] = [
        BackendResult::Ok,
        BackendResult::Failed(RetryReason::Connect),
        BackendResult::Failed(RetryReason::Timeout),
        BackendResult::Failed(RetryReason::Status),
        BackendResult::Failed(RetryReason::FirstEvent),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BackendResult::Ok => "ok",
            BackendResult::Failed(r) => r.as_str(),
        }
    }

    fn index(self) -> usize {
        match self {
            BackendResult::Ok => 0,
            BackendResult::Failed(r) => 1 + r as usize,
        }
    }
}

struct Families {
    requests: IntCounterVec,
    failovers: IntCounterVec,
    up: IntGaugeVec,
    ejections: IntCounterVec,
    header: HistogramVec,
}

fn families() -> &'static Families {
    static F: OnceLock<Families> = OnceLock::new();
    F.get_or_init(|| Families {
        requests: counter_vec(
            "ssegate_backend_requests_total",
            "Attempts on each backend of a pool, by result (ok: its answer was used; else why it failed).",
            &["route", "backend", "result"],
        ),
        failovers: counter_vec(
            "ssegate_upstream_failovers_total",
            "Requests moved on to another backend before the first event, by reason.",
            &["route", "reason"],
        ),
        up: gauge_vec(
            "ssegate_backend_up",
            "1 while a backend may be chosen (not ejected, passing its health checks), else 0.",
            &["route", "backend"],
        ),
        ejections: counter_vec(
            "ssegate_backend_ejections_total",
            "Times a backend was taken out: passive (max_fails within fail_timeout) or active (health checks).",
            &["route", "backend", "by"],
        ),
        header: histogram_vec(
            "ssegate_backend_header_seconds",
            "Request sent to response headers received, per backend.",
            &["route", "backend"],
            &LATENCY_BUCKETS,
        ),
    })
}

/// The backends that have series, by route (for [`forget_route`]).
fn backends_by_route() -> &'static Mutex<HashMap<String, Vec<String>>> {
    static B: OnceLock<Mutex<HashMap<String, Vec<String>>>> = OnceLock::new();
    B.get_or_init(Mutex::default)
}

/// Removes every pool series of route `name` (a route removed by a reload).
pub(super) fn forget_route(name: &str) {
    let f = families();
    for r in RetryReason::ALL {
        let _ = f.failovers.remove_label_values(&[name, r.as_str()]);
    }
    let backends = backends_by_route().lock().unwrap_or_else(PoisonError::into_inner).remove(name);
    for b in backends.unwrap_or_default() {
        for r in BackendResult::ALL {
            let _ = f.requests.remove_label_values(&[name, &b, r.as_str()]);
        }
        let _ = f.up.remove_label_values(&[name, &b]);
        for by in ["passive", "active"] {
            let _ = f.ejections.remove_label_values(&[name, &b, by]);
        }
        let _ = f.header.remove_label_values(&[name, &b]);
    }
}

/// Registers the pool families (so that the dashboard's queries always find them).
pub fn init() {
    let _ = families();
}

/// One backend's handles.
#[derive(Debug, Clone)]
pub struct BackendMetrics {
    requests: [IntCounter; BackendResult::ALL.len()],
    up: IntGauge,
    ejected_passive: IntCounter,
    ejected_active: IntCounter,
    header: Histogram,
}

impl BackendMetrics {
    pub fn new(route: &str, backend: &str) -> BackendMetrics {
        let f = families();
        {
            let mut known = backends_by_route().lock().unwrap_or_else(PoisonError::into_inner);
            let list = known.entry(route.to_owned()).or_default();
            if !list.iter().any(|b| b == backend) {
                list.push(backend.to_owned());
            }
        }
        let up = f.up.with_label_values(&[route, backend]);
        up.set(1);
        BackendMetrics {
            requests: BackendResult::ALL.map(|r| f.requests.with_label_values(&[route, backend, r.as_str()])),
            up,
            ejected_passive: f.ejections.with_label_values(&[route, backend, "passive"]),
            ejected_active: f.ejections.with_label_values(&[route, backend, "active"]),
            header: f.header.with_label_values(&[route, backend]),
        }
    }

    pub fn attempt(&self, result: BackendResult) {
        self.requests[result.index()].inc();
    }

    pub fn header(&self, d: std::time::Duration) {
        self.header.observe(d.as_secs_f64());
    }

    pub fn set_up(&self, up: bool) {
        self.up.set(i64::from(up));
    }

    /// Taken out (`active`: by its health checks; else passively).
    pub fn ejected(&self, active: bool) {
        if active {
            self.ejected_active.inc();
        } else {
            self.ejected_passive.inc();
        }
    }
}

/// A route's failover counters, [`RetryReason::ALL`] order.
#[derive(Debug, Clone)]
pub struct Failovers([IntCounter; RetryReason::ALL.len()]);

impl Failovers {
    pub fn new(route: &str) -> Failovers {
        let f = families();
        Failovers(RetryReason::ALL.map(|r| f.failovers.with_label_values(&[route, r.as_str()])))
    }

    pub fn inc(&self, reason: RetryReason) {
        self.0[reason as usize].inc();
    }
}
