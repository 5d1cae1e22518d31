//! One exchange, start to end: read the request, open the upstream, wait for its headers (committing early
//! and heartbeating if it is slow), then run one loop over
//!
//! - upstream body reads → decode → encode → one write + flush per batch of complete events,
//! - a single timer (heartbeat, upstream idle, max duration, header timeout, shutdown drain),
//! - the client going away (the upstream is then shut down, never pooled),
//! - the process shutting down (streams may finish during `shutdown_drain`, then get `retry:` and close).
//!
//! Memory per stream is bounded: an upstream chunk is decoded, written and flushed before the next one is
//! read, and a write that the client does not accept within `write_timeout` ends the stream.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::protocols::http::client::HttpSession;
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use pingora::upstreams::peer::HttpPeer;
use ssegate_frame::{encode, Decoder, DecoderOptions, Event, Format, Item};
use tokio::time::{sleep_until, Instant};

use crate::config::{DecodeErrorPolicy, FormatChoice, Route};
use crate::logging::{self, AccessRecord};
use crate::metrics::{Outcome, RouteMetrics};
use crate::respond::{self, ErrorType};
use crate::route::{self, Router};
use crate::upstream::{self, Decompressor};

/// How long an idle pooled upstream connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(60);
/// The most of an upstream error body quoted in an `upstream_status` error event.
const ERROR_BODY_LIMIT: usize = 16 * 1024;

/// A configured route with its resolved runtime parts.
pub struct RouteState {
    pub cfg: Route,
    pub metrics: RouteMetrics,
    pub connector: Arc<pingora::connectors::http::Connector>,
}

impl std::fmt::Debug for RouteState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteState").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

/// Process-wide settings every exchange needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub write_timeout: Duration,
    pub max_request_body: usize,
    pub shutdown_drain: Duration,
    pub shutdown_retry: Duration,
}

/// Everything an exchange needs: the routes and the settings.
#[derive(Debug)]
pub struct Gateway {
    pub router: Router<Arc<RouteState>>,
    pub settings: Settings,
}

/// When the shutdown watch first turned true, as seen by any exchange.
static SHUTDOWN_AT: OnceLock<Instant> = OnceLock::new();

fn shutdown_started() -> Instant {
    *SHUTDOWN_AT.get_or_init(|| {
        crate::admin::set_draining();
        Instant::now()
    })
}

/// Serves one request on `session` (its header already read). Returns whether the connection may be reused.
pub async fn serve(gw: &Gateway, session: &mut ServerSession, shutdown: &ShutdownWatch) -> bool {
    let started = Instant::now();
    let path = session.req_header().uri.path().to_owned();
    let Some((state, rest)) = gw.router.find(&path) else {
        let reusable = session.drain_request_body().await.is_ok();
        respond::send_json_error(session, ErrorType::NotFound, "no route matches this path").await;
        return reusable;
    };
    let query = session.req_header().uri.query().map(str::to_owned);
    let upstream_path = route::upstream_path(&state.cfg, &path, rest, query.as_deref());
    let method = session.req_header().method.as_str().to_owned();

    session.set_write_timeout(Some(gw.settings.write_timeout));
    session.set_abort_on_close(true);
    let _active = state.metrics.stream_started();

    let mut ex = Exchange::new(state, &gw.settings, started, shutdown.clone());
    let end = ex.run(session, &upstream_path).await;

    let outcome = end.outcome();
    let error = end.error_type().map(ErrorType::as_str);
    let duration = started.elapsed();
    state.metrics.finished(ex.format, outcome, duration);
    logging::access(&AccessRecord {
        route: &state.cfg.name,
        method: &method,
        path: &path,
        upstream_status: ex.upstream_status,
        format: ex.format.map_or("passthrough", Format::name),
        outcome,
        duration,
        first_event: ex.first_event,
        events: ex.events,
        bytes_out: ex.bytes_out,
        heartbeats: ex.heartbeats,
        error,
    });
    matches!(end, End::Completed | End::Failed { reusable: true, .. }) && !*shutdown.borrow()
}

