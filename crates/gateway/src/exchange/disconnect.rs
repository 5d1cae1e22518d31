//! The one exit for "client gone": whatever noticed it (the client's EOF while waiting, a failed write of
//! an event, a heartbeat or a response head), the exchange ends here, and this decides what happens to the
//! upstream, by the route's `on_disconnect`:
//!
//! - `abort` (default): the upstream connection is shut down at once (never pooled: its response was not
//!   read to the end) so that it stops producing — and billing — tokens nobody reads.
//! - `drain`: once the body loop runs, the upstream is read to its end without a client ([`super::drain`]):
//!   its events are decoded and counted (`ssegate_drained_events_total`, the access log's
//!   `drained_events`), delivered to nobody, and a body read to its end returns its connection to the pool.
//!
//! A client that leaves before the body loop (while the request or the upstream's head is on its way, or
//! while the response head is written) ends as `abort` under every policy: nothing decodes that upstream
//! yet. Either way the exchange ends with [`End::ClientGone`] (outcome `client_closed`), after the drain.
//! `detach` (resume) will be one more arm in [`body_left`].

use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;

use super::drain::{self, Parts};
use super::end::End;
use super::pump::Pump;
use crate::config::DisconnectPolicy;
use crate::metrics::RouteMetrics;

/// The client went away before the body loop: counted, the upstream (if one is open) shut down.
pub async fn client_gone(up: Option<&mut HttpSession>, metrics: &RouteMetrics) -> End {
    if let Some(up) = up {
        up.shutdown().await;
    }
    metrics.client_disconnect();
    End::ClientGone
}

/// The client went away during the body loop: counted, then the route's policy decides what happens
/// to the producer.
pub async fn body_left(mut pump: Pump, peer: &HttpPeer, parts: Parts<'_>) -> End {
    parts.route.metrics.client_disconnect();
    match parts.route.cfg.on_disconnect {
        DisconnectPolicy::Abort => pump.abort().await,
        DisconnectPolicy::Drain => drain::run(pump, peer, parts).await,
    }
    End::ClientGone
}
