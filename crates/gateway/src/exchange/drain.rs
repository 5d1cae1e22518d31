//! `on_disconnect = "drain"`: the body loop without a client. The producer ([`Pump`]) goes on reading and
//! decoding the upstream to its end; its events are counted, never delivered (no writes, no client-EOF
//! watch, no heartbeats). The exchange's own deadlines bound it: `max_duration` (from the request's
//! start, as for any stream), `idle_timeout` (from the last upstream read), and a shutdown's
//! `shutdown_drain`. A body read to its end returns its connection to the pool; any other end closes it.
//!
//! The loop ([`run_into`]) is shared with [`super::detach`], which records the events instead of counting
//! them ([`Sink`]).

use std::time::Duration;

use pingora::upstreams::peer::HttpPeer;
use ssegate_frame::Item;
use tokio::time::Instant;

use super::pump::{Produced, Pump, ReadError};
use super::stats::{Left, Stats};
use super::timers::{Due, Timers};
use crate::config::DecodeErrorPolicy;
use crate::error::ErrorType;
use crate::gateway::RouteState;
use crate::metrics::RouteMetrics;

/// What a drain uses of the exchange: its route, its deadlines, the shutdown watch and its statistics.
#[derive(Debug)]
pub struct Parts<'a> {
    pub route: &'a RouteState,
    pub timers: &'a mut Timers,
    pub shutdown: &'a mut super::wake::Shutdown,
    /// `[server] shutdown_drain`: how long a stream (and a drain) may go on once shutdown started.
    pub shutdown_drain: std::time::Duration,
    pub stats: &'a mut Stats,
}

impl Parts<'_> {
    /// The same parts, borrowed for a shorter while.
    pub fn reborrow(&mut self) -> Parts<'_> {
        Parts {
            route: self.route,
            timers: self.timers,
            shutdown: self.shutdown,
            shutdown_drain: self.shutdown_drain,
            stats: self.stats,
        }
    }
}

/// What woke the loop.
enum Next<T> {
    Upstream(T),
    Timer,
    Presence,
    ShutdownChanged,
}

/// How a loop without a client ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The upstream body ended cleanly (and, where the sink asks for it, with its end marker).
    Completed,
    /// The upstream broke or sent what cannot be decompressed or decoded, or a deadline passed
    /// (`max_duration`, `idle_timeout`, shutdown): the sink was told why ([`Sink::failed`]).
    Failed(ErrorType),
    /// No reader was attached for too long ([`Sink::present`]).
    NoReader,
}

impl Ended {
    /// What the access log's `disconnect` field says of it.
    pub fn left(self) -> Left {
        match self {
            Ended::Completed => Left::Completed,
            Ended::Failed(_) => Left::Failed,
            Ended::NoReader => Left::DetachTimeout,
        }
    }
}

/// What a loop without a client does with the producer's output: count it (`drain`, here) or record it
/// for resume ([`super::detach`]).
pub trait Sink {
    /// Takes the decoded items. `Err` (why) when a bad message ends the stream, as it would with a client.
    fn items(&mut self, items: &mut Vec<Item>, m: &RouteMetrics) -> Result<(), String>;
    /// The upstream ended and its last items were taken. `Err` when the stream fails still.
    fn completed(&mut self, route: &RouteState) -> Result<(), (ErrorType, &'static str)>;
    /// The stream fails with `ty` (`msg`: why).
    fn failed(&mut self, ty: ErrorType, msg: &str);
    /// How often [`Sink::present`] is to be asked (`None`: never).
    fn presence_every(&self) -> Option<Duration>;
    /// Whether to go on at `now` for want of readers.
    fn present(&mut self, now: Instant) -> bool;
    /// The events it took.
    fn events(&self) -> u64;
}

/// The body loop without a client: reads `pump` to its end, a failure or a deadline, handing what it
/// produces to `sink`; the connection returns to the pool after a clean end and is closed otherwise.
pub async fn run_into<S: Sink>(mut pump: Pump, peer: &HttpPeer, parts: Parts<'_>, sink: &mut S) -> Ended {
    let Parts { route, timers, shutdown, shutdown_drain, stats } = parts;
    let m = &route.metrics;
    let mut presence =
        sink.presence_every().map(|every| tokio::time::interval_at(Instant::now() + every, every));
    let ended = loop {
        let draining = timers.is_draining();
        let next = tokio::select! {
            r = pump.read() => Next::Upstream(r),
            _ = timers.expired() => Next::Timer,
            _ = async { if let Some(p) = presence.as_mut() { p.tick().await; } }, if presence.is_some() => {
                Next::Presence
            }
            _ = shutdown.turned(), if !draining => Next::ShutdownChanged,
        };
        match next {
            Next::Upstream(Ok(Some(produced))) => {
                timers.upstream_read(Instant::now());
                match produced {
                    Produced::Items(n) => {
                        m.bytes_in(n as u64);
                        if let Err(msg) = sink.items(pump.items(), m) {
                            break fail(sink, ErrorType::Decode, &msg);
                        }
                    }
                    // Passthrough: bytes, no events (a resumable route decodes: never there).
                    Produced::Bytes(chunk) => m.bytes_in(chunk.len() as u64),
                }
            }
            Next::Upstream(Err(ReadError::Decode(msg))) => break fail(sink, ErrorType::Decode, &msg),
            Next::Upstream(Ok(None)) => {
                if pump.decoding() {
                    if let Err(msg) = pump.finish().and_then(|()| sink.items(pump.items(), m)) {
                        break fail(sink, ErrorType::Decode, &msg);
                    }
                }
                match sink.completed(route) {
                    Ok(()) => break Ended::Completed,
                    Err((ty, msg)) => break fail(sink, ty, msg),
                }
            }
            Next::Upstream(Err(ReadError::Upstream(_))) => {
                break fail(sink, ErrorType::UpstreamReset, "the upstream connection broke mid-stream")
            }
            Next::Timer => {
                let now = Instant::now();
                // Without a client there is no first event to wait for, and no heartbeat to send.
                timers.first_event_overdue(now);
                if let Due::Fail(ty, msg) = timers.due(now) {
                    break fail(sink, ty, msg);
                }
            }
            Next::Presence => {
                if !sink.present(Instant::now()) {
                    break Ended::NoReader;
                }
            }
            Next::ShutdownChanged => {
                if shutdown.is_on() {
                    timers.draining(super::shutdown_started(), shutdown_drain);
                }
            }
        }
    };
    stats.drained_events = Some(sink.events());
    if ended == Ended::Completed {
        Box::pin(pump.release(route, peer)).await;
    } else {
        pump.abort().await;
    }
    ended
}

fn fail<S: Sink>(sink: &mut S, ty: ErrorType, msg: &str) -> Ended {
    sink.failed(ty, msg);
    Ended::Failed(ty)
}

/// `drain` on a stream that is not recorded: events counted and dropped.
struct Counter {
    policy: DecodeErrorPolicy,
    drained: u64,
}

impl Sink for Counter {
    fn items(&mut self, items: &mut Vec<Item>, m: &RouteMetrics) -> Result<(), String> {
        match count(items, self.policy, m, &mut self.drained) {
            true => Ok(()),
            false => Err("a bad message ended the stream".into()),
        }
    }

