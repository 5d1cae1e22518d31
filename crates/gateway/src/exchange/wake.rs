//! What wakes a stream's loop: the upstream, the earliest deadline, the client going away, or the shutdown
//! watch — one `select!` for the body loop, and the shutdown wait every other loop (drain, detach, a resume
//! reader) shares.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;

use super::client_watch::ClientWatch;
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
    client: &mut ClientWatch,
    shutdown: &mut Shutdown,
    upstream: impl Future<Output = T>,
) -> Wake<T> {
    let draining = timers.is_draining();
    // Random branch order (tokio's default), not `biased;`: a fixed order measured no better (callgrind,
    // within ±3 %), and it either re-polls the other branches on every upstream wake-up (upstream last) or
    // lets a busy upstream hold off the deadlines and the client (upstream first).
    tokio::select! {
        r = upstream => Wake::Upstream(r),
        _ = timers.expired() => Wake::Timer,
        _ = client.gone(session) => Wake::ClientGone,
        _ = shutdown.turned(), if !draining => Wake::ShutdownChanged,
    }
}

/// Resolves when the shutdown watch changes. The server gone without a shutdown broadcast leaves nothing to
/// wait for: then it never resolves. A resume reader's wait selects on this; a stream's loops (the body
/// loop, drain, detach) wait on their [`Shutdown`] instead.
pub(crate) async fn shutdown_turned(shutdown: &mut ShutdownWatch) {
    if shutdown.changed().await.is_err() {
        std::future::pending::<()>().await
    }
}

/// The future that waits for the next change of the watch; it owns a clone of the receiver.
type Turned = Pin<Box<dyn Future<Output = ()> + Send + Sync>>;

/// The process's shutdown watch as one stream waits on it, turn after turn of its loops.
///
/// [`shutdown_turned`] in a `select!` builds a `watch::Receiver::changed()` future on every turn, which
/// registers a waiter in the watch's list and removes it again when the turn ends: 440–510 instructions per
/// event. Here one future per stream waits for the change (boxed, built at the first wait, registered
/// once), and a turn polls it only when the watch has changed or the task's waker is not the one it was
/// polled with: otherwise a turn costs one atomic load and a waker comparison. The registered waker
/// wakes the task when the watch changes, so skipping the poll loses no change.
pub(crate) struct Shutdown {
    watch: ShutdownWatch,
    /// Resolves at the next change of `watch` (its receiver starts from `watch`'s seen version); `None`
    /// before the first wait and after each change.
    next: Option<Turned>,
    /// The waker `next` was last polled with (and wakes).
    waker: Option<Waker>,
}

impl Shutdown {
    pub fn new(watch: ShutdownWatch) -> Self {
        Shutdown { watch, next: None, waker: None }
    }

    /// Whether the process is shutting down.
    pub fn is_on(&self) -> bool {
        *self.watch.borrow()
    }

    /// Resolves when the watch changes (as [`shutdown_turned`]: never once the server is gone without a
    /// broadcast). Dropping it unresolved keeps the wait registered for the next turn.
    pub fn turned(&mut self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| self.poll_turned(cx))
    }

    fn poll_turned(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let same_waker = self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
        if same_waker && self.next.is_some() && matches!(self.watch.has_changed(), Ok(false)) {
            return Poll::Pending;
        }
        let watch = &self.watch;
        let next = self.next.get_or_insert_with(|| {
            let mut rx = watch.clone();
            Box::pin(async move { shutdown_turned(&mut rx).await })
        });
        match next.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.next = None;
                self.waker = None;
                // The next wait starts from the version just seen (as `changed()` marks it on its receiver).
                self.watch.mark_unchanged();
                Poll::Ready(())
            }
            Poll::Pending => {
                if !same_waker {
                    self.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown").field("on", &self.is_on()).field("waiting", &self.next.is_some()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::super::counting_waker::counting as waker;
    use super::*;

    fn poll(s: &mut Shutdown, w: &Waker) -> Poll<()> {
        s.poll_turned(&mut Context::from_waker(w))
    }

    #[test]
    fn resolves_at_each_change_and_only_then() {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let mut s = Shutdown::new(rx);
        let (woken, w) = waker();
        for _ in 0..3 {
            assert!(poll(&mut s, &w).is_pending(), "nothing changed: every turn waits");
        }
        assert!(!s.is_on());
        tx.send(true).unwrap();
        assert_eq!(woken.get(), 1, "the registered waker is woken by the change");
        assert!(poll(&mut s, &w).is_ready());
        assert!(s.is_on());
        assert!(poll(&mut s, &w).is_pending(), "the next wait starts after the change it saw");
        assert!(poll(&mut s, &w).is_pending());
        tx.send(true).unwrap();
        assert_eq!(woken.get(), 2);
        assert!(poll(&mut s, &w).is_ready(), "a send of the same value is a change too");
        assert!(poll(&mut s, &w).is_pending());
        drop(tx);
        for _ in 0..3 {
            assert!(poll(&mut s, &w).is_pending(), "a server gone without a broadcast: never resolves");
        }
        assert!(s.is_on());
    }

    #[test]
    fn a_change_before_the_first_wait_is_seen() {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tx.send(true).unwrap();
        let mut s = Shutdown::new(rx);
        let (_, w) = waker();
        assert!(poll(&mut s, &w).is_ready(), "as `changed()` on a receiver that has not seen the send");
        assert!(poll(&mut s, &w).is_pending());
    }

    #[test]
    fn a_turn_with_another_waker_moves_the_wait_to_it() {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let mut s = Shutdown::new(rx);
        let (a, wa) = waker();
        let (b, wb) = waker();
        assert!(poll(&mut s, &wa).is_pending());
        assert!(poll(&mut s, &wb).is_pending());
        assert!(poll(&mut s, &wb).is_pending());
        tx.send(true).unwrap();
        assert_eq!(b.get(), 1, "the last waker is woken");
        assert_eq!(a.get(), 0);
        assert!(poll(&mut s, &wa).is_ready(), "the change is not lost to the waker swap");
    }

    #[tokio::test]
    async fn a_dropped_turn_keeps_the_wait_for_the_next() {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let mut s = Shutdown::new(rx);
        for _ in 0..3 {
            tokio::select! {
                biased;
                _ = s.turned() => panic!("nothing changed"),
                _ = std::future::ready(()) => {}
            }
        }
        let send = async {
            tokio::task::yield_now().await;
            tx.send(true).unwrap();
            std::future::pending::<()>().await
        };
        tokio::select! {
            _ = s.turned() => {}
            _ = send => unreachable!(),
        }
        assert!(s.is_on());
    }
}
