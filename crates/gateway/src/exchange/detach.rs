//! `on_disconnect = "detach"` (the default with `resume`), and `drain` on a resumable stream: the body loop
//! without a client, recording for resume. The producer ([`Pump`]) goes on reading and decoding the
//! upstream; its events are appended to the resume store (ids continue where the client left), so that a
//! reader that reconnects gets them. The stream's ending is recorded as with a client: the `done_event`
//! after a clean end, an `event: error` after a failure or a deadline.
//!
//! `detach` aborts the upstream once no reader has been attached for `detach_timeout` (presence is checked
//! a few times per timeout; a remote store reports readers on other instances); readers that come later
//! replay what was recorded and then get `upstream_lost`. `drain` never aborts for want of readers. Both
//! are bounded like any stream by `max_duration`, `idle_timeout` and a shutdown's `shutdown_drain`.

use std::time::Duration;

use pingora::upstreams::peer::HttpPeer;
use tokio::time::Instant;

use super::deliver::Delivery;
use super::drain::Parts;
use super::pump::{Produced, Pump};
use super::record::Recording;
use super::stats::Left;
use super::timers::Due;
use crate::error::ErrorType;
use crate::resume::store::Ending;

/// What woke the loop.
enum Next<T> {
    Upstream(T),
    Timer,
    Presence,
    ShutdownChanged,
}

/// How often reader presence is checked: a quarter of `detach_timeout`, between 10 ms and 1 s.
fn presence_every(timeout: Duration) -> Duration {
    (timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// Runs the upstream without a client, recording into `delivery`'s resume recording; `timeout`: abort once
/// no reader has been attached this long (`detach`), `None`: read to the end (`drain`).
pub async fn run(
    mut pump: Pump,
    peer: &HttpPeer,
    parts: Parts<'_>,
    delivery: &mut Delivery,
    request_id: &str,
    timeout: Option<Duration>,
) -> Left {
    let Parts { route, timers, shutdown, shutdown_drain, stats } = parts;
    let m = &route.metrics;
    let _detached = crate::metrics::resume::detached(&route.cfg.name);
    let _draining = timeout.is_none().then(|| m.drain_started());
    let every = presence_every(timeout.unwrap_or(Duration::from_secs(1)));
    let mut presence = tokio::time::interval_at(Instant::now() + every, every);
    let mut last_reader = Instant::now();
    let mut recorded = 0u64;
    let fail = |delivery: &mut Delivery, ty: ErrorType, msg: &str| {
        if let Some(rec) = delivery.recording() {
            rec.fail(super::record::error_body(ty, msg, request_id));
        }
    };
    let left = loop {
        let draining = timers.is_draining();
        let next = tokio::select! {
            r = pump.read() => Next::Upstream(r),
            _ = timers.expired() => Next::Timer,
            _ = presence.tick(), if timeout.is_some() => Next::Presence,
            _ = shutdown.turned(), if !draining => Next::ShutdownChanged,
        };
        match next {
            Next::Upstream(Ok(Some(chunk))) => {
                timers.upstream_read(Instant::now());
                m.bytes_in(chunk.len() as u64);
                match pump.push(chunk) {
                    Ok(Produced::Items) => {
                        let done = delivery.record_only(pump.items(), m);
                        recorded += done.events;
                        if let Some(e) = done.fatal {
                            fail(delivery, ErrorType::Decode, &e.to_string());
                            break Left::Failed;
                        }
                    }
                    // A resumable route decodes: no bytes pass through.
                    Ok(Produced::Bytes(_)) => {}
                    Err(msg) => {
                        fail(delivery, ErrorType::Decode, &msg);
                        break Left::Failed;
                    }
                }
            }
            Next::Upstream(Ok(None)) => {
                if pump.decoding() {
                    if let Err(msg) = pump.finish() {
                        fail(delivery, ErrorType::Decode, &msg);
                        break Left::Failed;
                    }
                    let done = delivery.record_only(pump.items(), m);
                    recorded += done.events;
                    if let Some(e) = done.fatal {
                        fail(delivery, ErrorType::Decode, &e.to_string());
                        break Left::Failed;
                    }
                }
                if route.cfg.expect_end && delivery.tracker().is_some_and(|t| !t.ended()) {
                    let msg = "the upstream ended without the provider's end marker";
                    fail(delivery, ErrorType::UpstreamTruncated, msg);
                    break Left::Failed;
                }
                if let Some(done) = &route.done_event {
                    if let Some(rec) = delivery.recording() {
                        rec.append(done);
                    }
                }
                if let Some(rec) = delivery.recording() {
                    rec.end(Ending::Completed);
                }
                break Left::Completed;
            }
            Next::Upstream(Err(_)) => {
                fail(delivery, ErrorType::UpstreamReset, "the upstream connection broke mid-stream");
                break Left::Failed;
            }
            Next::Timer => {
                let now = Instant::now();
                timers.first_event_overdue(now);
                if let Due::Fail(ty, msg) = timers.due(now) {
                    fail(delivery, ty, msg);
                    break Left::Failed;
                }
            }
            Next::Presence => {
                let now = Instant::now();
                if delivery.recording().is_some_and(|r| r.readers_attached()) {
                    last_reader = now;
                } else if timeout.is_some_and(|t| now.duration_since(last_reader) >= t) {
                    if let Some(rec) = delivery.recording() {
                        rec.end(Ending::Abandoned);
                    }
                    break Left::DetachTimeout;
                }
            }
            Next::ShutdownChanged => {
                if shutdown.is_on() {
                    timers.draining(super::shutdown_started(), shutdown_drain);
                }
            }
        }
    };
    stats.drained_events = Some(recorded);
    m.drained_events(recorded);
    let seq = delivery.recording().map_or(0, |r: &mut Recording| r.seq());
    tracing::debug!(route = %route.cfg.name, recorded, seq, left = left.as_str(),
        "detached stream ended");
    if left == Left::Completed {
        Box::pin(pump.release(route, peer)).await;
    } else {
        pump.abort().await;
    }
    left
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_is_checked_a_few_times_per_timeout() {
        assert_eq!(presence_every(Duration::from_secs(60)), Duration::from_secs(1));
        assert_eq!(presence_every(Duration::from_millis(400)), Duration::from_millis(100));
        assert_eq!(presence_every(Duration::from_millis(1)), Duration::from_millis(10));
    }
}