/// How an exchange ended.
#[derive(Debug)]
enum End {
    /// The upstream ended cleanly and everything was delivered.
    Completed,
    /// The client went away (or stopped reading).
    ClientGone,
    /// The request was refused before anything was sent upstream.
    Rejected,
    /// A failure, reported to the client as an error response or `event: error`.
    Failed { ty: ErrorType, reusable: bool },
}

impl End {
    fn outcome(&self) -> Outcome {
        match self {
            End::Completed => Outcome::Completed,
            End::ClientGone => Outcome::ClientClosed,
            End::Rejected => Outcome::Rejected,
            End::Failed { ty, .. } => match ty {
                ErrorType::UpstreamTimeout | ErrorType::UpstreamIdle | ErrorType::MaxDuration => {
                    Outcome::Timeout
                }
                ErrorType::Shutdown => Outcome::Shutdown,
                ErrorType::NotFound | ErrorType::PayloadTooLarge | ErrorType::BadRequest => Outcome::Rejected,
                _ => Outcome::UpstreamError,
            },
        }
    }

    fn error_type(&self) -> Option<ErrorType> {
        match self {
            End::Failed { ty, .. } => Some(*ty),
            _ => None,
        }
    }
}

/// What the committed response is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Committed {
    No,
    /// `text/event-stream`: errors become `event: error`.
    Sse,
    /// The upstream's own response, byte for byte: errors can only cut it short.
    Passthrough,
}

/// What woke the loop.
enum Wake<T> {
    Upstream(T),
    Timer,
    ClientGone,
    ShutdownChanged,
}

/// The deadlines of one exchange; the loop sleeps until the earliest.
#[derive(Debug, Default)]
struct Deadlines {
    heartbeat: Option<Instant>,
    header: Option<Instant>,
    idle: Option<Instant>,
    max: Option<Instant>,
    drain: Option<Instant>,
}

impl Deadlines {
    fn next(&self) -> Instant {
        [self.heartbeat, self.header, self.idle, self.max, self.drain]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400))
    }
}

/// What a passed deadline means.
enum Due {
    Fail(ErrorType, &'static str),
    Heartbeat,
    Nothing,
}

struct Exchange<'a> {
    route: &'a RouteState,
    metrics: &'a RouteMetrics,
    settings: &'a Settings,
    started: Instant,
    shutdown: ShutdownWatch,
    deadlines: Deadlines,
    committed: Committed,
    format: Option<Format>,
    upstream_status: Option<u16>,
    first_event: Option<Duration>,
    last_event: Option<Instant>,
    events: u64,
    bytes_out: u64,
    heartbeats: u64,
    next_id: u64,
    out: BytesMut,
    items: Vec<Item>,
}

impl<'a> Exchange<'a> {
    fn new(route: &'a RouteState, settings: &'a Settings, started: Instant, shutdown: ShutdownWatch) -> Self {
        let mut ex = Exchange {
            route,
            metrics: &route.metrics,
            settings,
            started,
            shutdown,
            deadlines: Deadlines { max: route.cfg.max_duration.map(|d| started + d), ..Deadlines::default() },
            committed: Committed::No,
            format: None,
            upstream_status: None,
            first_event: None,
            last_event: None,
            events: 0,
            bytes_out: 0,
            heartbeats: 0,
            next_id: 0,
            out: BytesMut::new(),
            items: Vec::new(),
        };
        ex.check_shutdown();
        ex
    }

    fn cfg(&self) -> &Route {
        &self.route.cfg
    }

    /// Starts the drain clock if the process is shutting down.
    fn check_shutdown(&mut self) {
        if *self.shutdown.borrow() && self.deadlines.drain.is_none() {
            self.deadlines.drain = Some(shutdown_started() + self.settings.shutdown_drain);
        }
    }

