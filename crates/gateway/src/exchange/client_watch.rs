//! The client-gone watch of a stream's loops (the wait for the upstream's head, the body loop) and of a
//! resume reader's: notices at once a client that closes its connection or sends bytes while its response
//! streams, without polling its socket on every turn.
//!
//! pingora's `read_body_or_idle(true)` is a one-byte probe read of the client's socket. Built and polled in
//! every `select!` turn it cost ~340 instructions per poll (pingora's stream layers, tokio's registration and
//! its waiter lock), ~510 per event. Its registration outlives the probe: for an HTTP/1 client (TCP or TLS)
//! the probe ends in tokio's `poll_read`, which keeps the waker of the last poll that returned `Pending` in
//! the socket's reader slot until readiness wakes it (dropping the probe does not remove it). So the probe
//! is polled with a waker of its own ([`Due`]) that marks the watch due and wakes the task: a turn polls
//! the probe only when that waker was woken since the last poll (the client's socket reported readiness, or
//! tokio's budget asked for a yield), and otherwise costs one atomic swap and a waker comparison.
//!
//! It relies on nothing else reading the client's socket while the watch waits (within these loops nothing
//! does: the writer only writes). HTTP/2 and other sessions probe on every turn, as before: their
//! probes' registrations are not known to outlive them.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use pingora::protocols::http::ServerSession;

/// The waker the probe registers: marks the watch due and wakes the task that waits on it.
#[derive(Debug, Default)]
struct Due {
    due: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for Due {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.due.store(true, Ordering::Release);
        if let Some(task) = self.task.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            task.wake_by_ref();
        }
    }
}

/// See the module docs. One per stream (or resume reader); its first turn probes.
#[derive(Debug)]
pub(crate) struct ClientWatch {
    due: Arc<Due>,
    /// The task's waker `due` wakes (a clone, to compare a turn's waker with it without the lock).
    task: Option<Waker>,
}

impl ClientWatch {
    pub fn new() -> Self {
        let due = Due::default();
        due.due.store(true, Ordering::Relaxed);
        ClientWatch { due: Arc::new(due), task: None }
    }

    /// Resolves when the client is gone or sent bytes (pingora's probe resolved, with either).
    pub fn gone<'a>(&'a mut self, session: &'a mut ServerSession) -> impl Future<Output = ()> + 'a {
        std::future::poll_fn(move |cx| self.poll_gone(session, cx))
    }

    fn poll_gone(&mut self, session: &mut ServerSession, cx: &mut Context<'_>) -> Poll<()> {
        if !matches!(session, ServerSession::H1(_)) {
            return probe(session, cx);
        }
        if !self.task.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            // Before the swap below: a wake from now on reaches this task.
            *self.due.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
            self.task = Some(cx.waker().clone());
        }
        // Cleared before the probe: readiness that comes during or after it marks the next turn due.
        if !self.due.due.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let waker = Waker::from(self.due.clone());
        probe(session, &mut Context::from_waker(&waker))
    }
}

impl Drop for ClientWatch {
    fn drop(&mut self) {
        // The socket may keep `due` registered after the stream: it then wakes nobody.
        *self.due.task.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// One poll of pingora's probe of the client's socket (built for this poll, dropped after it).
fn probe(session: &mut ServerSession, cx: &mut Context<'_>) -> Poll<()> {
    let probe = std::pin::pin!(session.read_body_or_idle(true));
    probe.poll(cx).map(|_| ())
}

#[cfg(test)]
#[path = "client_watch_tests.rs"]
mod tests;
