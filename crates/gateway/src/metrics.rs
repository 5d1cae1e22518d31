//! Every metric ssegate exports is named here, and only here.
//!
//! All metrics live in the default `prometheus` registry, which the admin listener serves on `/metrics`.
//! Labels come from closed sets only: the route name (from the config), the frame format (or
//! `passthrough`), the outcome, the byte direction and the error kind — never paths, URLs or error texts.
//!
//! The hot path (one call per event) never hashes labels or takes a lock: [`route`] resolves every
//! per-route series once, up front, into plain handles ([`IntCounter`], [`Histogram`]) kept in small
//! arrays indexed by format / kind; the rare per-stream-end series (`streams_total`, `stream_duration`)
//! are resolved on first use and cached.
//!
//! See the README (Observability) for the reference table, the dashboard and the alerts.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};
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
    /// Every outcome, in documentation order.
    pub const ALL: [Outcome; 6] = [
        Outcome::Completed,
        Outcome::ClientClosed,
        Outcome::UpstreamError,
        Outcome::Timeout,
        Outcome::Shutdown,
        Outcome::Rejected,
    ];

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

    fn index(self) -> usize {
        match self {
            Outcome::Completed => 0,
            Outcome::ClientClosed => 1,
            Outcome::UpstreamError => 2,
            Outcome::Timeout => 3,
            Outcome::Shutdown => 4,
            Outcome::Rejected => 5,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `format` label of a stream that is not decoded.
pub const PASSTHROUGH: &str = "passthrough";

/// The `kind` values of `ssegate_decode_errors_total` (pre-created at 0 for every route).
pub const DECODE_ERROR_KINDS: [&str; 3] = ["too_large", "invalid_utf8", "malformed_json"];

/// The `kind` values of `ssegate_upstream_errors_total` (pre-created at 0 for every route).
pub const UPSTREAM_ERROR_KINDS: [&str; 9] = [
    "upstream_connect",
    "upstream_timeout",
    "upstream_idle",
    "upstream_reset",
    "upstream_status",
    "decode",
    "max_duration",
    "shutdown",
    "slow_client",
];

/// The `reason` values of `ssegate_rejected_total` (pre-created at 0 for every route): requests a route
/// refused before anything was sent upstream.
pub const REJECT_REASONS: [&str; 6] =
    ["unauthorized", "max_streams", "payload_too_large", "request_timeout", "cors", "bad_request"];

/// The `reason` values of `ssegate_downstream_rejected_total` (pre-created at 0): requests refused before
/// a route was chosen.
pub const DOWNSTREAM_REJECT_REASONS: [&str; 6] =
    ["header_too_large", "header_timeout", "malformed", "bad_target", "method", "not_found"];

/// Buckets of the per-event / per-request latency histograms: 100 µs .. 60 s.
pub const LATENCY_BUCKETS: [f64; 18] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0,
];

/// Buckets of `ssegate_stream_duration_seconds`: 100 ms .. 4 h.
pub const DURATION_BUCKETS: [f64; 16] =
    [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0];

/// Number of `format` label values: every [`Format`] plus `passthrough` (index 0).
const N_FORMATS: usize = Format::ALL.len() + 1;
const N_OUTCOMES: usize = Outcome::ALL.len();

/// The `format` label for `format` (`None` = passthrough).
pub fn format_label(format: Option<Format>) -> &'static str {
    format.map_or(PASSTHROUGH, Format::name)
}

#[inline]
fn format_index(format: Option<Format>) -> usize {
    match format {
        None => 0,
        Some(f) => Format::ALL.iter().position(|x| *x == f).map_or(0, |i| i + 1),
    }
}

fn format_by_index(i: usize) -> Option<Format> {
    i.checked_sub(1).and_then(|i| Format::ALL.get(i).copied())
}

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
    decode_errors: IntCounterVec,
    upstream_errors: IntCounterVec,
    auth_failures: IntCounterVec,
    rejected: IntCounterVec,
    downstream_rejected: IntCounterVec,
    /// `DOWNSTREAM_REJECT_REASONS` order (created at 0 in [`Families::new`]).
    downstream_rejected_by_reason: [IntCounter; DOWNSTREAM_REJECT_REASONS.len()],
    upstream_retries: IntCounterVec,
    build_info: IntGaugeVec,
    ready: IntGauge,
}