    async fn run(&mut self, session: &mut ServerSession, upstream_path: &str) -> End {
        // 1. The request body, bounded.
        let body = match read_body(session, self.settings.max_request_body).await {
            Ok(b) => b,
            Err(ty) => {
                let msg = match ty {
                    ErrorType::PayloadTooLarge => "request body larger than max_request_body",
                    _ => "could not read the request body",
                };
                respond::send_json_error(session, ty, msg).await;
                return End::Rejected;
            }
        };

        // 2. Connect and send the request.
        let converting = self.cfg().format != FormatChoice::Passthrough;
        let client_ip = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip().to_string());
        let req = match upstream::build_request(
            session.req_header(),
            self.cfg(),
            upstream_path,
            body.len(),
            converting,
            client_ip,
        ) {
            Ok(r) => r,
            Err(e) => return self.fail(session, ErrorType::BadRequest, &e.to_string(), None).await,
        };
        let peer = match upstream::peer(&self.cfg().upstream, self.cfg()).await {
            Ok(p) => p,
            Err(e) => return self.upstream_fail(session, ErrorType::UpstreamConnect, &e.to_string()).await,
        };
        let mut up = match upstream::connect(&self.route.connector, &peer).await {
            Ok(s) => s,
            Err(e) => return self.upstream_fail(session, ErrorType::UpstreamConnect, &e.to_string()).await,
        };
        let sent = async {
            up.write_request_header(Box::new(req)).await?;
            if !body.is_empty() {
                up.write_request_body(body, true).await?;
            }
            up.finish_request_body().await
        };
        if let Err(e) = sent.await {
            up.shutdown().await;
            let msg = format!("sending the request upstream failed: {e}");
            return self.upstream_fail(session, ErrorType::UpstreamConnect, &msg).await;
        }
        let request_sent = Instant::now();

        // 3. Wait for the upstream's headers; commit early and heartbeat if they are slow.
        self.deadlines.header = Some(request_sent + self.cfg().header_timeout);
        self.deadlines.heartbeat = self.cfg().heartbeat_interval.map(|i| self.started + i);
        loop {
            let wake = self.wake(session, up.read_response_header()).await;
            match wake {
                Wake::Upstream(Ok(())) => break,
                Wake::Upstream(Err(e)) => {
                    up.shutdown().await;
                    let msg = format!("upstream failed before sending headers: {e}");
                    return self.upstream_fail(session, ErrorType::UpstreamReset, &msg).await;
                }
                Wake::ClientGone => return self.client_gone(&mut up).await,
                Wake::ShutdownChanged => self.check_shutdown(),
                Wake::Timer => {
                    if let Err(end) = self.on_timer(session, &mut up).await {
                        return end;
                    }
                }
            }
        }
        self.deadlines.header = None;
        self.metrics.upstream_header(request_sent.elapsed());

        // 4. Decide what to do with the answer.
        let Some(resp) = up.response_header() else {
            up.shutdown().await;
            return self.upstream_fail(session, ErrorType::UpstreamReset, "no response header").await;
        };
        let status = resp.status.as_u16();
        self.upstream_status = Some(status);
        let content_type = header_str(resp, "content-type").unwrap_or("").to_owned();
        let content_encoding = header_str(resp, "content-encoding").map(str::to_owned);
        let success = (200..300).contains(&status);
        let chosen = match self.cfg().format {
            FormatChoice::Auto => Format::from_content_type(&content_type),
            FormatChoice::Passthrough => None,
            FormatChoice::Fixed(f) => Some(f),
        };

