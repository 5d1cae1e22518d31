//! Every metric ssegate exports is named in this folder, and only here: the process-wide families in this
//! file, the per-route handles in [`route`], the label values (closed sets, as enums) in [`labels`].
//!
//! All metrics live in the default `prometheus` registry, which the admin listener serves on `/metrics`.
//! Labels come from closed sets only: the route name (from the config), the frame format (or
//! `passthrough`), the outcome, the byte direction, the error kind, the refusal reason — never paths,
//! URLs or error texts.
//!
//! The hot path (one call per event) never hashes labels or takes a lock: [`route()`] resolves every
//! per-route series once, up front, into plain handles kept in small arrays indexed by the label enums;
//! the rare per-stream-end series (`streams_total`, `stream_duration`) are resolved on first use and
//! cached.
//!
//! Adding a per-route metric: a family in [`Families`] (created and registered in one expression), a
//! handle in [`RouteMetrics`] and its resolution in [`route()`], and the method that moves it.
//!
//! See the README (Observability) for the reference table, the dashboard and the alerts.

mod labels;
mod reload;
pub mod resume;
mod route;
#[cfg(test)]
mod tests;
pub mod upstream;
pub mod usage;

use std::sync::OnceLock;

use prometheus::core::Collector;
use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts};

pub use crate::error::Outcome;
pub use labels::{format_label, DecodeKind, EdgeReason, RejectReason, PASSTHROUGH};
pub use reload::{config_loaded, reload_failed, reload_succeeded, retire_route};
pub use route::{route, ActiveStream, Draining, RouteMetrics};
pub use upstream::{BackendMetrics, BackendResult, Failovers, RetryReason};

/// Buckets of the per-event / per-request latency histograms: 100 µs .. 60 s.
pub const LATENCY_BUCKETS: [f64; 18] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0,
];

/// Buckets of `ssegate_stream_duration_seconds`: 100 ms .. 4 h.
pub const DURATION_BUCKETS: [f64; 16] =
    [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0];

/// The metric families (vectors), created and registered once.
struct Families {
    connections_open: IntGauge,
    connections_total: IntCounter,
    streams_active: IntGaugeVec,
    streams_total: IntCounterVec,
    upstream_header: HistogramVec,
    first_event: HistogramVec,
    event_gap: HistogramVec,
    event_latency: HistogramVec,
    stream_duration: HistogramVec,
    events: IntCounterVec,
    bytes: IntCounterVec,
    heartbeats: IntCounterVec,
    client_disconnects: IntCounterVec,
    slow_clients: IntCounterVec,
    drained_events: IntCounterVec,
    streams_draining: IntGaugeVec,
    decode_errors: IntCounterVec,
    upstream_errors: IntCounterVec,
    rejected: IntCounterVec,
    /// [`EdgeReason::ALL`] order (created at 0).
    downstream_rejected: [IntCounter; EdgeReason::ALL.len()],
    upstream_retries: IntCounterVec,
    ready: IntGauge,
}

// The constructors below only fail on an invalid metric name, label name or bucket list (or a duplicate
// registration): all of them are constants of this folder, checked by the unit tests, unreachable by input.
// Each one registers what it creates, so a family is one expression in `Families::new`.
fn register<C: Collector + Clone + 'static>(c: C) -> C {
    if let Err(e) = prometheus::register(Box::new(c.clone())) {
        tracing::warn!(error = %e, "metric not registered");
    }
    c
}

#[allow(clippy::expect_used)]
fn counter(name: &str, help: &str) -> IntCounter {
    register(IntCounter::new(name, help).expect("valid metric definition"))
}

#[allow(clippy::expect_used)]
fn gauge(name: &str, help: &str) -> IntGauge {
    register(IntGauge::new(name, help).expect("valid metric definition"))
}

#[allow(clippy::expect_used)]
fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition"))
}

#[allow(clippy::expect_used)]
fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition"))
}

#[allow(clippy::expect_used)]
fn histogram_vec(name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    register(HistogramVec::new(opts, labels).expect("valid metric definition"))
}