// The constructors below only fail on an invalid metric name, label name or bucket list: all of them
// are constants of this file, checked by the unit tests, unreachable by input.
#[allow(clippy::expect_used)]
fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).expect("valid metric definition")
}

#[allow(clippy::expect_used)]
fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::new(name, help).expect("valid metric definition")
}

#[allow(clippy::expect_used)]
fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition")
}

#[allow(clippy::expect_used)]
fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition")
}

#[allow(clippy::expect_used)]
fn histogram_vec(name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels)
        .expect("valid metric definition")
}

fn register<C: Collector + Clone + 'static>(c: &C) {
    if let Err(e) = prometheus::register(Box::new(c.clone())) {
        tracing::warn!(error = %e, "metric not registered");
    }
}

impl Families {
    fn new() -> Families {
        let downstream_rejected = counter_vec(
            "ssegate_downstream_rejected_total",
            "Requests refused before a route was chosen, by reason.",
            &["reason"],
        );
        let f = Families {
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
            decode_errors: counter_vec(
                "ssegate_decode_errors_total",
                "Bad upstream messages met by the decoder, by kind.",
                &["route", "kind"],
            ),
            upstream_errors: counter_vec(
                "ssegate_upstream_errors_total",
                "Streams that failed, by error kind.",
                &["route", "kind"],
            ),
            auth_failures: counter_vec(
                "ssegate_auth_failures_total",
                "Requests refused with 401 because they carried no valid client key.",
                &["route"],
            ),
            rejected: counter_vec(
                "ssegate_rejected_total",
                "Requests a route refused before contacting the upstream, by reason.",
                &["route", "reason"],
            ),
            downstream_rejected_by_reason: DOWNSTREAM_REJECT_REASONS
                .map(|r| downstream_rejected.with_label_values(&[r])),
            downstream_rejected,
            upstream_retries: counter_vec(
                "ssegate_upstream_retries_total",
                "Requests sent again on a new upstream connection because a reused (pooled) one was found closed \
                 before any response.",
                &["route"],
            ),
            build_info: gauge_vec(
                "ssegate_build_info",
                "Always 1; the version of the running binary.",
                &["version"],
            ),
            ready: gauge(
                "ssegate_ready",
                "1 while /readyz answers 200 (listeners accept, not draining), else 0.",
            ),
        };
        register(&f.connections_open);
        register(&f.connections_total);
        register(&f.streams_active);
        register(&f.streams_total);
        register(&f.upstream_header);
        register(&f.first_event);
        register(&f.event_gap);
        register(&f.event_latency);
        register(&f.stream_duration);
        register(&f.events);
        register(&f.bytes);
        register(&f.heartbeats);
        register(&f.client_disconnects);
        register(&f.decode_errors);
        register(&f.upstream_errors);
        register(&f.auth_failures);
        register(&f.rejected);
        register(&f.downstream_rejected);
        register(&f.upstream_retries);
        register(&f.build_info);
        register(&f.ready);
        f.build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        // Process metrics (process_resident_memory_bytes, process_cpu_seconds_total, process_open_fds,
        // ...): the `process` feature of the prometheus crate registers
        // `ProcessCollector::for_self()` in the default registry when it is created (Linux only);
        // registering it again would be a duplicate.
        f
    }
}

fn families() -> &'static Families {
    static FAMILIES: OnceLock<Families> = OnceLock::new();
    FAMILIES.get_or_init(Families::new)
}

/// Per-route handles, resolved once at start-up so the hot path does no label lookups.
///
/// Cheap to clone (every handle is an `Arc` inside); share one per route.
#[derive(Clone)]
pub struct RouteMetrics {
    route: Arc<str>,
    active: IntGauge,
    upstream_header: Histogram,
    first_event: Histogram,
    event_gap: Histogram,
    event_latency: Histogram,
    /// Index 0 = passthrough, then `Format::ALL` order.
    events: [IntCounter; N_FORMATS],
    bytes_in: IntCounter,
    bytes_out: IntCounter,
    heartbeats: IntCounter,
    client_disconnects: IntCounter,
    /// `DECODE_ERROR_KINDS` order.
    decode_errors: [IntCounter; DECODE_ERROR_KINDS.len()],
    /// `UPSTREAM_ERROR_KINDS` order.
    upstream_errors: [IntCounter; UPSTREAM_ERROR_KINDS.len()],
    auth_failures: IntCounter,
    upstream_retries: IntCounter,
    /// `REJECT_REASONS` order.
    rejected: [IntCounter; REJECT_REASONS.len()],
    /// `[format][outcome]`, resolved on first use (one series per combination that actually happens).
    streams_total: Arc<[[OnceLock<IntCounter>; N_OUTCOMES]; N_FORMATS]>,
    /// Per outcome, resolved on first use.
    duration: Arc<[OnceLock<Histogram>; N_OUTCOMES]>,
}

