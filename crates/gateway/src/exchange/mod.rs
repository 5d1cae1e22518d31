//! One exchange, after the edge admitted it: open the upstream, wait for its head (committing early and
//! heartbeating if it is slow), decide what to do with the answer, then run one loop over
//!
//! - upstream body reads → decompress → decode → items ([`pump`], the producer),
//! - items → ids, decode-error policy → encoded output ([`deliver`]) → one write + flush per read
//!   ([`downstream`], the consumer and the only writer to the client),
//! - every deadline in one timer ([`timers`]): heartbeat, header, idle, max duration, shutdown drain,
//! - the client going away ([`disconnect`], the one exit: it aborts the upstream, or [`drain`]s it),
//! - the process shutting down (streams may finish during `shutdown_drain`, then get `retry:` and close; on
//!   a route that records into Redis the client is handed over at once: [`handover`]).
//!
//! The producer and the consumer meet in this task and this `select!`: no channel, no extra wake-up or
//! allocation per event. See `docs/ARCHITECTURE.md` for the state chart.
//!
//! Memory per stream is bounded: an upstream chunk is decoded, written and flushed before the next one is
//! read, and a write that the client does not accept within `write_timeout` ends the stream.
//!
//! An async fn's state is as large as its largest await, and the exchange's state lives as long as the
//! stream: so the cold awaits (DNS, connect, error answers, heartbeats, timeouts, pool release) are boxed
//! futures, allocated only while they run. The per-event path boxes nothing.

mod attempt;
pub mod choose;
mod client_watch;
#[cfg(test)]
mod counting_waker;
mod deliver;
mod detach;
mod disconnect;
pub mod downstream;
mod drain;
mod end;
mod failover;
mod handover;
mod pump;
pub mod record;
mod request;
mod stats;
mod timers;
mod wake;

use std::sync::OnceLock;

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pingora::protocols::http::client::HttpSession;
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use pingora::upstreams::peer::HttpPeer;
use ssegate_frame::encode::Output;
use tokio::time::Instant;

use crate::config::{Balance, FormatChoice};
use crate::error::ErrorType;
use crate::gateway::{RouteState, Settings};
use crate::headers::{Answer, Forwarded};
use crate::metrics::{BackendResult, RetryReason};
use crate::provider::Tracker;
use crate::resume::store::Ending;
use crate::security::KeyHeaders;
use crate::upstream;
use choose::Committed;
pub(crate) use client_watch::ClientWatch;
use deliver::Delivery;
use downstream::{Downstream, WriteError};
pub use end::End;
use failover::{before_first_event, AttemptFailed, Attempts};
use pump::{Produced, Pump, ReadError};
pub use stats::Stats;
use timers::{Due, Timers};
pub(crate) use wake::shutdown_turned;
use wake::{wake, Shutdown, Wake};

/// What an admitted request brings to the exchange.
#[derive(Debug)]
pub struct Admitted {
    /// The path and query sent upstream.
    pub upstream_path: String,
    /// The request body, read to its end within the limits.
    pub body: Bytes,
    /// Which headers carried the client's gateway key (not forwarded).
    pub key_headers: KeyHeaders,
    /// CORS headers for every response of this request.
    pub cors: Vec<(HeaderName, HeaderValue)>,
    /// The `X-Forwarded-*` headers to send upstream (boxed: the exchange future lives as long as the stream,
    /// and these are needed only to build the upstream request).
    pub forwarded: Box<Forwarded>,
}

/// Why the body loop stops before the upstream's end.
enum Stop {
    /// The stream ends with this.
    End(End),
    /// A write to the client failed: it left (or stopped reading).
    ClientLeft(WriteError),
}

