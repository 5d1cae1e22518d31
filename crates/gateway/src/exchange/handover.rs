//! A shutdown (SIGTERM, or SIGQUIT in a graceful upgrade) on a route with `resume = { store = "redis" }`:
//! the client is handed over to the next process at once, and this process goes on recording.
//!
//! As soon as the process starts shutting down and the client holds a resume id (at least one event was
//! delivered, so that its `EventSource` reconnects with `Last-Event-ID`), the client gets
//! `retry: <shutdown_retry>` and a clean end of the response (HTTP/1.1: the connection is closed too, so that
//! the reconnect goes to a new connection, which the next process accepts). Nothing is recorded as the
//! stream's ending: the owner runs the [`super::detach`] loop — the upstream is read on and recorded into
//! Redis, seqs continuing — until the upstream ends or `shutdown_drain` passes (then an `event: error` of
//! type `shutdown` is recorded as the ending, so readers never wait for a lease to expire). The client's
//! reconnect lands on the next process, which follows the stream from Redis: every event once and in order,
//! and the upstream was requested once.
//!
//! Before the exchange returns, the owner waits (at most [`SETTLE_LIMIT`]) until the Redis writer has
//! written the stream's ending: pingora stops the process's runtime one second after `shutdown_drain`
//! (whole seconds), which would drop what is still queued.
//!
//! The memory store cannot hand over (the next process has no copy): such streams keep today's behaviour,
//! `event: error` of type `shutdown` at the end of `shutdown_drain`, and a reconnect to the next process
//! gets `404 resume_unknown`, on which `EventSource` stops.
//!
//! The exchange ends as [`End::HandedOver`] (outcome `shutdown`, access log `disconnect = "handover"`),
//! counted by `ssegate_resume_handovers_total`.

use std::time::Duration;

use pingora::protocols::http::ServerSession;
use pingora::upstreams::peer::HttpPeer;
use ssegate_frame::encode::Output;

use super::choose::Committed;
use super::drain::Parts;
use super::pump::Pump;
use super::{End, Exchange};
use crate::config::DisconnectPolicy;

/// The longest the owner waits for its Redis writer to settle the stream before the exchange returns.
pub const SETTLE_LIMIT: Duration = Duration::from_millis(500);

impl Exchange<'_> {
    /// Whether the stream is handed over now: the process is shutting down, the route records into a
    /// shared store, the client reads SSE and holds an id.
    pub(super) fn hands_over(&mut self) -> bool {
        self.handover_due
            && self.down.committed() == Committed::Sse
            && self.delivery.output() == Output::Sse
            && self.delivery.recording().is_some_and(|r| r.seq() > 0)
    }

    /// Hands the client over (see the module docs) and records the rest of the upstream.
    pub(super) async fn hand_over(
        &mut self,
        session: &mut ServerSession,
        pump: Pump,
        peer: &HttpPeer,
    ) -> End {
        let route = self.route;
        self.handover_due = false;
        crate::metrics::resume::handover(&route.cfg.name);
        let retry_ms = self.settings.shutdown_retry.as_millis().min(u64::MAX as u128) as u64;
        self.delivery.output().retry(retry_ms, self.down.out());
        match Box::pin(self.down.finish(session)).await {
            Some(n) => self.stats.wrote(n, &route.metrics),
            None => route.metrics.client_disconnect(),
        }
        if !session.is_http2() {
            // HTTP/1.1: the reconnect must not come back on this connection (this process serves no
            // further request on it). HTTP/2 connections get pingora's GOAWAY.
            session.shutdown().await;
        }
        let seq = self.delivery.recording().map_or(0, |r| r.seq());
        tracing::debug!(route = %route.cfg.name, seq, "stream handed over at shutdown");
        // `drain` never aborts for want of readers; the others (`abort` included: the client did not leave,
        // it was sent away) give up after `detach_timeout` without one.
        let timeout = match route.cfg.on_disconnect {
            DisconnectPolicy::Drain => None,
            DisconnectPolicy::Detach | DisconnectPolicy::Abort => Some(route.cfg.detach_timeout),
        };
        let parts = Parts {
            route,
            timers: &mut self.timers,
            shutdown: &mut self.shutdown,
            shutdown_drain: self.settings.shutdown_drain,
            stats: &mut self.stats,
        };
        let request_id = self.down.answer().request_id();
        let left =
            Box::pin(super::detach::run(pump, peer, parts, &mut self.delivery, request_id, timeout)).await;
        let settled = match self.delivery.recording() {
            Some(rec) => rec.settle(SETTLE_LIMIT).await,
            None => true,
        };
        if !settled {
            tracing::warn!(route = %route.cfg.name, "resume store (redis): the stream's ending was not written before the process exits; readers get upstream_lost once the lease expires");
        }
        tracing::debug!(route = %route.cfg.name, left = left.as_str(), settled, "handed-over stream ended");
        End::HandedOver
    }
}