impl fmt::Debug for RouteMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteMetrics").field("route", &self.route).finish_non_exhaustive()
    }
}

/// Decrements `ssegate_streams_active{route}` when dropped.
#[derive(Debug)]
pub struct ActiveStream(IntGauge);

impl Drop for ActiveStream {
    fn drop(&mut self) {
        self.0.dec();
    }
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
}

/// Handles for `route`. Call once per route at start-up (calling it again for the same name is harmless
/// and returns handles to the same series). Creates the route's series at 0: `streams_active`,
/// `events_total` for every format, both `bytes_total` directions, `heartbeats_total`,
/// `client_disconnects_total`, every decode and upstream error kind, and the four latency histograms.
pub fn route(name: &str) -> RouteMetrics {
    let f = families();
    let one = |v: &HistogramVec| v.with_label_values(&[name]);
    RouteMetrics {
        route: Arc::from(name),
        active: f.streams_active.with_label_values(&[name]),
        upstream_header: one(&f.upstream_header),
        first_event: one(&f.first_event),
        event_gap: one(&f.event_gap),
        event_latency: one(&f.event_latency),
        events: std::array::from_fn(|i| {
            f.events.with_label_values(&[name, format_label(format_by_index(i))])
        }),
        bytes_in: f.bytes.with_label_values(&[name, "upstream_in"]),
        bytes_out: f.bytes.with_label_values(&[name, "downstream_out"]),
        heartbeats: f.heartbeats.with_label_values(&[name]),
        client_disconnects: f.client_disconnects.with_label_values(&[name]),
        decode_errors: DECODE_ERROR_KINDS.map(|k| f.decode_errors.with_label_values(&[name, k])),
        upstream_errors: UPSTREAM_ERROR_KINDS.map(|k| f.upstream_errors.with_label_values(&[name, k])),
        auth_failures: f.auth_failures.with_label_values(&[name]),
        upstream_retries: f.upstream_retries.with_label_values(&[name]),
        rejected: REJECT_REASONS.map(|r| f.rejected.with_label_values(&[name, r])),
        streams_total: Arc::new(std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new()))),
        duration: Arc::new(std::array::from_fn(|_| OnceLock::new())),
    }
}

/// A downstream connection was accepted. Keep the guard for the connection's lifetime.
pub fn connection_opened() -> OpenConnection {
    let f = families();
    f.connections_total.inc();
    f.connections_open.inc();
    OpenConnection(f.connections_open.clone())
}

/// A request refused before a route was chosen; `reason` is one of [`DOWNSTREAM_REJECT_REASONS`].
pub fn downstream_rejected(reason: &'static str) {
    let f = families();
    inc_by_label(&f.downstream_rejected_by_reason, &DOWNSTREAM_REJECT_REASONS, reason, || {
        f.downstream_rejected.with_label_values(&[reason])
    });
}

/// Increments the pre-resolved handle of `label` (`handles[i]` belongs to `labels[i]`). A label missing
/// from the list (added to the code without updating it) is still counted, by a label lookup (`slow`).
fn inc_by_label(handles: &[IntCounter], labels: &[&str], label: &str, slow: impl FnOnce() -> IntCounter) {
    match labels.iter().position(|l| *l == label).and_then(|i| handles.get(i)) {
        Some(c) => c.inc(),
        None => slow().inc(),
    }
}

/// Sets `ssegate_ready`. The admin listener refreshes it from the `/readyz` state on every scrape.
pub fn set_ready(ready: bool) {
    families().ready.set(i64::from(ready));
}

