//! The gateway's runtime state, built from a validated [`Config`]: the routes (each with its config, metric
//! handles, upstream connector, `max_streams` slots and pre-encoded bits) and the process-wide settings an
//! exchange needs.
//!
//! The server holds it behind a swappable pointer ([`SharedGateway`]): every request takes a snapshot
//! (`load_full`, one atomic increment) and keeps it until the request ends, so swapping in a gateway built
//! from a new config never changes a request in flight.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::HeaderValue;
use pingora::connectors::http::Connector;
use pingora::connectors::ConnectorOptions;
use ssegate_frame::Event;

use crate::config::{Config, Route};
use crate::metrics::{self, RouteMetrics};
use crate::route::Router;
use crate::upstream::pool::PoolState;

/// Upstream keep-alive pool size (connections kept per process).
const POOL_SIZE: usize = 256;

/// A configured route with its resolved runtime parts.
pub struct RouteState {
    pub cfg: Route,
    pub metrics: RouteMetrics,
    pub connector: Arc<Connector>,
    /// The route's backends: selection, ejection, health.
    pub pool: Arc<PoolState>,
    /// Requests in progress, for `max_streams`; shared with the state of the same route name in the
    /// gateway this one replaced (a reload keeps counting the streams that are still open).
    streams: Arc<AtomicUsize>,
    /// The `Retry-After` value of a `max_streams` 503 (whole seconds, at least 1).
    pub retry_after: HeaderValue,
    /// `done_event`, as an event (encoded by the stream's output).
    pub done_event: Option<Event>,
    /// Token and provider-error counters of a route with `provider`.
    pub usage: Option<crate::metrics::usage::UsageMetrics>,
    /// The resume store of a route with `resume` (shared by every route naming the same store).
    pub resume: Option<Arc<dyn crate::resume::store::Store>>,
}

impl RouteState {
    pub fn new(cfg: Route, metrics: RouteMetrics, connector: Arc<Connector>) -> Self {
        let secs = cfg.retry_after.as_secs() + u64::from(cfg.retry_after.subsec_nanos() > 0);
        let done_event = cfg.done_event.as_ref().map(|done| Event {
            name: done.event.clone().map(Bytes::from),
            data: Bytes::from(done.data.clone()),
            ..Event::default()
        });
        let usage = cfg.provider.map(|_| crate::metrics::usage::route(&cfg.name));
        RouteState {
            pool: Arc::new(PoolState::new(&cfg.name, &cfg.pool, connector.clone(), cfg.connect_timeout)),
            cfg,
            metrics,
            connector,
            streams: Arc::new(AtomicUsize::new(0)),
            retry_after: HeaderValue::from(secs.max(1)),
            done_event,
            usage,
            resume: None,
        }
    }

    /// Counts this route's streams with `slots` (the counter of the route of the same name in the gateway
    /// being replaced).
    pub fn with_slots(mut self, slots: Arc<AtomicUsize>) -> Self {
        self.streams = slots;
        self
    }

    /// The `max_streams` counter (streams in progress).
    pub fn slots(&self) -> &Arc<AtomicUsize> {
        &self.streams
    }

    /// A `max_streams` slot, released on drop; `None` when the route is full. Unlimited routes always get one
    /// (and count it too, so that a reload that sets a limit knows the streams already open).
    pub fn admit(&self) -> Option<Slot<'_>> {
        let max = self.cfg.max_streams;
        if self.streams.fetch_add(1, Ordering::AcqRel) >= max && max != 0 {
            self.streams.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Slot(&self.streams))
    }
}

impl std::fmt::Debug for RouteState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteState").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

/// A `max_streams` slot; frees itself when dropped.
#[derive(Debug)]
pub struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Process-wide settings every exchange needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub write_timeout: Duration,
    pub max_request_body: usize,
    pub request_body_timeout: Duration,
    pub shutdown_drain: Duration,
    pub shutdown_retry: Duration,
    /// `[server] trusted_proxies`
    pub trusted_proxies: crate::headers::TrustedProxies,
    /// `[server] upstream_request_id_headers`
    pub upstream_request_id_headers: Vec<http::HeaderName>,
    /// `server.max_header_size` (read per request by the server).
    pub max_header_size: usize,
    /// `server.request_header_timeout` (read per connection / request by the server).
    pub request_header_timeout: Duration,
}

/// Everything an exchange needs: the routes and the settings.
#[derive(Debug)]
pub struct Gateway {
    pub router: Router<Arc<RouteState>>,
    pub settings: Settings,
}

/// The gateway the server serves, swappable as a whole.
pub type SharedGateway = ArcSwap<Gateway>;

impl Gateway {
    /// Builds the runtime state of `config`: one connector shared by the routes that use the system's CA
    /// roots, one of its own for each route with a `ca_file`; metric handles per route.
    pub fn build(config: &Config) -> Gateway {
        Gateway::build_after(config, None)
    }

    /// [`Gateway::build`] for a reload: a route whose name exists in `previous` keeps counting its
    /// `max_streams` slots with the same counter.
    pub fn build_after(config: &Config, previous: Option<&Gateway>) -> Gateway {
        let shared = Arc::new(Connector::new(Some(ConnectorOptions::new(POOL_SIZE))));
        let routes = config
            .routes
            .iter()
            .map(|r| {
                let ca_file = r.pool.backends.iter().find_map(|b| b.upstream.ca_file.as_ref());
                let connector = match ca_file {
                    Some(ca) => {
                        let mut o = ConnectorOptions::new(POOL_SIZE);
                        o.ca_file = Some(ca.display().to_string());
                        Arc::new(Connector::new(Some(o)))
                    }
                    None => shared.clone(),
                };
                let mut state = RouteState::new(r.clone(), metrics::route(&r.name), connector);
                if let Some(old) = previous.and_then(|p| p.route_named(&r.name)) {
                    state = state.with_slots(old.streams.clone());
                }
                state.resume = r.resume.as_ref().and_then(|res| crate::resume::store_for(res, config));
                (r.hosts.clone(), r.path_prefix.clone(), Arc::new(state))
            })
            .collect();
        let server = &config.server;
        Gateway {
            router: Router::with_hosts(routes),
            settings: Settings {
                write_timeout: server.write_timeout,
                max_request_body: server.max_request_body,
                request_body_timeout: server.request_body_timeout,
                shutdown_drain: server.shutdown_drain,
                shutdown_retry: server.shutdown_retry,
                trusted_proxies: server.trusted_proxies.clone(),
                upstream_request_id_headers: server.upstream_request_id_headers.clone(),
                max_header_size: server.max_header_size,
                request_header_timeout: server.request_header_timeout,
            },
        }
    }

    /// The route called `name`.
    pub fn route_named(&self, name: &str) -> Option<&Arc<RouteState>> {
        self.router.values().find(|r| r.cfg.name == name)
    }

    /// The pools with active health checks.
    pub fn checked_pools(&self) -> Vec<Arc<PoolState>> {
        self.router.values().filter(|r| r.pool.health.is_some()).map(|r| r.pool.clone()).collect()
    }

    /// The gateway behind a swappable pointer.
    pub fn shared(self) -> Arc<SharedGateway> {
        Arc::new(ArcSwap::from_pointee(self))
    }
}
