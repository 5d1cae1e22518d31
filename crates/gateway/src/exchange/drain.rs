//! `on_disconnect = "drain"`: the body loop without a client. The producer ([`Pump`]) goes on reading and
//! decoding the upstream to its end; its events are counted, never delivered (no writes, no client-EOF
//! watch, no heartbeats). The exchange's own deadlines bound it: `max_duration` (from the request's
//! start, as for any stream), `idle_timeout` (from the last upstream read), and a shutdown's
//! `shutdown_drain`. A body read to its end returns its connection to the pool; any other end closes it.

use pingora::upstreams::peer::HttpPeer;
use ssegate_frame::Item;
use tokio::time::Instant;

use super::pump::{Produced, Pump};
use super::stats::{Left, Stats};
use super::timers::{Due, Timers};
use crate::config::DecodeErrorPolicy;
use crate::gateway::RouteState;
use crate::metrics::RouteMetrics;

/// What woke the drain.
enum Next<T> {
    Upstream(T),
    Timer,
    ShutdownChanged,
}

/// How a drain ended (for the debug log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The upstream body ended cleanly.
    Completed,
    /// A deadline passed (`max_duration`, `idle_timeout`, shutdown).
    Deadline(&'static str),
    /// The upstream broke, or sent what cannot be decompressed or decoded.
    Failed(&'static str),
}

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

/// Reads `pump` to its end (or a deadline), counting its events into `parts.stats.drained_events` and
/// `ssegate_drained_events_total`.
pub async fn run(mut pump: Pump, peer: &HttpPeer, parts: Parts<'_>) -> Left {
    let Parts { route, timers, shutdown, shutdown_drain, stats } = parts;
    let m = &route.metrics;
    let policy = route.cfg.on_decode_error;
    let _draining = m.drain_started();
    let mut drained = 0u64;
    let ended = loop {
        let draining = timers.is_draining();
        let next = tokio::select! {
            r = pump.read() => Next::Upstream(r),
            _ = timers.expired() => Next::Timer,
            _ = shutdown.turned(), if !draining => Next::ShutdownChanged,
        };
        match next {
            Next::Upstream(Ok(Some(chunk))) => {
                timers.upstream_read(Instant::now());
                m.bytes_in(chunk.len() as u64);
                match pump.push(chunk) {
                    Ok(Produced::Items) => {
                        if !count(pump.items(), policy, m, &mut drained) {
                            break Ended::Failed("decode");
                        }
                    }
                    // Passthrough: bytes, no events.
                    Ok(Produced::Bytes(_)) => {}
                    Err(_) => break Ended::Failed("decode"),
                }
            }
            Next::Upstream(Ok(None)) => {
                if pump.decoding()
                    && (pump.finish().is_err() || !count(pump.items(), policy, m, &mut drained))
                {
                    break Ended::Failed("decode");
                }
                break Ended::Completed;
            }
            Next::Upstream(Err(_)) => break Ended::Failed("upstream_reset"),
            Next::Timer => {
                let now = Instant::now();
                // Without a client there is no first event to wait for, and no heartbeat to send.
                timers.first_event_overdue(now);
                if let Due::Fail(ty, _) = timers.due(now) {
                    break Ended::Deadline(ty.as_str());
                }
            }
            Next::ShutdownChanged => {
                if shutdown.is_on() {
                    timers.draining(super::shutdown_started(), shutdown_drain);
                }
            }
        }
    };
    stats.drained_events = Some(drained);
    tracing::debug!(route = %route.cfg.name, drained_events = drained, ended = ?ended, "drain ended");
    if ended == Ended::Completed {
        Box::pin(pump.release(route, peer)).await;
        Left::Completed
    } else {
        pump.abort().await;
        Left::Failed
    }
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
