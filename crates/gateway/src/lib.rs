//! # ssegate
//!
//! A reverse proxy that turns whatever stream an upstream sends into clean Server-Sent Events.
//!
//! ```text
//! client ─HTTP/1.1|h2─> server (pingora listeners, TLS, graceful upgrade)
//!                         └─> edge (target rule, route, CORS preflight, key, max_streams, request body)
//!                               └─> exchange ─> upstream (connect, send, retry, head)
//!                                      │ choose (decode | passthrough | error event)
//! client <─ downstream (flush per read) <─ deliver (ids, policy) <─ pump (read → decompress → decode)
//!            ^ timers: heartbeat, header, idle, max duration, drain      ^ typed `event: error` on failure
//! ```
//!
//! Modules follow the path a byte takes: [`server`] (listeners, the pingora app) → [`edge`] (admission)
//! → [`exchange`] (one stream: [`upstream`] request, `choose`, `pump` → `deliver` → `downstream`, `timers`,
//! `disconnect`) ; [`gateway`] is the per-route runtime state built from a [`config::Config`] and held
//! behind a swappable pointer; [`error`] classifies every failure once; [`respond`] writes error bodies;
//! [`config`] is the one place configuration is parsed and validated, [`metrics`] the one place metrics
//! are named; [`security`] the edge checks (client keys, the request-target rule, CORS); [`admin`] the
//! `/metrics` `/healthz` `/readyz` listener; [`reload`] applies a new config on SIGHUP (build-then-swap), with
//! [`tls`] holding the listener's swappable certificate. `docs/ARCHITECTURE.md` has the state chart of an exchange.

pub mod accept_watch;
pub mod admin;
pub mod cli;
pub mod config;
pub mod demo;
pub mod edge;
pub mod error;
pub mod exchange;
pub mod gateway;
pub mod h2_watch;
pub mod headers;
pub mod http_rules;
pub mod logging;
pub mod metrics;
pub mod negotiate;
pub mod preface;
pub mod provider;
pub mod reload;
pub mod respond;
pub mod resume;
pub mod route;
pub mod security;
pub mod server;
pub mod tls;
pub mod upstream;
