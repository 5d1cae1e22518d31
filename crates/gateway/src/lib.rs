//! # ssegate
//!
//! A reverse proxy that turns whatever stream an upstream sends into clean Server-Sent Events.
//!
//! ```text
//! client ─HTTP/1.1|h2─> server (pingora listeners, TLS, graceful upgrade)
//!                         └─> route (longest prefix) ─> upstream (connect, forward request, read headers)
//!                                                          │
//! client <─ flush per event <─ encode <─ events <─ decode(format) <─ upstream body bytes
//!            ^ heartbeat deadline (reset by every write)   ^ typed `event: error` on upstream failure
//! ```
//!
//! Modules follow the path a byte takes: [`server`] (listeners, the pingora app) → [`route`] → [`upstream`]
//! → [`stream`] (decode → encode → flush, heartbeats, disconnects, shutdown) → [`respond`] (error
//! responses and error events) ; [`config`] is the one place configuration is parsed and validated,
//! [`metrics`] the one place metrics are named, [`security`] the
//! edge checks (client keys, the request-target rule, CORS), [`admin`] the `/metrics` `/healthz` `/readyz` listener.

pub mod admin;
pub mod cli;
pub mod config;
pub mod demo;
pub mod logging;
pub mod metrics;
pub mod respond;
pub mod route;
pub mod security;
pub mod server;
pub mod stream;
pub mod upstream;
