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
//! - `detach` (the default with `resume`): the upstream is read on without a client, recording for resume,
//!   until no reader has been attached for `detach_timeout` ([`super::detach`]). On a resumable stream
//!   `drain` records too (and never aborts for want of readers), and `abort` ends the recorded stream (its
//!   readers get `upstream_lost`).

use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;

use super::deliver::Delivery;
use super::drain::{self, Parts};
use super::end::End;
use super::pump::Pump;
use super::stats::Left;
use crate::config::DisconnectPolicy;
use crate::metrics::RouteMetrics;
use crate::resume::store::Ending;

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
pub async fn body_left(
    mut pump: Pump,
    peer: &HttpPeer,
    mut parts: Parts<'_>,
    delivery: &mut Delivery,
    request_id: &str,
) -> End {
    let route = parts.route;
    route.metrics.client_disconnect();
    let resumable = delivery.recording().is_some();
    let left = match route.cfg.on_disconnect {
        DisconnectPolicy::Abort => {
            pump.abort().await;
            if let Some(rec) = delivery.recording() {
                rec.end(Ending::Abandoned);
            }
            Left::Aborted
        }
        DisconnectPolicy::Drain if !resumable => drain::run(pump, peer, parts.reborrow()).await,
        DisconnectPolicy::Drain => {
            Box::pin(super::detach::run(pump, peer, parts.reborrow(), delivery, request_id, None)).await
        }
        DisconnectPolicy::Detach if resumable => {
            let timeout = Some(route.cfg.detach_timeout);
            Box::pin(super::detach::run(pump, peer, parts.reborrow(), delivery, request_id, timeout)).await
        }
        // Resume is on but this stream is not recorded (its id could not be drawn): nothing to detach for.
        DisconnectPolicy::Detach => {
            pump.abort().await;
            Left::Aborted
        }
    };
    parts.stats.left = Some(left);
    End::ClientGone
}