        let format = match (self.committed, success, chosen) {
            (Committed::No, true, Some(f)) => f,
            (Committed::No, _, _) => {
                // Pass the upstream's answer through: non-streaming JSON, errors for SDKs, unknown types.
                let bodyless =
                    session.req_header().method.as_str() == "HEAD" || status == 204 || status == 304;
                let mut head = passthrough_header(resp);
                if chunked_allowed(session) && !bodyless && head.headers.get("content-length").is_none() {
                    let _ = head.insert_header("transfer-encoding", "chunked");
                }
                if session.write_response_header(Box::new(head)).await.is_err() {
                    return self.client_gone(&mut up).await;
                }
                self.committed = Committed::Passthrough;
                self.deadlines.heartbeat = None;
                let end = self.pump(session, up, &peer, None, None).await;
                if status >= 400 && matches!(end, End::Completed) {
                    // The upstream's own error reached the client unchanged; it is still an upstream error.
                    self.metrics.upstream_error(ErrorType::UpstreamStatus.as_str());
                    return End::Failed { ty: ErrorType::UpstreamStatus, reusable: true };
                }
                return end;
            }
            (_, false, _) => {
                let message = read_error_body(&mut up, status).await;
                up.shutdown().await;
                self.metrics.upstream_error(ErrorType::UpstreamStatus.as_str());
                return self.fail(session, ErrorType::UpstreamStatus, &message, Some(status)).await;
            }
            // Committed to SSE before the upstream said what it sends: deliver a non-streaming answer as one
            // event (compacted if JSON), anything else chunk by chunk.
            (_, true, Some(f)) => f,
            (_, true, None) if is_json(&content_type) => Format::JsonStream,
            (_, true, None) => Format::Chunks,
        };