/// What a passed deadline did, when it stops the stream.
enum TimerStop {
    /// End the stream with this error.
    Fail(ErrorType, &'static str),
    /// A heartbeat could not be written.
    ClientLeft(WriteError),
}

/// When the shutdown watch first turned true, as seen by any exchange.
static SHUTDOWN_AT: OnceLock<Instant> = OnceLock::new();

fn shutdown_started() -> Instant {
    *SHUTDOWN_AT.get_or_init(|| {
        crate::admin::set_draining();
        Instant::now()
    })
}

/// One exchange: disjoint parts, orchestrated here.
#[derive(Debug)]
pub struct Exchange<'a> {
    route: &'a RouteState,
    settings: &'a Settings,
    started: Instant,
    shutdown: Shutdown,
    client: ClientWatch,
    timers: Timers,
    down: Downstream,
    delivery: Delivery,
    attempts: Attempts,
    /// The process is shutting down and the route records into a shared store: the client is handed over
    /// once it holds a resume id ([`handover`]).
    handover_due: bool,
    pub stats: Stats,
}

impl<'a> Exchange<'a> {
    pub fn new(
        route: &'a RouteState,
        settings: &'a Settings,
        started: Instant,
        shutdown: ShutdownWatch,
        cors: Vec<(HeaderName, HeaderValue)>,
        answer: Answer,
        output: Output,
    ) -> Self {
        let cfg = &route.cfg;
        // NDJSON has no comments: its heartbeats are empty lines, sent only where the route asks for them.
        let heartbeat = match output {
            Output::Ndjson if !cfg.ndjson_heartbeats => None,
            _ => cfg.heartbeat_interval,
        };
        let mut down = Downstream::new(output, cors, answer);
        if cfg.outputs.len() > 1 {
            down.vary_accept();
        }
        let mut ex = Exchange {
            route,
            settings,
            started,
            shutdown: Shutdown::new(shutdown),
            client: ClientWatch::new(),
            timers: Timers::new(started, heartbeat, cfg.max_duration, cfg.idle_timeout),
            down,
            delivery: Delivery::new(output, cfg.ids, cfg.on_decode_error)
                .tracking(cfg.provider.map(|p| Tracker::counting(p, route.usage.clone()))),
            attempts: Attempts::default(),
            handover_due: false,
            stats: Stats::default(),
        };
        ex.check_shutdown();
        ex
    }

    /// Records the stream for resume (before [`Exchange::run`]): its events get `id: <stream>.<seq>`, its
    /// head `ssegate-stream-id`.
    pub fn record(&mut self, recording: Box<record::Recording>) {
        self.delivery.record(recording);
    }

    /// The token usage and model the stream reported (routes with `provider`).
    pub fn usage(&self) -> Option<&crate::provider::Usage> {
        self.delivery.tracker().map(Tracker::usage)
    }

    /// The request id and the route's `response_headers`, which every answer of the request carries.
    pub fn answer(&self) -> &Answer {
        self.down.answer()
    }