    fn completed(&mut self, _: &RouteState) -> Result<(), (ErrorType, &'static str)> {
        Ok(())
    }

    fn failed(&mut self, _: ErrorType, _: &str) {}

    fn presence_every(&self) -> Option<Duration> {
        None
    }

    fn present(&mut self, _: Instant) -> bool {
        true
    }

    fn events(&self) -> u64 {
        self.drained
    }
}

/// Reads `pump` to its end (or a deadline), counting its events into `parts.stats.drained_events` and
/// `ssegate_drained_events_total`.
pub async fn run(pump: Pump, peer: &HttpPeer, parts: Parts<'_>) -> Left {
    let route = parts.route;
    let _draining = route.metrics.drain_started();
    let mut counter = Counter { policy: route.cfg.on_decode_error, drained: 0 };
    let ended = run_into(pump, peer, parts, &mut counter).await;
    tracing::debug!(route = %route.cfg.name, drained_events = counter.drained, ended = ?ended, "drain ended");
    ended.left()
}

/// Counts (and drops) the decoded items: events into `drained` and the metric, bad messages into
/// `ssegate_decode_errors_total`. `false` when a bad message ends the stream (as it would with a client).
fn count(items: &mut Vec<Item>, policy: DecodeErrorPolicy, m: &RouteMetrics, drained: &mut u64) -> bool {
    let mut events = 0;
    let mut go_on = true;
    for item in items.drain(..) {
        match item {
            Item::Event(_) => events += 1,
            Item::Comment(_) | Item::Retry(_) => {}
            Item::Error(e) => {
                m.decode_error(&e);
                if !e.recoverable() || policy == DecodeErrorPolicy::Close {
                    go_on = false;
                    break;
                }
            }
        }
    }
    items.clear();
    *drained += events;
    m.drained_events(events);
    go_on
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use ssegate_frame::{DecodeError, Event};

    use super::*;

    fn ev() -> Item {
        Item::Event(Event { data: Bytes::from_static(b"x"), ..Event::default() })
    }

    fn bad(recoverable: bool) -> Item {
        Item::Error(DecodeError::MalformedJson { reason: "x", recoverable })
    }

    #[test]
    fn counts_events_only_and_stops_where_a_client_would() {
        let m = crate::metrics::route("t_drain_count");
        let mut drained = 0;
        let mut items = vec![ev(), Item::Comment(Bytes::from_static(b"c")), Item::Retry(5), ev()];
        assert!(count(&mut items, DecodeErrorPolicy::Skip, &m, &mut drained));
        assert!(items.is_empty());
        assert_eq!(drained, 2);
        let mut items = vec![ev(), bad(true), ev()];
        assert!(count(&mut items, DecodeErrorPolicy::Skip, &m, &mut drained), "skip goes on");
        assert_eq!(drained, 4);
        let mut items = vec![ev(), bad(true), ev()];
        assert!(!count(&mut items, DecodeErrorPolicy::Close, &m, &mut drained), "close stops");
        assert!(items.is_empty());
        assert_eq!(drained, 5, "the events before the error are counted, none after it");
        let mut items = vec![bad(false), ev()];
        assert!(!count(&mut items, DecodeErrorPolicy::Skip, &m, &mut drained), "unrecoverable stops");
        assert_eq!(drained, 5);
    }
}