        let decompressor = match Decompressor::for_encoding(content_encoding.as_deref()) {
            Ok(d) => d,
            Err(enc) => {
                up.shutdown().await;
                let msg = format!("upstream used unsupported content-encoding {enc:?}");
                self.metrics.upstream_error(ErrorType::Decode.as_str());
                return self.fail(session, ErrorType::Decode, &msg, None).await;
            }
        };
        if self.committed == Committed::No {
            if let Err(end) = self.commit_sse(session).await {
                up.shutdown().await;
                return end;
            }
        }
        self.format = Some(format);
        let opts = DecoderOptions {
            max_event_size: self.cfg().max_event_size,
            event_field: self.cfg().event_field.clone(),
            comments: self.cfg().forward_comments,
        };
        let decoder = Decoder::new(format, opts);
        self.pump(session, up, &peer, Some(decoder), decompressor).await
    }

    /// The body loop. `decoder` None means pass the bytes through untouched.
    async fn pump(
        &mut self,
        session: &mut ServerSession,
        mut up: HttpSession,
        peer: &HttpPeer,
        mut decoder: Option<Decoder>,
        mut decompressor: Option<Decompressor>,
    ) -> End {
        let idle = self.cfg().idle_timeout;
        self.deadlines.idle = Some(Instant::now() + idle);
        loop {
            let wake = self.wake(session, up.read_response_body()).await;
            match wake {
                Wake::Upstream(Ok(Some(chunk))) => {
                    let read_at = Instant::now();
                    self.deadlines.idle = Some(read_at + idle);
                    self.metrics.bytes_in(chunk.len() as u64);
                    let Some(dec) = decoder.as_mut() else {
                        self.out.extend_from_slice(&chunk);
                        if self.flush(session).await.is_err() {
                            return self.client_gone(&mut up).await;
                        }
                        continue;
                    };
                    let chunk = match decompressor.as_mut().map(|d| d.push(&chunk)) {
                        None => chunk,
                        Some(Ok(c)) => c,
                        Some(Err(e)) => {
                            up.shutdown().await;
                            let msg = format!("cannot decompress the upstream body: {e}");
                            return self.fail(session, ErrorType::Decode, &msg, None).await;
                        }
                    };
                    dec.push(&chunk, &mut self.items);
                    if let Err(end) = self.deliver(session, &mut up, read_at).await {
                        return end;
                    }
                }
                Wake::Upstream(Ok(None)) => {
                    let read_at = Instant::now();
                    if let Some(dec) = decoder.as_mut() {
                        if let Some(d) = decompressor.as_mut() {
                            match d.finish() {
                                Ok(rest) if !rest.is_empty() => dec.push(&rest, &mut self.items),
                                Ok(_) => {}
                                Err(e) => {
                                    let msg = format!("truncated compressed upstream body: {e}");
                                    return self.fail(session, ErrorType::Decode, &msg, None).await;
                                }
                            }
                        }
                        dec.finish(&mut self.items);
                        if let Err(end) = self.deliver(session, &mut up, read_at).await {
                            return end;
                        }
                        if let Some(done) = &self.cfg().done_event {
                            let ev = Event {
                                name: done.event.clone().map(Bytes::from),
                                data: Bytes::from(done.data.clone()),
                                ..Event::default()
                            };
                            encode::event(&ev, &mut self.out);
                        }
                    }
                    if self.flush(session).await.is_err() || session.finish_body().await.is_err() {
                        return End::ClientGone;
                    }
                    self.route.connector.release_http_session(up, peer, Some(POOL_IDLE)).await;
                    return End::Completed;
                }
                Wake::Upstream(Err(e)) => {
                    up.shutdown().await;
                    self.metrics.upstream_error(ErrorType::UpstreamReset.as_str());
                    let msg = format!("upstream connection broke mid-stream: {e}");
                    return self.fail(session, ErrorType::UpstreamReset, &msg, None).await;
                }
                Wake::ClientGone => return self.client_gone(&mut up).await,
                Wake::ShutdownChanged => self.check_shutdown(),
                Wake::Timer => {
                    if let Err(end) = self.on_timer(session, &mut up).await {
                        return end;
                    }
                }
            }
        }
    }

    /// Waits for whichever comes first: `upstream`, the earliest deadline, the client going away, or a change
    /// of the shutdown watch.
    async fn wake<T>(
        &mut self,
        session: &mut ServerSession,
        upstream: impl std::future::Future<Output = T>,
    ) -> Wake<T> {
        let timer = sleep_until(self.deadlines.next());
        tokio::select! {
            r = upstream => Wake::Upstream(r),
            _ = timer => Wake::Timer,
            _ = session.read_body_or_idle(true) => Wake::ClientGone,
            r = self.shutdown.changed(), if self.deadlines.drain.is_none() => {
                if r.is_err() {
                    // The server is gone without a shutdown broadcast: nothing more to wait for here.
                    std::future::pending::<()>().await
                }
                Wake::ShutdownChanged
            }
        }
    }

    /// Acts on the deadline that passed: a heartbeat (committing `200 text/event-stream` first if nothing was
    /// committed yet) or the end of the stream with a typed error.
    async fn on_timer(&mut self, session: &mut ServerSession, up: &mut HttpSession) -> Result<(), End> {
        match self.due() {
            Due::Fail(ty, msg) => {
                up.shutdown().await;
                if ty != ErrorType::Shutdown {
                    self.metrics.upstream_error(ty.as_str());
                }
                Err(self.fail(session, ty, msg, None).await)
            }
            Due::Heartbeat => {
                let sent = match self.committed {
                    Committed::No => match self.commit_sse(session).await {
                        Ok(()) => self.heartbeat(session).await,
                        Err(end) => Err(end),
                    },
                    _ => self.heartbeat(session).await,
                };
                if sent.is_err() {
                    up.shutdown().await;
                }
                sent
            }
            Due::Nothing => Ok(()),
        }
    }

    /// Encodes the decoded items and writes them in one flush. A fatal decode error ends the stream after
    /// the events before it are delivered.
    async fn deliver(
        &mut self,
        session: &mut ServerSession,
        up: &mut HttpSession,
        read_at: Instant,
    ) -> Result<(), End> {
        let mut fatal = None;
        let mut n = 0u64;
        for item in self.items.drain(..) {
            match item {
                Item::Event(mut ev) => {
                    if self.route.cfg.ids {
                        self.next_id += 1;
                        ev.id = Some(Bytes::from(self.next_id.to_string()));
                    }
                    encode::event(&ev, &mut self.out);
                    n += 1;
                }
                Item::Comment(text) => encode::comment(&text, &mut self.out),
                Item::Retry(ms) => encode::retry(ms, &mut self.out),
                Item::Error(e) => {
                    self.metrics.decode_error(e.kind());
                    tracing::warn!(route = %self.route.cfg.name, kind = e.kind(), error = %e, "bad upstream message");
                    if !e.recoverable() || self.route.cfg.on_decode_error == DecodeErrorPolicy::Close {
                        fatal = Some(e);
                        break;
                    }
                }
            }
        }
        self.items.clear();
        if self.flush(session).await.is_err() {
            return Err(self.client_gone(up).await);
        }
        if n > 0 {
            let now = Instant::now();
            self.events += n;
            self.metrics.events(self.format, n);
            let gap = self.last_event.map_or(Duration::ZERO, |t| now - t);
            if self.first_event.is_none() {
                let first = now - self.started;
                self.first_event = Some(first);
                self.metrics.first_event(first);
            } else {
                self.metrics.event_gap(gap);
            }
            for _ in 1..n {
                self.metrics.event_gap(Duration::ZERO);
            }
            let latency = now - read_at;
            for _ in 0..n {
                self.metrics.event_latency(latency);
            }
            self.last_event = Some(now);
        }
        if let Some(e) = fatal {
            up.shutdown().await;
            self.metrics.upstream_error(ErrorType::Decode.as_str());
            return Err(self.fail(session, ErrorType::Decode, &e.to_string(), None).await);
        }
        Ok(())
    }

    /// Writes what is buffered, as one chunk (flushed by pingora on every body write).
    async fn flush(&mut self, session: &mut ServerSession) -> Result<(), ()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let data = self.out.split().freeze();
        let n = data.len() as u64;
        match session.write_response_body(data, false).await {
            Ok(()) => {
                self.bytes_out += n;
                self.metrics.bytes_out(n);
                if let (Some(i), Committed::Sse) = (self.cfg().heartbeat_interval, self.committed) {
                    self.deadlines.heartbeat = Some(Instant::now() + i);
                }
                Ok(())
            }
            Err(e) => {
                if e.etype() == &pingora::ErrorType::WriteTimedout {
                    // A client that stopped reading: dropped so it cannot hold the upstream or memory.
                    self.metrics.upstream_error("slow_client");
                    tracing::info!(route = %self.route.cfg.name, "client stopped reading; stream dropped");
                } else {
                    tracing::debug!(route = %self.route.cfg.name, error = %e, "client write failed");
                }
                Err(())
            }
        }
    }

    async fn heartbeat(&mut self, session: &mut ServerSession) -> Result<(), End> {
        self.out.extend_from_slice(encode::HEARTBEAT);
        if self.flush(session).await.is_err() {
            self.metrics.client_disconnect();
            return Err(End::ClientGone);
        }
        self.heartbeats += 1;
        self.metrics.heartbeat();
        Ok(())
    }

    /// Which passed deadline matters most.
    fn due(&mut self) -> Due {
        let now = Instant::now();
        let passed = |d: Option<Instant>| d.is_some_and(|d| d <= now);
        if passed(self.deadlines.drain) {
            Due::Fail(ErrorType::Shutdown, "the gateway is shutting down; reconnect")
        } else if passed(self.deadlines.max) {
            Due::Fail(ErrorType::MaxDuration, "the stream reached the route's max_duration")
        } else if passed(self.deadlines.header) {
            Due::Fail(
                ErrorType::UpstreamTimeout,
                "the upstream sent no response headers within header_timeout",
            )
        } else if passed(self.deadlines.idle) {
            Due::Fail(ErrorType::UpstreamIdle, "the upstream sent nothing within idle_timeout")
        } else if passed(self.deadlines.heartbeat) {
            self.deadlines.heartbeat = self.cfg().heartbeat_interval.map(|i| now + i);
            Due::Heartbeat
        } else {
            Due::Nothing
        }
    }

    /// Commits `200 text/event-stream` with the SSE headers.
    async fn commit_sse(&mut self, session: &mut ServerSession) -> Result<(), End> {
        let mut head = ResponseHeader::build(200, Some(6)).map_err(|_| End::ClientGone)?;
        let _ = head.insert_header("content-type", "text/event-stream; charset=utf-8");
        let _ = head.insert_header("cache-control", "no-cache, no-transform");
        let _ = head.insert_header("x-accel-buffering", "no");
        if chunked_allowed(session) {
            let _ = head.insert_header("transfer-encoding", "chunked");
        }
        if session.write_response_header(Box::new(head)).await.is_err() {
            self.metrics.client_disconnect();
            return Err(End::ClientGone);
        }
        self.committed = Committed::Sse;
        Ok(())
    }

    /// An upstream failure before or after commit, counted.
    async fn upstream_fail(&mut self, session: &mut ServerSession, ty: ErrorType, msg: &str) -> End {
        self.metrics.upstream_error(ty.as_str());
        tracing::warn!(route = %self.route.cfg.name, error_type = ty.as_str(), error = %msg, "upstream failure");
        self.fail(session, ty, msg, None).await
    }

    /// Reports a failure the only way the committed state allows, then ends the response.
    async fn fail(
        &mut self,
        session: &mut ServerSession,
        ty: ErrorType,
        msg: &str,
        status: Option<u16>,
    ) -> End {
        let status = status.unwrap_or_else(|| ty.status());
        match self.committed {
            Committed::No => {
                let reusable = session.is_body_done();
                respond::send_json_error(session, ty, msg).await;
                End::Failed { ty, reusable }
            }
            Committed::Sse => {
                if ty == ErrorType::Shutdown {
                    let ms = self.settings.shutdown_retry.as_millis().min(u64::MAX as u128) as u64;
                    encode::retry(ms, &mut self.out);
                }
                respond::error_event(ty, msg, status, &mut self.out);
                let ok = self.flush(session).await.is_ok() && session.finish_body().await.is_ok();
                End::Failed { ty, reusable: ok && ty != ErrorType::Shutdown }
            }
            // A passthrough body cut short: the client sees an incomplete message, never a forged end.
            Committed::Passthrough => End::Failed { ty, reusable: false },
        }
    }

    async fn client_gone(&mut self, up: &mut HttpSession) -> End {
        up.shutdown().await;
        self.metrics.client_disconnect();
        End::ClientGone
    }
}

