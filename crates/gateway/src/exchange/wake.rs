//! What wakes a stream's loop: the upstream, the earliest deadline, the client going away, or the shutdown
//! watch — one `select!` for the body loop, and the shutdown wait every other loop (drain, detach, a resume
//! reader) shares.

use std::future::Future;

use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;

use super::timers::Timers;

/// What woke the loop.
pub(super) enum Wake<T> {
    Upstream(T),
    Timer,
    ClientGone,
    ShutdownChanged,
}

/// Waits for whichever comes first: `upstream`, the earliest deadline, the client going away, or a change
/// of the shutdown watch.
pub(super) async fn wake<T>(
    timers: &mut Timers,
    session: &mut ServerSession,
    shutdown: &mut ShutdownWatch,
    upstream: impl Future<Output = T>,
) -> Wake<T> {
    let draining = timers.is_draining();
    // Random branch order (tokio's default), not `biased;`: a fixed order measured no better (callgrind,
    // within ±3 %), and it either re-polls the other branches on every upstream wake-up (upstream last) or
    // lets a busy upstream hold off the deadlines and the client (upstream first).
    tokio::select! {
        r = upstream => Wake::Upstream(r),
        _ = timers.expired() => Wake::Timer,
        _ = session.read_body_or_idle(true) => Wake::ClientGone,
        _ = shutdown_turned(shutdown), if !draining => Wake::ShutdownChanged,
    }
}

/// Resolves when the shutdown watch changes. The server gone without a shutdown broadcast leaves nothing to
/// wait for: then it never resolves. Every wait of a stream (the body loop, drain, detach, a resume reader)
/// selects on this.
pub(crate) async fn shutdown_turned(shutdown: &mut ShutdownWatch) {
    if shutdown.changed().await.is_err() {
        std::future::pending::<()>().await
    }
}
