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
use ssegate_frame::Item;
use tokio::time::Instant;

use super::deliver::Delivery;
use super::drain::{self, Parts, Sink};
use super::pump::Pump;
use super::record::Recording;
use super::stats::Left;
use crate::error::ErrorType;
use crate::gateway::RouteState;
use crate::metrics::RouteMetrics;
use crate::resume::store::Ending;

/// How often reader presence is checked: a quarter of `detach_timeout`, between 10 ms and 1 s.
fn presence_every(timeout: Duration) -> Duration {
    (timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// Records the events for resume; `timeout`: give up once no reader has been attached this long.
struct Recorder<'d> {
    delivery: &'d mut Delivery,
    request_id: &'d str,
    timeout: Option<Duration>,
    last_reader: Instant,
    recorded: u64,
}

impl Sink for Recorder<'_> {
    fn items(&mut self, items: &mut Vec<Item>, m: &RouteMetrics) -> Result<(), String> {
        let done = self.delivery.record_only(items, m);
        self.recorded += done.events;
        match done.fatal {
            Some(e) => Err(e.to_string()),
            None => Ok(()),
        }
    }

    fn completed(&mut self, route: &RouteState) -> Result<(), (ErrorType, &'static str)> {
        if route.cfg.expect_end && self.delivery.tracker().is_some_and(|t| !t.ended()) {
            return Err((
                ErrorType::UpstreamTruncated,
                "the upstream ended without the provider's end marker",
            ));
        }
        if let Some(rec) = self.delivery.recording() {
            if let Some(done) = &route.done_event {
                rec.append(done);
            }
            rec.end(Ending::Completed);
        }
        Ok(())
    }

    fn failed(&mut self, ty: ErrorType, msg: &str) {
        if let Some(rec) = self.delivery.recording() {
            rec.fail(super::record::error_body(ty, msg, self.request_id));
        }
    }

    fn presence_every(&self) -> Option<Duration> {
        self.timeout.map(presence_every)
    }

    fn present(&mut self, now: Instant) -> bool {
        if self.delivery.recording().is_some_and(|r| r.readers_attached()) {
            self.last_reader = now;
        } else if self.timeout.is_some_and(|t| now.duration_since(self.last_reader) >= t) {
            if let Some(rec) = self.delivery.recording() {
                rec.end(Ending::Abandoned);
            }
            return false;
        }
        true
    }

    fn events(&self) -> u64 {
        self.recorded
    }
}

/// Runs the upstream without a client, recording into `delivery`'s resume recording; `timeout`: abort once
/// no reader has been attached this long (`detach`), `None`: read to the end (`drain`).
pub async fn run(
    pump: Pump,
    peer: &HttpPeer,
    parts: Parts<'_>,
    delivery: &mut Delivery,
    request_id: &str,
    timeout: Option<Duration>,
) -> Left {
    let route = parts.route;
    let m = &route.metrics;
    let _detached = crate::metrics::resume::detached(&route.cfg.name);
    let _draining = timeout.is_none().then(|| m.drain_started());
    let mut recorder = Recorder { delivery, request_id, timeout, last_reader: Instant::now(), recorded: 0 };
    let left = drain::run_into(pump, peer, parts, &mut recorder).await.left();
    let recorded = recorder.recorded;
    m.drained_events(recorded);
    let seq = recorder.delivery.recording().map_or(0, |r: &mut Recording| r.seq());
    tracing::debug!(route = %route.cfg.name, recorded, seq, left = left.as_str(),
        "detached stream ended");
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
