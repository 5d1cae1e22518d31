//! The one exit for "client gone": whatever noticed it (the client's EOF while waiting, a failed write of
//! an event, a heartbeat or a response head), the exchange ends here, and this decides what happens to the
//! upstream. Today's policy is `abort`: the upstream connection is shut down at once (never pooled: its
//! response was not read to the end) so that it stops producing — and billing — tokens nobody reads.
//! A later disconnect policy (`drain`, `detach`) changes this one function.

use pingora::protocols::http::client::HttpSession;

use super::end::End;
use crate::metrics::RouteMetrics;

/// The client went away: counted, the upstream (if one is open) shut down.
pub async fn client_gone(up: Option<&mut HttpSession>, metrics: &RouteMetrics) -> End {
    if let Some(up) = up {
        up.shutdown().await;
    }
    metrics.client_disconnect();
    End::ClientGone
}