    /// Runs the exchange to its end: attempts on the route's backends, one after the other, until one
    /// answers or a failure may not fail over ([`failover`]).
    pub async fn run(&mut self, session: &mut ServerSession, mut req: Admitted) -> End {
        let route = self.route;
        let cfg = &route.cfg;
        let converting = cfg.format != FormatChoice::Passthrough;
        let body_len = req.body.len();
        // Built per attempt and handed to it (the first one here, to refuse a bad request before any
        // attempt): a stream keeps no copy of its upstream request but the one pingora wrote.
        let build = |session: &ServerSession, answer: &Answer| {
            upstream::build_request(
                session.req_header(),
                cfg,
                &req.upstream_path,
                body_len,
                converting,
                upstream::ProxyHeaders { forwarded: &req.forwarded, request_id: &answer.request_id },
                req.key_headers,
            )
        };
        // Boxed: 352 bytes otherwise held in the exchange's state for the whole stream.
        let mut head = match build(session, self.down.answer()) {
            Ok(h) => Some(Box::new(h)),
            Err(e) => return self.fail(session, ErrorType::BadRequest, &e.to_string(), None).await,
        };
        if let Balance::Hash(name) = &cfg.pool.balance {
            self.attempts.key = session.req_header().headers.get(name).cloned();
        }
        let pool = &route.pool;
        let retry = &cfg.pool.retry;
        let mut last: Option<AttemptFailed> = None;
        loop {
            let Some(b) = pool.select(self.attempts.key(), self.attempts.tried) else {
                return match last {
                    Some(f) => self.upstream_fail(session, f.ty, f.public, &f.detail).await,
                    None => {
                        let msg = "no backend of this route is available";
                        self.upstream_fail(session, ErrorType::UpstreamUnavailable, msg, &msg).await
                    }
                };
            };
            self.attempts.tried.add(b);
            self.attempts.count += 1;
            self.attempts.backend = Some(b);
            self.stats.backend = Some(b);
            self.stats.attempts = self.attempts.count;
            let backend = pool.backend(b);
            let _stream = pool.stream(b);
            let first_event = retry.first_event_timeout.filter(|_| self.attempts.count < retry.attempts);
            self.timers.first_event_by(first_event.map(|t| Instant::now() + t));
            let base = match head.take().map_or_else(|| build(session, self.down.answer()).map(Box::new), Ok)
            {
                Ok(h) => h,
                Err(e) => return self.fail(session, ErrorType::BadRequest, &e.to_string(), None).await,
            };
            // The last attempt takes the request body (a prompt can be large): not kept once it is sent.
            let body = match self.attempts.count >= retry.attempts {
                true => std::mem::take(&mut req.body),
                false => req.body.clone(),
            };
            let f = match self.attempt(session, b, base, body).await {
                Ok(end) => {
                    backend.metrics.attempt(BackendResult::Ok);
                    return end;
                }
                Err(f) => f,
            };
            backend.metrics.attempt(BackendResult::Failed(f.reason));
            pool.failed(b);
            let wanted = match f.reason {
                RetryReason::Connect => retry.on.connect,
                RetryReason::Timeout => retry.on.timeout,
                RetryReason::Status | RetryReason::FirstEvent => true,
            };
            if !(wanted && self.may_fail_over()) {
                return self.upstream_fail(session, f.ty, f.public, &f.detail).await;
            }
            pool.failovers.inc(f.reason);
            tracing::info!(
                route = %cfg.name,
                backend = %backend.cfg.name,
                reason = f.reason.as_str(),
                error = %f.detail,
                "attempt failed; trying another backend"
            );
            last = Some(f);
        }
    }

    /// Whether the current attempt's failure may move the request on: attempts left, another backend
    /// available, and no event written yet.
    pub(super) fn may_fail_over(&self) -> bool {
        self.attempts.count < self.route.cfg.pool.retry.attempts
            && before_first_event(self.down.committed(), self.stats.events)
            && self.route.pool.any_left(self.attempts.tried)
    }