impl RouteMetrics {
    /// The route name these handles are labelled with.
    pub fn name(&self) -> &str {
        &self.route
    }

    /// A stream started; keep the guard until it ends.
    pub fn stream_started(&self) -> ActiveStream {
        self.active.inc();
        ActiveStream(self.active.clone())
    }

    /// Request sent upstream → upstream response headers received.
    #[inline]
    pub fn upstream_header(&self, d: Duration) {
        self.upstream_header.observe(d.as_secs_f64());
    }

    /// Client request received → first event flushed.
    #[inline]
    pub fn first_event(&self, d: Duration) {
        self.first_event.observe(d.as_secs_f64());
    }

    /// Between two consecutive events flushed to the client.
    #[inline]
    pub fn event_gap(&self, d: Duration) {
        self.event_gap.observe(d.as_secs_f64());
    }

    /// Upstream bytes read → event flushed.
    #[inline]
    pub fn event_latency(&self, d: Duration) {
        self.event_latency.observe(d.as_secs_f64());
    }

    /// `n` events flushed; `format` `None` is labelled "passthrough".
    #[inline]
    pub fn events(&self, format: Option<Format>, n: u64) {
        if let Some(c) = self.events.get(format_index(format)) {
            c.inc_by(n);
        }
    }

    #[inline]
    pub fn bytes_in(&self, n: u64) {
        self.bytes_in.inc_by(n);
    }

    #[inline]
    pub fn bytes_out(&self, n: u64) {
        self.bytes_out.inc_by(n);
    }

    #[inline]
    pub fn heartbeat(&self) {
        self.heartbeats.inc();
    }

    pub fn client_disconnect(&self) {
        self.client_disconnects.inc();
    }

    /// `kind` is [`ssegate_frame::DecodeError::kind`] (one of [`DECODE_ERROR_KINDS`]).
    pub fn decode_error(&self, kind: &'static str) {
        inc_by_label(&self.decode_errors, &DECODE_ERROR_KINDS, kind, || {
            families().decode_errors.with_label_values(&[&*self.route, kind])
        });
    }

    /// `kind` is one of [`UPSTREAM_ERROR_KINDS`].
    pub fn upstream_error(&self, kind: &'static str) {
        inc_by_label(&self.upstream_errors, &UPSTREAM_ERROR_KINDS, kind, || {
            families().upstream_errors.with_label_values(&[&*self.route, kind])
        });
    }

    /// A request without a valid client key (`ssegate_auth_failures_total`).
    pub fn auth_failure(&self) {
        self.auth_failures.inc();
    }

    /// The request was sent again on a new connection (`ssegate_upstream_retries_total`).
    pub fn upstream_retry(&self) {
        self.upstream_retries.inc();
    }

    /// A request the route refused; `reason` is one of [`REJECT_REASONS`].
    pub fn rejected(&self, reason: &'static str) {
        inc_by_label(&self.rejected, &REJECT_REASONS, reason, || {
            families().rejected.with_label_values(&[&*self.route, reason])
        });
    }

