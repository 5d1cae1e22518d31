//! Every deadline of one exchange, and the one timer that sleeps until the earliest.
//!
//! | deadline | set | moved | cleared | when it passes |
//! |---|---|---|---|---|
//! | heartbeat | at start (`heartbeat_interval` after the request arrived) | by every write to an SSE response, and when it fires | when the answer is passed through | commit `200 text/event-stream` if nothing is committed yet, then `: keepalive` |
//! | header | when the request was sent upstream | — | when the upstream's head arrived | `upstream_timeout` |
//! | idle | when the body starts | by every upstream read | — | `upstream_idle` |
//! | max | at start (`max_duration`) | — | — | `max_duration` |
//! | first event | when an attempt starts and another backend could take over (`retry.first_event_timeout`) | — | when the last attempt starts | the exchange fails over (checked with [`Timers::first_event_overdue`], never reported by `due`) |
//! | drain | when the process starts shutting down (`shutdown_drain` after that moment) | — | — | `shutdown` (with `retry:`) |
//!
//! When several have passed, the most final wins: drain, max, header, idle, then heartbeat.
//!
//! The timer is one `Sleep`, kept across wake-ups (a new `Sleep` per wake-up costs a timer-wheel insert and
//! removal per upstream read). It is moved with `reset` when the earliest deadline came earlier, never
//! later while it is armed: every read moves `idle` and every write the heartbeat, and a `reset` per event
//! (~160 instructions) is replaced by one wake-up at the deadline it was armed for, which finds nothing due
//! ([`Due::Nothing`]) and arms it for the earliest deadline then (lazy, as nginx checks its timers). No
//! deadline is ever noticed late.

use std::pin::Pin;
use std::time::Duration;

use tokio::time::{sleep_until, Instant, Sleep};

use crate::error::ErrorType;

/// What a passed deadline means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// End the stream with this error and message.
    Fail(ErrorType, &'static str),
    /// Send a heartbeat (the deadline has already moved to the next one).
    Heartbeat,
    /// A spurious wake-up (the deadline moved since the timer was set).
    Nothing,
}

/// The deadlines of one exchange.
#[derive(Debug)]
pub struct Timers {
    heartbeat_every: Option<Duration>,
    idle_after: Duration,
    heartbeat: Option<Instant>,
    header: Option<Instant>,
    idle: Option<Instant>,
    max: Option<Instant>,
    drain: Option<Instant>,
    first_event: Option<Instant>,
    /// Whether writes move the heartbeat (only on an SSE response).
    heartbeat_on_write: bool,
    sleep: Pin<Box<Sleep>>,
    /// `sleep` completed (or was never armed for a deadline): the next wait arms it.
    fired: bool,
}

/// How far away "no deadline" is.
const NEVER: Duration = Duration::from_secs(86_400);

impl Timers {
    /// The deadlines of an exchange that started at `started`: the first heartbeat and `max_duration`.
    pub fn new(
        started: Instant,
        heartbeat_every: Option<Duration>,
        max_duration: Option<Duration>,
        idle_after: Duration,
    ) -> Timers {
        Timers {
            heartbeat_every,
            idle_after,
            heartbeat: heartbeat_every.map(|i| started + i),
            header: None,
            idle: None,
            max: max_duration.map(|d| started + d),
            drain: None,
            first_event: None,
            heartbeat_on_write: false,
            sleep: Box::pin(sleep_until(started)),
            fired: true,
        }
    }

    /// The request was sent upstream at `at`: its head is due within `timeout`.
    pub fn waiting_for_head(&mut self, at: Instant, timeout: Duration) {
        self.header = Some(at + timeout);
    }

    /// The attempt that starts now fails over unless an event was delivered by `at` (`None`: never).
    pub fn first_event_by(&mut self, at: Option<Instant>) {
        self.first_event = at;
    }

    /// Whether the first-event deadline passed at `now` (and no more final one did); clears it.
    pub fn first_event_overdue(&mut self, now: Instant) -> bool {
        let passed = |d: Option<Instant>| d.is_some_and(|d| d <= now);
        if passed(self.first_event) && !passed(self.drain) && !passed(self.max) {
            self.first_event = None;
            return true;
        }
        false
    }

    /// Whether the header deadline passed at `now` (and no more final one did).
    pub fn head_overdue(&self, now: Instant) -> bool {
        let passed = |d: Option<Instant>| d.is_some_and(|d| d <= now);
        passed(self.header) && !passed(self.drain) && !passed(self.max)
    }

    /// The upstream's head arrived.
    pub fn head_arrived(&mut self) {
        self.header = None;
    }

    /// The response is an SSE stream: from now on every write moves the heartbeat.
    pub fn sse_committed(&mut self) {
        self.heartbeat_on_write = true;
    }

    /// The upstream's answer is passed through as it is: no heartbeats.
    pub fn passthrough_committed(&mut self) {
        self.heartbeat = None;
        self.heartbeat_on_write = false;
    }

    /// Something was written to the client at `now`.
    #[inline]
    pub fn wrote(&mut self, now: Instant) {
        if self.heartbeat_on_write {
            if let Some(i) = self.heartbeat_every {
                self.heartbeat = Some(now + i);
            }
        }
    }

    /// The upstream sent body bytes at `now` (or the body starts): silence is measured from here.
    #[inline]
    pub fn upstream_read(&mut self, now: Instant) {
        self.idle = Some(now + self.idle_after);
    }

    /// The process started shutting down at `since`: the stream may go on for `drain` from then.
    /// Idempotent: the first call sets the deadline.
    pub fn draining(&mut self, since: Instant, drain: Duration) {
        if self.drain.is_none() {
            self.drain = Some(since + drain);
        }
    }

    /// Whether the drain deadline is set.
    pub fn is_draining(&self) -> bool {
        self.drain.is_some()
    }

    /// The earliest deadline (or a day from now).
    pub fn next(&self) -> Instant {
        [self.heartbeat, self.header, self.idle, self.max, self.drain, self.first_event]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or_else(|| Instant::now() + NEVER)
    }

    /// Completes when the earliest deadline passes, or (at most once per deadline that moved later) when
    /// the one the timer was armed for passes: then [`Timers::due`] finds nothing due.
    pub async fn expired(&mut self) {
        let next = self.next();
        let armed = self.sleep.deadline();
        if next < armed || (self.fired && next != armed) {
            self.sleep.as_mut().reset(next);
            self.fired = false;
        }
        self.sleep.as_mut().await;
        self.fired = true;
    }

    /// Which passed deadline matters most at `now`; a passed heartbeat moves to the next one.
    pub fn due(&mut self, now: Instant) -> Due {
        let passed = |d: Option<Instant>| d.is_some_and(|d| d <= now);
        if passed(self.drain) {
            Due::Fail(ErrorType::Shutdown, "the gateway is shutting down; reconnect")
        } else if passed(self.max) {
            Due::Fail(ErrorType::MaxDuration, "the stream reached the route's max_duration")
        } else if passed(self.header) {
            Due::Fail(
                ErrorType::UpstreamTimeout,
                "the upstream sent no response headers within header_timeout",
            )
        } else if passed(self.idle) {
            Due::Fail(ErrorType::UpstreamIdle, "the upstream sent nothing within idle_timeout")
        } else if passed(self.heartbeat) {
            self.heartbeat = self.heartbeat_every.map(|i| now + i);
            Due::Heartbeat
        } else {
            Due::Nothing
        }
    }
}

#[cfg(test)]
#[path = "timers_tests.rs"]
mod tests;