impl Families {
    fn new() -> Families {
        let downstream_rejected = counter_vec(
            "ssegate_downstream_rejected_total",
            "Requests refused before a route was chosen, by reason.",
            &["reason"],
        );
        let build_info =
            gauge_vec("ssegate_build_info", "Always 1; the version of the running binary.", &["version"]);
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        // Process metrics (process_resident_memory_bytes, process_cpu_seconds_total, process_open_fds,
        // ...): the `process` feature of the prometheus crate registers `ProcessCollector::for_self()` in
        // the default registry when it is created (Linux only); registering it again would be a duplicate.
        Families {
            connections_open: gauge(
                "ssegate_downstream_connections_open",
                "Downstream (client) connections currently open.",
            ),
            connections_total: counter(
                "ssegate_downstream_connections_total",
                "Downstream (client) connections accepted.",
            ),
            streams_active: gauge_vec("ssegate_streams_active", "Streams currently in progress.", &["route"]),
            streams_total: counter_vec(
                "ssegate_streams_total",
                "Streams finished, by frame format and outcome.",
                &["route", "format", "outcome"],
            ),
            upstream_header: histogram_vec(
                "ssegate_upstream_header_seconds",
                "Request sent upstream to upstream response headers received.",
                &["route"],
                &LATENCY_BUCKETS,
            ),
            first_event: histogram_vec(
                "ssegate_first_event_seconds",
                "Client request received to first event flushed to the client (time to first token).",
                &["route"],
                &LATENCY_BUCKETS,
            ),
            event_gap: histogram_vec(
                "ssegate_event_gap_seconds",
                "Time between consecutive events flushed to the client.",
                &["route"],
                &LATENCY_BUCKETS,
            ),
            event_latency: histogram_vec(
                "ssegate_event_latency_seconds",
                "Upstream bytes read to event flushed to the client (latency added by ssegate).",
                &["route"],
                &LATENCY_BUCKETS,
            ),
            stream_duration: histogram_vec(
                "ssegate_stream_duration_seconds",
                "Stream duration, client request received to stream end, by outcome.",
                &["route", "outcome"],
                &DURATION_BUCKETS,
            ),
            events: counter_vec(
                "ssegate_events_total",
                "Events flushed to clients, by upstream frame format.",
                &["route", "format"],
            ),
            bytes: counter_vec(
                "ssegate_bytes_total",
                "Body bytes read from upstreams (upstream_in) and written to clients (downstream_out).",
                &["route", "direction"],
            ),
            heartbeats: counter_vec(
                "ssegate_heartbeats_total",
                "Heartbeat comments sent to clients while the upstream was silent.",
                &["route"],
            ),
            client_disconnects: counter_vec(
                "ssegate_client_disconnects_total",
                "Streams whose client went away before the stream ended.",
                &["route"],
            ),
            slow_clients: counter_vec(
                "ssegate_slow_clients_total",
                "Streams dropped because the client did not accept data within write_timeout.",
                &["route"],
            ),
            drained_events: counter_vec(
                "ssegate_drained_events_total",
                "Events decoded after the client left (on_disconnect = \"drain\") and delivered to nobody.",
                &["route"],
            ),
            streams_draining: gauge_vec(
                "ssegate_streams_draining",
                "Streams whose client left and whose upstream is being read to its end (on_disconnect = \"drain\").",
                &["route"],
            ),
            decode_errors: counter_vec(
                "ssegate_decode_errors_total",
                "Bad upstream messages met by the decoder, by kind.",
                &["route", "kind"],
            ),
            upstream_errors: counter_vec(
                "ssegate_upstream_errors_total",
                "Failures of admitted streams reported to the client, by error kind.",
                &["route", "kind"],
            ),
            rejected: counter_vec(
                "ssegate_rejected_total",
                "Requests a route refused before contacting the upstream, by reason.",
                &["route", "reason"],
            ),
            downstream_rejected: EdgeReason::ALL.map(|r| downstream_rejected.with_label_values(&[r.as_str()])),
            upstream_retries: counter_vec(
                "ssegate_upstream_retries_total",
                "Requests sent again on a new upstream connection because a reused (pooled) one was found closed \
                 before any response.",
                &["route"],
            ),
            ready: gauge(
                "ssegate_ready",
                "1 while /readyz answers 200 (listeners accept, not draining), else 0.",
            ),
        }
    }
}

impl Families {
    /// Removes every series of route `name` from every family with a `route` label (a route removed by a
    /// reload, see [`retire_route`]). A new family with a `route` label is added here too.
    fn forget_route(&self, name: &str) {
        let formats = (0..labels::N_FORMATS).map(|i| format_label(labels::format_by_index(i)));
        let outcomes = Outcome::ALL.map(Outcome::as_str);
        let _ = self.streams_active.remove_label_values(&[name]);
        let _ = self.streams_draining.remove_label_values(&[name]);
        for h in [&self.upstream_header, &self.first_event, &self.event_gap, &self.event_latency] {
            let _ = h.remove_label_values(&[name]);
        }
        for c in [
            &self.heartbeats,
            &self.client_disconnects,
            &self.slow_clients,
            &self.upstream_retries,
            &self.drained_events,
        ] {
            let _ = c.remove_label_values(&[name]);
        }
        for f in formats.clone() {
            let _ = self.events.remove_label_values(&[name, f]);
            for o in outcomes {
                let _ = self.streams_total.remove_label_values(&[name, f, o]);
            }
        }
        for o in outcomes {
            let _ = self.stream_duration.remove_label_values(&[name, o]);
        }
        for d in ["upstream_in", "downstream_out"] {
            let _ = self.bytes.remove_label_values(&[name, d]);
        }
        for k in DecodeKind::ALL {
            let _ = self.decode_errors.remove_label_values(&[name, k.as_str()]);
        }
        for t in crate::error::ErrorType::ALL {
            let _ = self.upstream_errors.remove_label_values(&[name, t.as_str()]);
        }
        for r in RejectReason::ALL {
            let _ = self.rejected.remove_label_values(&[name, r.as_str()]);
        }
        upstream::forget_route(name);
        usage::forget_route(name);
    }
}

fn families() -> &'static Families {
    static FAMILIES: OnceLock<Families> = OnceLock::new();
    FAMILIES.get_or_init(Families::new)
}

/// Decrements `ssegate_downstream_connections_open` when dropped.
#[derive(Debug)]
pub struct OpenConnection(IntGauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Registers every metric (idempotent) and `ssegate_build_info`; the default registry brings the process
/// collector.
///
/// Every other function here calls it implicitly; calling it early makes `/metrics` complete from the
/// first scrape.
pub fn init() {
    let _ = families();
    config_loaded();
    upstream::init();
    resume::init();
}

/// A downstream connection was accepted. Keep the guard for the connection's lifetime.
pub fn connection_opened() -> OpenConnection {
    let f = families();
    f.connections_total.inc();
    f.connections_open.inc();
    OpenConnection(f.connections_open.clone())
}

/// A request refused before a route was chosen.
pub fn downstream_rejected(reason: EdgeReason) {
    families().downstream_rejected[reason.index()].inc();
}

/// Sets `ssegate_ready`. The admin listener refreshes it from the `/readyz` state on every scrape.
pub fn set_ready(ready: bool) {
    families().ready.set(i64::from(ready));
}