    /// The body loop: the producer's items to the consumer, until the upstream ends, fails, the client
    /// leaves or a deadline passes.
    ///
    /// Not an `async fn`: its arguments would be moved into the state once as captured and once as
    /// bindings, and the `Pump` (800 bytes) kept twice for the whole stream; the `async move` block holds
    /// it once.
    #[allow(clippy::manual_async_fn)]
    fn pump<'s>(
        &'s mut self,
        session: &'s mut ServerSession,
        mut pump: Pump,
        peer: &'s HttpPeer,
    ) -> impl std::future::Future<Output = End> + use<'a, 's> {
        async move {
            self.timers.upstream_read(Instant::now());
            loop {
                let wake =
                    wake(&mut self.timers, session, &mut self.client, &mut self.shutdown, pump.read()).await;
                match wake {
                    Wake::Upstream(Ok(Some(produced))) => {
                        let read_at = Instant::now();
                        self.timers.upstream_read(read_at);
                        match produced {
                            Produced::Bytes(chunk) => {
                                self.route.metrics.bytes_in(chunk.len() as u64);
                                // Passthrough: the upstream's chunk as it is, not copied.
                                let written = self.down.write(session, chunk).await;
                                if let Err(e) = self.wrote(written) {
                                    return Box::pin(self.client_left(Some(e), pump, peer)).await;
                                }
                            }
                            Produced::Items(n) => {
                                self.route.metrics.bytes_in(n as u64);
                                match self.deliver(session, &mut pump, read_at).await {
                                    Ok(()) if self.handover_due && self.hands_over() => {
                                        return Box::pin(self.hand_over(session, pump, peer)).await
                                    }
                                    Ok(()) => {}
                                    Err(Stop::End(end)) => return end,
                                    Err(Stop::ClientLeft(e)) => {
                                        return Box::pin(self.client_left(Some(e), pump, peer)).await
                                    }
                                }
                            }
                        }
                    }
                    Wake::Upstream(Err(ReadError::Decode(msg))) => {
                        pump.abort().await;
                        return self.upstream_fail(session, ErrorType::Decode, &msg, &msg).await;
                    }
                    Wake::Upstream(Ok(None)) => {
                        let read_at = Instant::now();
                        if pump.decoding() {
                            if let Err(msg) = pump.finish() {
                                return self.upstream_fail(session, ErrorType::Decode, &msg, &msg).await;
                            }
                            match self.deliver(session, &mut pump, read_at).await {
                                Ok(()) => {}
                                Err(Stop::End(end)) => return end,
                                // The upstream is at its end: nothing left to drain.
                                Err(Stop::ClientLeft(e)) => {
                                    return Box::pin(self.write_failed(e, Some(pump.session()))).await
                                }
                            }
                            if self.route.cfg.expect_end
                                && self.delivery.tracker().is_some_and(|t| !t.ended())
                            {
                                Box::pin(pump.release(self.route, peer)).await;
                                let msg = "the upstream ended without the provider's end marker";
                                return self
                                    .upstream_fail(session, ErrorType::UpstreamTruncated, msg, &msg)
                                    .await;
                            }
                            if let Some(done) = &self.route.done_event {
                                self.delivery.done(done, self.down.out());
                            }
                        }
                        if let Some(rec) = self.delivery.recording() {
                            rec.end(Ending::Completed);
                        }
                        match Box::pin(self.down.finish(session)).await {
                            Some(n) => self.stats.wrote(n, &self.route.metrics),
                            None => {
                                return Box::pin(disconnect::client_gone(None, &self.route.metrics)).await
                            }
                        }
                        Box::pin(pump.release(self.route, peer)).await;
                        return End::Completed;
                    }
                    Wake::Upstream(Err(ReadError::Upstream(e))) => {
                        pump.abort().await;
                        let msg = "the upstream connection broke mid-stream";
                        return self.upstream_fail(session, ErrorType::UpstreamReset, msg, &e).await;
                    }
                    Wake::ClientGone => return Box::pin(self.client_left(None, pump, peer)).await,
                    Wake::ShutdownChanged => {
                        self.check_shutdown();
                        if self.hands_over() {
                            return Box::pin(self.hand_over(session, pump, peer)).await;
                        }
                    }
                    Wake::Timer => {
                        if self.timers.first_event_overdue(Instant::now()) && self.may_fail_over() {
                            pump.abort().await;
                            return End::NextBackend;
                        }
                        match Box::pin(self.timer(session)).await {
                            Ok(()) => {}
                            Err(TimerStop::Fail(ty, msg)) => {
                                pump.abort().await;
                                return self.fail(session, ty, msg, None).await;
                            }
                            Err(TimerStop::ClientLeft(e)) => {
                                return Box::pin(self.client_left(Some(e), pump, peer)).await
                            }
                        }
                    }
                }
            }
        }
    }

    /// Delivers the pump's items in one flush. A fatal decode error ends the stream after the events before
    /// it are delivered.
    async fn deliver(
        &mut self,
        session: &mut ServerSession,
        pump: &mut Pump,
        read_at: Instant,
    ) -> Result<(), Stop> {
        let done = self.delivery.deliver(pump.items(), self.down.out(), &self.route.metrics);
        let written = self.down.flush(session).await;
        // One clock read for the heartbeat and the read→flush latency.
        let now = Instant::now();
        self.wrote_at(written, now).map_err(Stop::ClientLeft)?;
        self.stats.events_flushed(done.events, now, read_at, self.started, &self.route.metrics);
        if let Some(e) = done.fatal {
            pump.abort().await;
            return Err(Stop::End(self.fail(session, ErrorType::Decode, &e.to_string(), None).await));
        }
        Ok(())
    }

    /// Acts on the deadline that passed: a heartbeat (committing `200 text/event-stream` first if nothing
    /// was committed yet) or the end of the stream with a typed error.
    async fn on_timer(&mut self, session: &mut ServerSession, up: &mut HttpSession) -> Result<(), End> {
        match self.timer(session).await {
            Ok(()) => Ok(()),
            Err(TimerStop::Fail(ty, msg)) => {
                up.shutdown().await;
                Err(self.fail(session, ty, msg, None).await)
            }
            Err(TimerStop::ClientLeft(e)) => Err(self.write_failed(e, Some(up)).await),
        }
    }

    /// [`Exchange::on_timer`] without the upstream: the heartbeat is written here, a failure or a client
    /// that left is the caller's to act on.
    async fn timer(&mut self, session: &mut ServerSession) -> Result<(), TimerStop> {
        match self.timers.due(Instant::now()) {
            Due::Fail(ty, msg) => Err(TimerStop::Fail(ty, msg)),
            Due::Heartbeat => {
                if self.down.committed() == Committed::No {
                    Box::pin(self.commit_sse(session, None)).await.map_err(TimerStop::ClientLeft)?;
                }
                let written = self.down.heartbeat(session).await;
                self.wrote(written).map_err(TimerStop::ClientLeft)?;
                self.stats.heartbeat(&self.route.metrics);
                Ok(())
            }
            Due::Nothing => Ok(()),
        }
    }

    async fn commit_sse(
        &mut self,
        session: &mut ServerSession,
        upstream: Option<(&pingora::http::ResponseHeader, bool)>,
    ) -> Result<(), WriteError> {
        let stream_id = self.delivery.recording().map(|r| r.header());
        self.down.commit_sse(session, upstream, stream_id).await?;
        self.timers.sse_committed();
        Ok(())
    }

    /// Accounts for a body write: bytes counted, the heartbeat moved.
    #[inline]
    fn wrote(&mut self, written: Result<usize, WriteError>) -> Result<(), WriteError> {
        let n = written?;
        if n > 0 {
            self.stats.wrote(n, &self.route.metrics);
            self.timers.wrote(Instant::now());
        }
        Ok(())
    }

    /// [`Exchange::wrote`] with the clock already read at `now`.
    #[inline]
    fn wrote_at(&mut self, written: Result<usize, WriteError>, now: Instant) -> Result<(), WriteError> {
        let n = written?;
        if n > 0 {
            self.stats.wrote(n, &self.route.metrics);
            self.timers.wrote(now);
        }
        Ok(())
    }

    /// A write to the client failed: the stream ends as "client gone"; a client that stopped reading is
    /// counted as such (it cannot hold the upstream or memory).
    async fn write_failed(&mut self, e: WriteError, up: Option<&mut HttpSession>) -> End {
        self.slow_client(e);
        disconnect::client_gone(up, &self.route.metrics).await
    }

    /// The client left during the body loop (its EOF, or a failed write `e`): the route's
    /// `on_disconnect` decides what happens to the producer ([`disconnect::body_left`]).
    async fn client_left(&mut self, e: Option<WriteError>, pump: Pump, peer: &HttpPeer) -> End {
        if let Some(e) = e {
            self.slow_client(e);
        }
        let parts = drain::Parts {
            route: self.route,
            timers: &mut self.timers,
            shutdown: &mut self.shutdown,
            shutdown_drain: self.settings.shutdown_drain,
            stats: &mut self.stats,
        };
        let request_id = self.down.answer().request_id();
        disconnect::body_left(pump, peer, parts, &mut self.delivery, request_id).await
    }

    /// Counts a client that stopped reading (it cannot hold the upstream or memory).
    fn slow_client(&self, e: WriteError) {
        if e == WriteError::Slow {
            self.route.metrics.slow_client();
            tracing::info!(route = %self.route.cfg.name, "client stopped reading; stream dropped");
        }
    }

    /// Starts the drain clock if the process is shutting down; on a route that records into a shared store,
    /// the client is to be handed over.
    fn check_shutdown(&mut self) {
        if self.shutdown.is_on() {
            self.timers.draining(shutdown_started(), self.settings.shutdown_drain);
            self.handover_due = self.route.resume.as_ref().is_some_and(|s| s.kind() == "redis");
        }
    }

    /// An upstream failure (before or after commit): logged with its full `detail` (addresses, pingora's
    /// error chain), reported to the client with the short `public` message only.
    async fn upstream_fail(
        &mut self,
        session: &mut ServerSession,
        ty: ErrorType,
        public: &str,
        detail: &(dyn std::fmt::Display + Sync),
    ) -> End {
        tracing::warn!(route = %self.route.cfg.name, error_type = ty.as_str(), error = %detail, "upstream failure");
        self.fail(session, ty, public, None).await
    }

    /// Counts a failure ([`crate::error`] decides where) and reports it the only way the committed state
    /// allows, then ends the response.
    async fn fail(
        &mut self,
        session: &mut ServerSession,
        ty: ErrorType,
        msg: &str,
        status: Option<u16>,
    ) -> End {
        let m = &self.route.metrics;
        match ty.reject_reason() {
            Some(reason) => m.rejected(reason),
            None => m.stream_error(ty),
        }
        let status = status.unwrap_or_else(|| ty.status());
        let retry_ms = (ty == ErrorType::Shutdown)
            .then(|| self.settings.shutdown_retry.as_millis().min(u64::MAX as u128) as u64);
        let (ok, written) = if self.delivery.recording().is_some() && self.down.committed() == Committed::Sse
        {
            // Boxed: a cold path, kept out of the exchange future's size.
            Box::pin(self.fail_recorded(session, ty, msg, status, retry_ms)).await
        } else {
            // Nothing of the stream reached the client: nothing to resume.
            if let Some(rec) = self.delivery.recording() {
                rec.end(Ending::Failed);
            }
            self.down.fail(session, ty, msg, status, retry_ms).await
        };
        self.stats.wrote(written, m);
        End::Failed { ty, reusable: ok && ty != ErrorType::Shutdown }
    }
}

impl Exchange<'_> {
    /// [`Exchange::fail`] on a committed resumable stream: the `event: error` is recorded as the stream's
    /// last record and written with its resume id.
    async fn fail_recorded(
        &mut self,
        session: &mut ServerSession,
        ty: ErrorType,
        msg: &str,
        status: u16,
        retry_ms: Option<u64>,
    ) -> (bool, usize) {
        let body = crate::respond::json_body(ty, msg, status, self.down.answer().request_id());
        let Some(rec) = self.delivery.recording() else { return (false, 0) };
        let (ev, id) = rec.fail(body);
        let done = self.down.fail_recorded(session, &ev, id, retry_ms).await;
        if ty == ErrorType::Shutdown {
            // The process exits soon: the ending must reach a remote store before its writer dies with it.
            if let Some(rec) = self.delivery.recording() {
                rec.settle(handover::SETTLE_LIMIT).await;
            }
        }
        done
    }
}