    /// The stream ended: `ssegate_streams_total{format,outcome}` and `ssegate_stream_duration_seconds`.
    pub fn finished(&self, format: Option<Format>, outcome: Outcome, duration: Duration) {
        let fi = format_index(format);
        let oi = outcome.index();
        if let Some(cell) = self.streams_total.get(fi).and_then(|row| row.get(oi)) {
            cell.get_or_init(|| {
                families().streams_total.with_label_values(&[
                    &*self.route,
                    format_label(format),
                    outcome.as_str(),
                ])
            })
            .inc();
        }
        if let Some(cell) = self.duration.get(oi) {
            cell.get_or_init(|| {
                families().stream_duration.with_label_values(&[&*self.route, outcome.as_str()])
            })
            .observe(duration.as_secs_f64());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use prometheus::proto::{MetricFamily, MetricType};
    use prometheus::Encoder;

    fn family(name: &str) -> Option<MetricFamily> {
        prometheus::gather().into_iter().find(|f| f.name() == name)
    }

    /// The value of the series `name` whose labels include all of `labels`.
    fn value(name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let fam = family(name)?;
        let m = fam.get_metric().iter().find(|m| {
            labels.iter().all(|(k, v)| m.get_label().iter().any(|l| l.name() == *k && l.value() == *v))
        })?;
        Some(match fam.get_field_type() {
            MetricType::COUNTER => m.get_counter().value(),
            MetricType::GAUGE => m.get_gauge().value(),
            MetricType::HISTOGRAM => m.get_histogram().sample_count() as f64,
            _ => return None,
        })
    }

    fn histogram(name: &str, route: &str) -> (u64, f64, Vec<(f64, u64)>) {
        let fam = family(name).unwrap();
        let m = fam
            .get_metric()
            .iter()
            .find(|m| m.get_label().iter().any(|l| l.name() == "route" && l.value() == route))
            .unwrap();
        let h = m.get_histogram();
        let buckets = h.get_bucket().iter().map(|b| (b.upper_bound(), b.cumulative_count())).collect();
        (h.sample_count(), h.sample_sum(), buckets)
    }

    fn text() -> String {
        let mut buf = Vec::new();
        prometheus::TextEncoder::new().encode(&prometheus::gather(), &mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn outcome_names() {
        let names: Vec<_> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(
            names,
            ["completed", "client_closed", "upstream_error", "timeout", "shutdown", "rejected"]
        );
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(o.index(), i);
        }
    }

    #[test]
    fn format_indexes_are_a_bijection() {
        assert_eq!(format_index(None), 0);
        assert_eq!(format_by_index(0), None);
        for f in Format::ALL {
            assert_eq!(format_by_index(format_index(Some(f))), Some(f));
        }
        assert_eq!(format_label(None), "passthrough");
        assert_eq!(format_label(Some(Format::JsonSeq)), "json-seq");
    }

    #[test]
    fn buckets_are_sorted_and_span_the_documented_range() {
        assert!(LATENCY_BUCKETS.windows(2).all(|w| w[0] < w[1]));
        assert!(DURATION_BUCKETS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(LATENCY_BUCKETS[0], 0.0001);
        assert_eq!(LATENCY_BUCKETS[LATENCY_BUCKETS.len() - 1], 60.0);
        assert_eq!(DURATION_BUCKETS[DURATION_BUCKETS.len() - 1], 14400.0);
    }

    #[test]
    fn init_is_idempotent_and_registers_everything() {
        init();
        init();
        let _ = route("t_init");
        let t = text();
        for name in [
            "ssegate_downstream_connections_open",
            "ssegate_downstream_connections_total",
            "ssegate_streams_active",
            "ssegate_upstream_header_seconds",
            "ssegate_first_event_seconds",
            "ssegate_event_gap_seconds",
            "ssegate_event_latency_seconds",
            "ssegate_events_total",
            "ssegate_bytes_total",
            "ssegate_heartbeats_total",
            "ssegate_client_disconnects_total",
            "ssegate_decode_errors_total",
            "ssegate_upstream_errors_total",
            "ssegate_auth_failures_total",
            "ssegate_rejected_total",
            "ssegate_downstream_rejected_total",
            "ssegate_upstream_retries_total",
            "ssegate_build_info",
            "ssegate_ready",
        ] {
            assert!(t.contains(&format!("# TYPE {name} ")), "{name} missing from\n{t}");
        }
        let version = env!("CARGO_PKG_VERSION");
        assert!(t.contains(&format!("ssegate_build_info{{version=\"{version}\"}} 1")), "{t}");
        #[cfg(target_os = "linux")]
        for name in ["process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds"] {
            assert_eq!(t.matches(&format!("# TYPE {name} ")).count(), 1, "{name} in\n{t}");
        }
        // Registering a second time would fail loudly in prometheus; `families()` guarantees once.
        assert_eq!(t.matches("# TYPE ssegate_build_info ").count(), 1);
    }

    #[test]
    fn route_series_exist_at_zero() {
        let _m = route("t_zero");
        assert_eq!(value("ssegate_streams_active", &[("route", "t_zero")]), Some(0.0));
        assert_eq!(value("ssegate_heartbeats_total", &[("route", "t_zero")]), Some(0.0));
        assert_eq!(value("ssegate_client_disconnects_total", &[("route", "t_zero")]), Some(0.0));
        for f in ["passthrough", "sse", "ndjson", "json-stream", "json-seq", "json-array", "lines", "chunks"]
        {
            assert_eq!(
                value("ssegate_events_total", &[("route", "t_zero"), ("format", f)]),
                Some(0.0),
                "{f}"
            );
        }
        for d in ["upstream_in", "downstream_out"] {
            assert_eq!(value("ssegate_bytes_total", &[("route", "t_zero"), ("direction", d)]), Some(0.0));
        }
        for k in DECODE_ERROR_KINDS {
            assert_eq!(value("ssegate_decode_errors_total", &[("route", "t_zero"), ("kind", k)]), Some(0.0));
        }
        for k in UPSTREAM_ERROR_KINDS {
            assert_eq!(
                value("ssegate_upstream_errors_total", &[("route", "t_zero"), ("kind", k)]),
                Some(0.0)
            );
        }
        assert_eq!(value("ssegate_auth_failures_total", &[("route", "t_zero")]), Some(0.0));
        assert_eq!(value("ssegate_upstream_retries_total", &[("route", "t_zero")]), Some(0.0));
        for r in REJECT_REASONS {
            assert_eq!(value("ssegate_rejected_total", &[("route", "t_zero"), ("reason", r)]), Some(0.0));
        }
        for r in DOWNSTREAM_REJECT_REASONS {
            assert!(value("ssegate_downstream_rejected_total", &[("reason", r)]).is_some(), "{r}");
        }
        assert_eq!(value("ssegate_first_event_seconds", &[("route", "t_zero")]), Some(0.0));
        // Lazily created: nothing finished yet.
        assert_eq!(value("ssegate_streams_total", &[("route", "t_zero")]), None);
        assert_eq!(value("ssegate_stream_duration_seconds", &[("route", "t_zero")]), None);
    }

    #[test]
    fn active_stream_guard() {
        let m = route("t_active");
        let a = m.stream_started();
        let b = m.stream_started();
        assert_eq!(value("ssegate_streams_active", &[("route", "t_active")]), Some(2.0));
        drop(a);
        assert_eq!(value("ssegate_streams_active", &[("route", "t_active")]), Some(1.0));
        drop(b);
        assert_eq!(value("ssegate_streams_active", &[("route", "t_active")]), Some(0.0));
        // A second `route()` for the same name shares the series.
        let again = route("t_active");
        let _c = again.stream_started();
        assert_eq!(value("ssegate_streams_active", &[("route", "t_active")]), Some(1.0));
    }

    #[test]
    fn connection_guard() {
        // Other tests in this process may open connections concurrently: check deltas of our own guards
        // against the total counter, which only grows.
        let before = value("ssegate_downstream_connections_total", &[]).unwrap_or(0.0);
        let g1 = connection_opened();
        let g2 = connection_opened();
        let after = value("ssegate_downstream_connections_total", &[]).unwrap();
        assert!(after >= before + 2.0);
        assert!(value("ssegate_downstream_connections_open", &[]).unwrap() >= 2.0);
        drop(g1);
        drop(g2);
    }

    #[test]
    fn counters_move() {
        let m = route("t_counters");
        m.events(Some(Format::Ndjson), 3);
        m.events(Some(Format::Ndjson), 2);
        m.events(None, 7);
        m.events(Some(Format::Chunks), 1);
        m.bytes_in(100);
        m.bytes_out(250);
        m.bytes_out(5);
        m.heartbeat();
        m.heartbeat();
        m.client_disconnect();
        m.decode_error("too_large");
        m.decode_error("malformed_json");
        m.decode_error("malformed_json");
        m.decode_error("some_new_kind");
        m.upstream_error("upstream_reset");
        m.upstream_error("slow_client");
        m.upstream_error("brand_new");
        m.auth_failure();
        m.auth_failure();
        m.rejected("max_streams");
        let r = ("route", "t_counters");
        assert_eq!(value("ssegate_events_total", &[r, ("format", "ndjson")]), Some(5.0));
        assert_eq!(value("ssegate_events_total", &[r, ("format", "passthrough")]), Some(7.0));
        assert_eq!(value("ssegate_events_total", &[r, ("format", "chunks")]), Some(1.0));
        assert_eq!(value("ssegate_events_total", &[r, ("format", "sse")]), Some(0.0));
        assert_eq!(value("ssegate_bytes_total", &[r, ("direction", "upstream_in")]), Some(100.0));
        assert_eq!(value("ssegate_bytes_total", &[r, ("direction", "downstream_out")]), Some(255.0));
        assert_eq!(value("ssegate_heartbeats_total", &[r]), Some(2.0));
        assert_eq!(value("ssegate_client_disconnects_total", &[r]), Some(1.0));
        assert_eq!(value("ssegate_decode_errors_total", &[r, ("kind", "too_large")]), Some(1.0));
        assert_eq!(value("ssegate_decode_errors_total", &[r, ("kind", "malformed_json")]), Some(2.0));
        assert_eq!(value("ssegate_decode_errors_total", &[r, ("kind", "invalid_utf8")]), Some(0.0));
        assert_eq!(value("ssegate_decode_errors_total", &[r, ("kind", "some_new_kind")]), Some(1.0));
        assert_eq!(value("ssegate_upstream_errors_total", &[r, ("kind", "upstream_reset")]), Some(1.0));
        assert_eq!(value("ssegate_upstream_errors_total", &[r, ("kind", "slow_client")]), Some(1.0));
        assert_eq!(value("ssegate_upstream_errors_total", &[r, ("kind", "upstream_idle")]), Some(0.0));
        assert_eq!(value("ssegate_upstream_errors_total", &[r, ("kind", "brand_new")]), Some(1.0));
        assert_eq!(value("ssegate_auth_failures_total", &[r]), Some(2.0));
        assert_eq!(value("ssegate_rejected_total", &[r, ("reason", "max_streams")]), Some(1.0));
        assert_eq!(value("ssegate_rejected_total", &[r, ("reason", "cors")]), Some(0.0));
    }

    #[test]
    fn histograms_observe_into_the_right_buckets() {
        let m = route("t_hist");
        m.first_event(Duration::from_micros(50)); // <= 100 µs
        m.first_event(Duration::from_millis(3)); // <= 5 ms
        m.first_event(Duration::from_secs(120)); // +Inf only
        m.upstream_header(Duration::from_millis(20));
        m.event_gap(Duration::from_millis(1));
        m.event_gap(Duration::from_millis(1));
        m.event_latency(Duration::from_micros(200));
        let (count, sum, buckets) = histogram("ssegate_first_event_seconds", "t_hist");
        assert_eq!(count, 3);
        assert!((sum - (0.00005 + 0.003 + 120.0)).abs() < 1e-9, "{sum}");
        let at = |le: f64| buckets.iter().find(|(b, _)| *b == le).map(|(_, c)| *c);
        assert_eq!(at(0.0001), Some(1));
        assert_eq!(at(0.0025), Some(1));
        assert_eq!(at(0.005), Some(2));
        assert_eq!(at(60.0), Some(2));
        assert_eq!(buckets.len(), LATENCY_BUCKETS.len());
        assert_eq!(histogram("ssegate_upstream_header_seconds", "t_hist").0, 1);
        assert_eq!(histogram("ssegate_event_gap_seconds", "t_hist").0, 2);
        let (n, _, b) = histogram("ssegate_event_latency_seconds", "t_hist");
        assert_eq!(n, 1);
        assert_eq!(b.iter().find(|(le, _)| *le == 0.00025).map(|(_, c)| *c), Some(1));
    }

    #[test]
    fn finished_counts_streams_and_durations() {
        let m = route("t_fin");
        m.finished(Some(Format::Sse), Outcome::Completed, Duration::from_secs(2));
        m.finished(Some(Format::Sse), Outcome::Completed, Duration::from_secs(3));
        m.finished(None, Outcome::ClientClosed, Duration::from_millis(50));
        m.finished(Some(Format::JsonArray), Outcome::UpstreamError, Duration::from_secs(7200));
        let r = ("route", "t_fin");
        let st = "ssegate_streams_total";
        assert_eq!(value(st, &[r, ("format", "sse"), ("outcome", "completed")]), Some(2.0));
        assert_eq!(value(st, &[r, ("format", "passthrough"), ("outcome", "client_closed")]), Some(1.0));
        assert_eq!(value(st, &[r, ("format", "json-array"), ("outcome", "upstream_error")]), Some(1.0));
        assert_eq!(value(st, &[r, ("format", "sse"), ("outcome", "timeout")]), None);
        let sd = "ssegate_stream_duration_seconds";
        assert_eq!(value(sd, &[r, ("outcome", "completed")]), Some(2.0));
        assert_eq!(value(sd, &[r, ("outcome", "client_closed")]), Some(1.0));
        assert_eq!(value(sd, &[r, ("outcome", "upstream_error")]), Some(1.0));
        let t = text();
        assert!(
            t.contains(
                "ssegate_stream_duration_seconds_bucket{outcome=\"upstream_error\",route=\"t_fin\",le=\"3600\"} 0"
            ),
            "{t}"
        );
        assert!(
            t.contains(
                "ssegate_stream_duration_seconds_bucket{outcome=\"upstream_error\",route=\"t_fin\",le=\"7200\"} 1"
            ),
            "{t}"
        );
        // Clones share the lazily-resolved series.
        let c = m.clone();
        c.finished(Some(Format::Sse), Outcome::Completed, Duration::from_secs(1));
        assert_eq!(value(st, &[r, ("format", "sse"), ("outcome", "completed")]), Some(3.0));
    }

    /// Every `ssegate_*` / `process_*` name in `text`, histogram suffixes removed.
    fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
        let mut names = std::collections::BTreeSet::new();
        let bytes = text.as_bytes();
        let is_name = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_';
        let mut i = 0;
        while i < bytes.len() {
            let rest = &text[i..];
            let boundary = i == 0 || !is_name(bytes[i - 1]);
            if boundary && (rest.starts_with("ssegate_") || rest.starts_with("process_")) {
                let len = rest.bytes().take_while(|b| is_name(*b)).count();
                let name = &rest[..len];
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .unwrap_or(name);
                names.insert(base.to_owned());
                i += len;
            } else {
                i += rest.chars().next().map_or(1, char::len_utf8);
            }
        }
        names
    }

    fn repo_file(path: &str) -> String {
        let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path);
        std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
    }

    #[test]
    #[cfg(target_os = "linux")] // process_* metrics
    fn dashboard_and_alerts_query_only_exported_metrics() {
        let m = route("t_deploy");
        m.finished(Some(Format::Sse), Outcome::Completed, Duration::from_secs(1));
        let exported: std::collections::BTreeSet<String> =
            prometheus::gather().iter().map(|f| f.name().to_owned()).collect();

        let dashboard: serde_json::Value =
            serde_json::from_str(&repo_file("deploy/grafana/ssegate.json")).unwrap();
        let mut exprs = Vec::new();
        for panel in dashboard["panels"].as_array().unwrap() {
            if panel["type"] == "row" {
                continue;
            }
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{}", panel["title"]);
            let targets = panel["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{}", panel["title"]);
            for t in targets {
                exprs.push(t["expr"].as_str().unwrap().to_owned());
            }
        }
        let vars = dashboard["templating"]["list"].as_array().unwrap();
        let route_var = vars.iter().find(|v| v["name"] == "route").unwrap();
        assert_eq!(route_var["definition"], "label_values(ssegate_streams_active, route)");
        assert!(vars.iter().any(|v| v["name"] == "datasource" && v["type"] == "datasource"));
        let dashboard_names = metric_names(&exprs.join("\n"));
        for name in ["ssegate_first_event_seconds", "ssegate_event_latency_seconds", "ssegate_streams_total"]
        {
            assert!(dashboard_names.contains(name), "dashboard does not query {name}");
        }

        let alert_names = metric_names(&repo_file("deploy/prometheus/alerts.yml"));
        assert!(alert_names.contains("ssegate_streams_total"));
        for name in dashboard_names.iter().chain(&alert_names) {
            assert!(exported.contains(name), "{name} is queried but not exported; exported: {exported:?}");
        }
    }

    #[test]
    fn metric_name_scanner() {
        let names = metric_names(
            "rate(ssegate_first_event_seconds_bucket{x=\"y\"}[5m]) / process_open_fds + my_ssegate_x ssegate_streams_total",
        );
        let names: Vec<_> = names.iter().map(String::as_str).collect();
        assert_eq!(names, ["process_open_fds", "ssegate_first_event_seconds", "ssegate_streams_total"]);
    }

    #[test]
    fn debug_shows_the_route() {
        assert!(format!("{:?}", route("t_debug")).contains("t_debug"));
    }
}
