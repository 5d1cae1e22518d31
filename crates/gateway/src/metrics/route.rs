//! Per-route handles: every series of one route resolved once, so the hot path does no label lookups.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus::{Histogram, HistogramVec, IntCounter, IntGauge};
use ssegate_frame::{DecodeError, Format};

use super::families;
use super::labels::{
    format_by_index, format_index, format_label, outcome_index, DecodeKind, RejectReason, N_FORMATS,
    N_OUTCOMES,
};
use crate::error::{ErrorType, Outcome};

/// Per-route handles, resolved once when the route is built.
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
    slow_clients: IntCounter,
    drained_events: IntCounter,
    draining: IntGauge,
    /// [`DecodeKind::ALL`] order.
    decode_errors: [IntCounter; DecodeKind::ALL.len()],
    /// [`ErrorType::ALL`] order; a handle for each type that is a stream error
    /// ([`ErrorType::is_stream_error`]), `None` for the others (counted elsewhere).
    upstream_errors: [Option<IntCounter>; ErrorType::ALL.len()],
    upstream_retries: IntCounter,
    /// [`RejectReason::ALL`] order.
    rejected: [IntCounter; RejectReason::ALL.len()],
    /// `[format][outcome]`, resolved on first use (one series per combination that actually happens).
    streams_total: Arc<[[OnceLock<IntCounter>; N_OUTCOMES]; N_FORMATS]>,
    /// Per outcome, resolved on first use.
    duration: Arc<[OnceLock<Histogram>; N_OUTCOMES]>,
    /// Keeps the route's series while a handle exists (see [`super::retire_route`]).
    _live: Arc<super::reload::Live>,
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

/// Decrements `ssegate_streams_draining{route}` when dropped.
#[derive(Debug)]
pub struct Draining(IntGauge);

impl Drop for Draining {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Handles for `route`. Call once per route when the routes are built (calling it again for the same name
/// is harmless and returns handles to the same series). Creates the route's series at 0:
/// `streams_active`, `events_total` for every format, both `bytes_total` directions, `heartbeats_total`,
/// `client_disconnects_total`, `slow_clients_total`, `drained_events_total`, `streams_draining`, every decode and upstream error kind, every reject
/// reason, and the four latency histograms.
pub fn route(name: &str) -> RouteMetrics {
    super::reload::live(name, |live| route_with(name, live))
}

fn route_with(name: &str, live: Arc<super::reload::Live>) -> RouteMetrics {
    let f = families();
    let one = |v: &HistogramVec| v.with_label_values(&[name]);
    RouteMetrics {
        _live: live,
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
        slow_clients: f.slow_clients.with_label_values(&[name]),
        drained_events: f.drained_events.with_label_values(&[name]),
        draining: f.streams_draining.with_label_values(&[name]),
        decode_errors: DecodeKind::ALL.map(|k| f.decode_errors.with_label_values(&[name, k.as_str()])),
        upstream_errors: ErrorType::ALL
            .map(|t| t.is_stream_error().then(|| f.upstream_errors.with_label_values(&[name, t.as_str()]))),
        upstream_retries: f.upstream_retries.with_label_values(&[name]),
        rejected: RejectReason::ALL.map(|r| f.rejected.with_label_values(&[name, r.as_str()])),
        streams_total: Arc::new(std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new()))),
        duration: Arc::new(std::array::from_fn(|_| OnceLock::new())),
    }
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

    /// A client that did not accept data within `write_timeout` (`ssegate_slow_clients_total`).
    pub fn slow_client(&self) {
        self.slow_clients.inc();
    }

    /// A drain started (the client left a route with `on_disconnect = "drain"`); keep the guard until it ends.
    pub fn drain_started(&self) -> Draining {
        self.draining.inc();
        Draining(self.draining.clone())
    }

    /// `n` events decoded while draining, delivered to nobody (`ssegate_drained_events_total`).
    pub fn drained_events(&self, n: u64) {
        self.drained_events.inc_by(n);
    }

    /// A bad upstream message (`ssegate_decode_errors_total{kind}`).
    pub fn decode_error(&self, e: &DecodeError) {
        self.decode_errors[DecodeKind::of(e).index()].inc();
    }

    /// A failure of an admitted stream reported to the client (`ssegate_upstream_errors_total{kind}`).
    /// Types that are not stream errors ([`ErrorType::is_stream_error`]) are counted elsewhere and
    /// ignored here.
    pub fn stream_error(&self, ty: ErrorType) {
        if let Some(Some(c)) = self.upstream_errors.get(ty as usize) {
            c.inc();
        }
    }

    /// The request was sent again on a new connection (`ssegate_upstream_retries_total`).
    pub fn upstream_retry(&self) {
        self.upstream_retries.inc();
    }

    /// A request the route refused (`ssegate_rejected_total{reason}`).
    pub fn rejected(&self, reason: RejectReason) {
        self.rejected[reason.index()].inc();
    }

    /// The stream ended: `ssegate_streams_total{format,outcome}` and `ssegate_stream_duration_seconds`.
    pub fn finished(&self, format: Option<Format>, outcome: Outcome, duration: Duration) {
        let fi = format_index(format);
        let oi = outcome_index(outcome);
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
