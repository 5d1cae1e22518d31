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
use bytes::{Bytes, BytesMut};
use http::HeaderValue;
use pingora::connectors::http::Connector;
use pingora::connectors::ConnectorOptions;
use ssegate_frame::encode::Output;
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
    /// Requests in progress, for `max_streams`.
    streams: AtomicUsize,
    /// The `Retry-After` value of a `max_streams` 503 (whole seconds, at least 1).
    pub retry_after: HeaderValue,
    /// `done_event`, encoded once.
    pub done_event: Option<Bytes>,
}

impl RouteState {
    pub fn new(cfg: Route, metrics: RouteMetrics, connector: Arc<Connector>) -> Self {
        let secs = cfg.retry_after.as_secs() + u64::from(cfg.retry_after.subsec_nanos() > 0);
        let done_event = cfg.done_event.as_ref().map(|done| {
            let ev = Event {
                name: done.event.clone().map(Bytes::from),
                data: Bytes::from(done.data.clone()),
                ..Event::default()
            };
            let mut out = BytesMut::new();
            Output::Sse.event(&ev, &mut out);
            out.freeze()
        });
        RouteState {
            pool: Arc::new(PoolState::new(&cfg.name, &cfg.pool, connector.clone(), cfg.connect_timeout)),
            cfg,
            metrics,
            connector,
            streams: AtomicUsize::new(0),
            retry_after: HeaderValue::from(secs.max(1)),
            done_event,
        }
    }

    /// A `max_streams` slot, released on drop; `None` when the route is full. Unlimited routes always get one.
    pub fn admit(&self) -> Option<Slot<'_>> {
        let max = self.cfg.max_streams;
        if max == 0 {
            return Some(Slot(None));
        }
        if self.streams.fetch_add(1, Ordering::AcqRel) >= max {
            self.streams.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Slot(Some(&self.streams)))
    }
}

impl std::fmt::Debug for RouteState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteState").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

/// A `max_streams` slot; frees itself when dropped.
#[derive(Debug)]
pub struct Slot<'a>(Option<&'a AtomicUsize>);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.0 {
            c.fetch_sub(1, Ordering::AcqRel);
        }
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
                let state = RouteState::new(r.clone(), metrics::route(&r.name), connector);
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
            },
        }
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