async fn read_body(session: &mut ServerSession, limit: usize) -> Result<Bytes, ErrorType> {
    if let Some(len) = session
        .req_header()
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > limit as u64 {
            return Err(ErrorType::PayloadTooLarge);
        }
    }
    let mut body = BytesMut::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(ErrorType::PayloadTooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body.freeze()),
            Err(_) => return Err(ErrorType::BadRequest),
        }
    }
}

/// Reads (part of) an upstream error body for the `upstream_status` message.
async fn read_error_body(up: &mut HttpSession, status: u16) -> String {
    let mut body = Vec::new();
    let read = async {
        while body.len() < ERROR_BODY_LIMIT {
            match up.read_response_body().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    body.truncate(ERROR_BODY_LIMIT);
    let text = String::from_utf8_lossy(&body);
    let text = text.trim();
    if text.is_empty() {
        format!("upstream answered {status}")
    } else {
        format!("upstream answered {status}: {text}")
    }
}

/// Whether the response may use chunked transfer coding: HTTP/1.1 only. h2 frames bodies itself, and an
/// HTTP/1.0 client must not get `Transfer-Encoding` (RFC 9112 §6.1): its body ends when the connection closes.
fn chunked_allowed(session: &mut ServerSession) -> bool {
    if session.is_http2() {
        return false;
    }
    if session.req_header().version == pingora::http::Version::HTTP_10 {
        session.set_keepalive(None);
        return false;
    }
    true
}

fn header_str<'h>(resp: &'h ResponseHeader, name: &str) -> Option<&'h str> {
    resp.headers.get(name).and_then(|v| v.to_str().ok())
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

/// The upstream's response header for the client, minus hop-by-hop headers.
fn passthrough_header(resp: &ResponseHeader) -> ResponseHeader {
    let mut out = resp.clone();
    let tokens = upstream::connection_tokens(resp.headers.get("connection").map(|v| v.as_bytes()));
    let names: Vec<String> = resp.headers.keys().map(|k| k.as_str().to_owned()).collect();
    for name in names {
        if upstream::is_hop_by_hop(&name, &tokens) {
            out.remove_header(&name);
        }
    }
    out
}
