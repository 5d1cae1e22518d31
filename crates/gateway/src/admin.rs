//! The admin listener: `GET /metrics`, `/healthz`, `/readyz`. (Contract stub: to be implemented.)

use std::net::SocketAddr;

/// A pingora background service serving the admin endpoints on its own socket. It keeps serving while
/// the traffic listeners drain, so `/readyz` can say 503 during a graceful shutdown.
#[derive(Debug)]
pub struct AdminService {
    pub listen: SocketAddr,
    /// The traffic listeners; `/readyz` is 200 once each accepts a TCP connection (self-probe).
    pub probe: Vec<SocketAddr>,
}

/// Marks the process as draining (`/readyz` -> 503). Called when the shutdown watch fires.
pub fn set_draining() {}
