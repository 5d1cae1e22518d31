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
//!
//! An async fn's state is as large as its largest await, and the exchange's state lives as long as the
//! stream: so the cold awaits (DNS, connect, request body, error answers, heartbeats, timeouts, pool release)
//! are boxed futures, allocated only while they run. That took the exchange future from 13.5 to 7.8 KiB and
//! an idle stream's RSS from ~60 to ~50 KiB (benches/README.md). The per-event path boxes nothing.

use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderName, HeaderValue, Method};
use pingora::http::ResponseHeader;
use pingora::protocols::http::client::HttpSession;
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use pingora::upstreams::peer::HttpPeer;
use ssegate_frame::{encode, Decoder, DecoderOptions, Event, Format, Item};
use tokio::time::{sleep_until, Instant, Sleep};

use crate::config::{DecodeErrorPolicy, FormatChoice, Route};
use crate::logging::{self, AccessRecord};
use crate::metrics::{self, Outcome, RouteMetrics};
use crate::respond::{self, ErrorType};
use crate::route::{self, Router};
use crate::security::{self, KeyHeaders};
use crate::upstream::{self, Decompressor};

/// How long an idle pooled upstream connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(60);
/// The most of an upstream error body quoted in an `upstream_status` error event.
const ERROR_BODY_LIMIT: usize = 16 * 1024;
/// The largest output buffer and decoded-item list an exchange keeps between reads: one upstream chunk of
/// many small messages can fill much more, and a stream may then stay open and idle for hours.
const KEEP_BUFFER: usize = 64 * 1024;
const KEEP_ITEMS: usize = 64;

/// A configured route with its resolved runtime parts.
pub struct RouteState {
    pub cfg: Route,
    pub metrics: RouteMetrics,
    pub connector: Arc<pingora::connectors::http::Connector>,
    /// Requests in progress, for `max_streams`.
    pub streams: AtomicUsize,
    /// The `Retry-After` value of a `max_streams` 503 (whole seconds, at least 1).
    pub retry_after: HeaderValue,
    /// `done_event`, encoded once.
    done_event: Option<Bytes>,
}

impl RouteState {
    pub fn new(
        cfg: Route,
        metrics: RouteMetrics,
        connector: Arc<pingora::connectors::http::Connector>,
    ) -> Self {
        let secs = cfg.retry_after.as_secs() + u64::from(cfg.retry_after.subsec_nanos() > 0);
        let done_event = cfg.done_event.as_ref().map(|done| {
            let ev = Event {
                name: done.event.clone().map(Bytes::from),
                data: Bytes::from(done.data.clone()),
                ..Event::default()
            };
            let mut out = BytesMut::new();
            encode::event(&ev, &mut out);
            out.freeze()
        });
        RouteState {
            cfg,
            metrics,
            connector,
            streams: AtomicUsize::new(0),
            retry_after: HeaderValue::from(secs.max(1)),
            done_event,
        }
    }

    /// A `max_streams` slot, released on drop; `None` when the route is full. Unlimited routes always get one.
    fn admit(&self) -> Option<Slot<'_>> {
        let max = self.cfg.max_streams;
        if max == 0 {
            return Some(Slot(None));
        }
        if self.streams.fetch_add(1, Ordering::AcqRel) >= max {
            self.streams.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Slot(Some(&self.streams)))
    }
}

/// A `max_streams` slot; frees itself when dropped.
struct Slot<'a>(Option<&'a AtomicUsize>);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.0 {
            c.fetch_sub(1, Ordering::AcqRel);
        }
    }
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
    pub request_body_timeout: Duration,
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
///
/// Before anything is sent upstream: `CONNECT` is refused (405); the request target must pass
/// [`security::check_target`] (400), and the path it returns is both what routing matches and what is
/// forwarded; a CORS preflight is answered here; then (in [`Exchange::run`]) the client key, `max_streams`
/// and the request body limits.
pub async fn serve(gw: &Gateway, session: &mut ServerSession, shutdown: &ShutdownWatch) -> bool {
    let started = Instant::now();
    if session.req_header().method == Method::CONNECT {
        metrics::downstream_rejected("method");
        session.set_keepalive(None);
        let allow =
            [(header::ALLOW, HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"))];
        let msg = "CONNECT is not supported: ssegate is a reverse proxy, not a forward proxy";
        respond::send_json_error_with(session, ErrorType::MethodNotAllowed, msg, &allow).await;
        return false;
    }
    let (path, query) = match security::check_target(session.req_header().raw_path()) {
        Ok((path, query)) => (path.to_owned(), query.map(str::to_owned)),
        Err(msg) => return refuse(session, "bad_target", ErrorType::BadRequest, msg).await,
    };
    let Some((state, rest)) = gw.router.find(&path) else {
        return refuse(session, "not_found", ErrorType::NotFound, "no route matches this path").await;
    };
    let cors = match &state.cfg.cors {
        None => Vec::new(),
        Some(cors) => {
            let req = session.req_header();
            let origin = req.headers.get(header::ORIGIN);
            let preflight = req.method == Method::OPTIONS
                && req.headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
            if let (true, Some(origin)) = (preflight, origin) {
                return Box::pin(preflight_answer(session, state, cors, &origin.clone())).await;
            }
            cors_headers(cors, origin)
        }
    };
    let upstream_path = route::upstream_path(&state.cfg, &path, rest, query.as_deref());
    let method = session.req_header().method.clone();

    session.set_write_timeout(Some(gw.settings.write_timeout));
    session.set_abort_on_close(true);
    let _active = state.metrics.stream_started();

    let mut ex = Exchange::new(state, &gw.settings, started, shutdown.clone(), cors);
    let end = ex.run(session, &upstream_path).await;

    let outcome = end.outcome();
    let error = end.error_type().map(ErrorType::as_str);
    let duration = started.elapsed();
    state.metrics.finished(ex.format, outcome, duration);
    logging::access(&AccessRecord {
        route: &state.cfg.name,
        method: method.as_str(),
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

/// A refusal before a route is chosen: counted, the body drained within [`drain_some`]'s bounds, answered.
/// Returns whether the connection may be reused.
async fn refuse(session: &mut ServerSession, reason: &'static str, ty: ErrorType, msg: &str) -> bool {
    metrics::downstream_rejected(reason);
    drain_some(session).await;
    let reusable = keep_if_body_done(session);
    respond::send_json_error(session, ty, msg).await;
    reusable
}

/// The CORS headers of an actual (non-preflight) response on a CORS route: always `Vary: Origin`; for an
/// allowed origin also `Access-Control-Allow-Origin` (the origin, or `*`), `-Allow-Credentials` when
/// configured, and `-Expose-Headers`. A disallowed origin gets no CORS headers (the browser then refuses
/// to hand the response to the page).
fn cors_headers(cors: &security::Cors, origin: Option<&HeaderValue>) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::with_capacity(4);
    out.push((header::VARY, HeaderValue::from_static("Origin")));
    if let Some(allow) = origin.and_then(|o| cors.allow_origin(o)) {
        out.push((header::ACCESS_CONTROL_ALLOW_ORIGIN, allow));
        if cors.allow_credentials {
            out.push((header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true")));
        }
        out.push((header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(security::EXPOSE_HEADERS)));
    }
    out
}

/// Answers a CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) without
/// contacting the upstream and without a client key: 204 with the route's policy, or 403 JSON
/// (`forbidden`) when the origin, the method or a requested header is not allowed.
async fn preflight_answer(
    session: &mut ServerSession,
    state: &RouteState,
    cors: &security::Cors,
    origin: &HeaderValue,
) -> bool {
    drain_some(session).await;
    let reusable = keep_if_body_done(session);
    let req = session.req_header();
    let method = req.headers.get(header::ACCESS_CONTROL_REQUEST_METHOD).map_or(&b""[..], |v| v.as_bytes());
    let allowed = cors
        .allow_origin(origin)
        .filter(|_| cors.preflight_allows(method, req.headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS)));
    let Some(allow_origin) = allowed else {
        state.metrics.rejected("cors");
        let vary = [(header::VARY, HeaderValue::from_static("Origin"))];
        let msg = "CORS preflight refused: origin, method or request headers not allowed on this route";
        respond::send_json_error_with(session, ErrorType::Forbidden, msg, &vary).await;
        return reusable;
    };
    let Ok(mut resp) = ResponseHeader::build(204, Some(7)) else { return false };
    let _ = resp.insert_header(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
    let _ = resp.insert_header(header::ACCESS_CONTROL_ALLOW_METHODS, cors.allow_methods_value.clone());
    let _ = resp.insert_header(header::ACCESS_CONTROL_ALLOW_HEADERS, cors.allow_headers_value.clone());
    let _ = resp.insert_header(header::ACCESS_CONTROL_MAX_AGE, cors.max_age_value.clone());
    if cors.allow_credentials {
        let _ = resp.insert_header(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
    }
    let _ = resp.insert_header(header::VARY, "Origin");
    let _ = resp.insert_header(header::CACHE_CONTROL, "no-store");
    if session.write_response_header(Box::new(resp)).await.is_err() {
        return false;
    }
    session.finish_body().await.is_ok() && reusable
}

/// How an exchange ended.
#[derive(Debug)]
enum End {
    /// The upstream ended cleanly and everything was delivered.
    Completed,
    /// The client went away (or stopped reading).
    ClientGone,
    /// A failure, reported to the client as an error response or `event: error`.
    Failed { ty: ErrorType, reusable: bool },
}

impl End {
    fn outcome(&self) -> Outcome {
        match self {
            End::Completed => Outcome::Completed,
            End::ClientGone => Outcome::ClientClosed,
            End::Failed { ty, .. } => match ty {
                ErrorType::UpstreamTimeout | ErrorType::UpstreamIdle | ErrorType::MaxDuration => {
                    Outcome::Timeout
                }
                ErrorType::Shutdown => Outcome::Shutdown,
                ErrorType::NotFound
                | ErrorType::PayloadTooLarge
                | ErrorType::BadRequest
                | ErrorType::Unauthorized
                | ErrorType::Forbidden
                | ErrorType::MethodNotAllowed
                | ErrorType::RequestTimeout
                | ErrorType::HeaderTooLarge
                | ErrorType::Overloaded => Outcome::Rejected,
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
    /// Bad upstream messages so far (only the first is logged at warn: a broken upstream cannot flood the log).
    decode_errors: u64,
    next_id: u64,
    out: BytesMut,
    items: Vec<Item>,
    /// CORS headers for every response of this request (empty unless the route has `cors`).
    cors: Vec<(HeaderName, HeaderValue)>,
    /// The one timer of the exchange, moved to `deadlines.next()` when that changes. Kept across wake-ups:
    /// pushing a registered timer later (every write moves the heartbeat) is a cheap update in tokio,
    /// where a new `Sleep` per wake-up costs a timer-wheel insert and removal per upstream read.
    timer: Pin<Box<Sleep>>,
}

impl<'a> Exchange<'a> {
    fn new(
        route: &'a RouteState,
        settings: &'a Settings,
        started: Instant,
        shutdown: ShutdownWatch,
        cors: Vec<(HeaderName, HeaderValue)>,
    ) -> Self {
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
            decode_errors: 0,
            next_id: 0,
            out: BytesMut::new(),
            items: Vec::new(),
            cors,
            timer: Box::pin(sleep_until(started)),
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

    /// A refusal before anything was sent upstream: counted, answered with the JSON error (plus `extra`
    /// and the CORS headers); the connection is kept only if the request body was read to its end.
    async fn reject(
        &mut self,
        session: &mut ServerSession,
        ty: ErrorType,
        reason: &'static str,
        msg: &str,
        extra: Option<(HeaderName, HeaderValue)>,
    ) -> End {
        self.route.metrics.rejected(reason);
        let reusable = keep_if_body_done(session);
        let mut headers = self.cors.clone();
        headers.extend(extra);
        Box::pin(respond::send_json_error_with(session, ty, msg, &headers)).await;
        End::Failed { ty, reusable }
    }

    async fn run(&mut self, session: &mut ServerSession, upstream_path: &str) -> End {
        // 1. The client key, if the route wants one.
        let key_headers = match &self.route.cfg.auth {
            None => KeyHeaders::default(),
            Some(keys) => {
                let h = &session.req_header().headers;
                match keys.check(h.get(header::AUTHORIZATION), h.get("x-api-key")) {
                    Some(k) => k,
                    None => {
                        self.route.metrics.auth_failure();
                        let msg = "a valid key is required: Authorization: Bearer <key> or x-api-key: <key>";
                        let challenge = (header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                        drain_some(session).await;
                        return self
                            .reject(session, ErrorType::Unauthorized, "unauthorized", msg, Some(challenge))
                            .await;
                    }
                }
            }
        };

        // 2. A max_streams slot, held until the exchange ends.
        let Some(_slot) = self.route.admit() else {
            drain_some(session).await;
            let retry = (header::RETRY_AFTER, self.route.retry_after.clone());
            let msg = "the route has reached max_streams concurrent requests; retry later";
            return self.reject(session, ErrorType::Overloaded, "max_streams", msg, Some(retry)).await;
        };

        // 3. The request body, bounded in size and time.
        let read = Box::pin(read_body(session, self.settings.max_request_body));
        let body = match tokio::time::timeout(self.settings.request_body_timeout, read).await {
            Ok(Ok(b)) => b,
            Ok(Err(ty)) => {
                let (reason, msg) = match ty {
                    ErrorType::PayloadTooLarge => {
                        ("payload_too_large", "request body larger than max_request_body")
                    }
                    _ => ("bad_request", "could not read the request body"),
                };
                return self.reject(session, ty, reason, msg, None).await;
            }
            Err(_) => {
                let msg = "the request body did not arrive within request_body_timeout";
                return self.reject(session, ErrorType::RequestTimeout, "request_timeout", msg, None).await;
            }
        };

        // 4. The upstream request and peer.
        let converting = self.cfg().format != FormatChoice::Passthrough;
        let client_ip = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip().to_string());
        let req = match upstream::build_request(
            session.req_header(),
            self.cfg(),
            upstream_path,
            body.len(),
            converting,
            client_ip,
            key_headers,
        ) {
            Ok(r) => r,
            Err(e) => return self.fail(session, ErrorType::BadRequest, &e.to_string(), None).await,
        };
        let peer = match Box::pin(upstream::peer(&self.cfg().upstream, self.cfg())).await {
            Ok(p) => p,
            Err(e) => {
                return self.upstream_fail(session, ErrorType::UpstreamConnect, e.public_message(), &e).await
            }
        };
        // 5. Send it and wait for the upstream's headers; commit early and heartbeat if they are slow. A reused
        // pooled connection that the upstream had already closed fails before any response byte (pingora marks
        // such errors retryable on reused connections only): the request is then sent once more, on a new
        // connection unless the pool holds another one.
        self.deadlines.heartbeat = self.cfg().heartbeat_interval.map(|i| self.started + i);
        let mut retried = false;
        let (mut up, request_sent) = loop {
            let (mut up, reused) = match Box::pin(upstream::connect(&self.route.connector, &peer)).await {
                Ok(s) => s,
                Err(e) => {
                    return self
                        .upstream_fail(session, ErrorType::UpstreamConnect, e.public_message(), &e)
                        .await
                }
            };
            let sent = async {
                up.write_request_header(Box::new(req.clone())).await?;
                if !body.is_empty() {
                    up.write_request_body(body.clone(), true).await?;
                }
                up.finish_request_body().await
            };
            if let Err(e) = sent.await {
                up.shutdown().await;
                // Nothing was read: a write to a pooled connection the upstream closed is always safe to redo.
                if reused && !retried {
                    retried = true;
                    self.metrics.upstream_retry();
                    continue;
                }
                let msg = "sending the request to the upstream failed";
                return self.upstream_fail(session, ErrorType::UpstreamConnect, msg, &e).await;
            }
            let request_sent = Instant::now();
            self.deadlines.header = Some(request_sent + self.cfg().header_timeout);
            let failed = loop {
                let wake = self.wake(session, up.read_response_header()).await;
                match wake {
                    Wake::Upstream(Ok(())) => break None,
                    Wake::Upstream(Err(e)) => break Some(e),
                    Wake::ClientGone => return Box::pin(self.client_gone(&mut up)).await,
                    Wake::ShutdownChanged => self.check_shutdown(),
                    Wake::Timer => {
                        if let Err(end) = Box::pin(self.on_timer(session, &mut up)).await {
                            return end;
                        }
                    }
                }
            };
            let Some(e) = failed else { break (up, request_sent) };
            up.shutdown().await;
            let mut retry = e.retry;
            retry.decide_reuse(reused);
            if retry.retry() && !retried {
                retried = true;
                self.metrics.upstream_retry();
                continue;
            }
            let msg = "the upstream connection broke before the response headers";
            return self.upstream_fail(session, ErrorType::UpstreamReset, msg, &e).await;
        };
        self.deadlines.header = None;
        self.metrics.upstream_header(request_sent.elapsed());

        // 6. Decide what to do with the answer.
        let Some(resp) = up.response_header() else {
            up.shutdown().await;
            let msg = "the upstream sent no response header";
            return self.upstream_fail(session, ErrorType::UpstreamReset, msg, &msg).await;
        };
        let status = resp.status.as_u16();
        self.upstream_status = Some(status);
        let content_type = header_str(resp, "content-type").unwrap_or("").to_owned();
        let content_encoding = header_str(resp, "content-encoding").map(str::to_owned);
        let success = (200..300).contains(&status);
        let chosen = match self.cfg().format {
            FormatChoice::Auto => Format::from_content_type(&content_type),
            FormatChoice::Passthrough => None,
            // A fixed streaming format does not apply to a plain JSON answer (OpenAI `stream: false`,
            // `/v1/models`, Ollama `/api/tags`): that is passed through like on an auto route. Only the
            // JSON framings that read `application/json` bodies (Gemini's streamed array) decode it.
            FormatChoice::Fixed(f)
                if is_json(&content_type) && !matches!(f, Format::JsonArray | Format::JsonStream) =>
            {
                None
            }
            FormatChoice::Fixed(f) => Some(f),
        };

        let format = match (self.committed, success, chosen) {
            (Committed::No, true, Some(f)) => f,
            (Committed::No, _, _) => {
                // Pass the upstream's answer through: non-streaming JSON, errors for SDKs, unknown types.
                let bodyless =
                    session.req_header().method.as_str() == "HEAD" || status == 204 || status == 304;
                let mut head = passthrough_header(resp, self.route.cfg.cors.is_some(), &self.cors);
                if chunked_allowed(session) && !bodyless && head.headers.get("content-length").is_none() {
                    let _ = head.insert_header("transfer-encoding", "chunked");
                }
                if session.write_response_header(Box::new(head)).await.is_err() {
                    return Box::pin(self.client_gone(&mut up)).await;
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
                let message = Box::pin(read_error_body(&mut up, status)).await;
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
                return self.upstream_fail(session, ErrorType::Decode, &msg, &msg).await;
            }
        };
        if self.committed == Committed::No {
            if let Err(end) = Box::pin(self.commit_sse(session)).await {
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
                        // Passthrough: the upstream's chunk as it is, not copied.
                        if self.write(session, chunk).await.is_err() {
                            return Box::pin(self.client_gone(&mut up)).await;
                        }
                        continue;
                    };
                    let chunk = match decompressor.as_mut().map(|d| d.push(&chunk)) {
                        None => chunk,
                        Some(Ok(c)) => c,
                        Some(Err(e)) => {
                            up.shutdown().await;
                            let msg = format!("cannot decompress the upstream body: {e}");
                            return self.upstream_fail(session, ErrorType::Decode, &msg, &msg).await;
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
                                    return self.upstream_fail(session, ErrorType::Decode, &msg, &msg).await;
                                }
                            }
                        }
                        dec.finish(&mut self.items);
                        if let Err(end) = self.deliver(session, &mut up, read_at).await {
                            return end;
                        }
                        if let Some(done) = &self.route.done_event {
                            self.out.extend_from_slice(done);
                        }
                    }
                    let ended = Box::pin(async {
                        self.flush(session).await.is_ok() && session.finish_body().await.is_ok()
                    });
                    if !ended.await {
                        return End::ClientGone;
                    }
                    Box::pin(self.route.connector.release_http_session(up, peer, Some(POOL_IDLE))).await;
                    return End::Completed;
                }
                Wake::Upstream(Err(e)) => {
                    up.shutdown().await;
                    let msg = "the upstream connection broke mid-stream";
                    return self.upstream_fail(session, ErrorType::UpstreamReset, msg, &e).await;
                }
                Wake::ClientGone => return Box::pin(self.client_gone(&mut up)).await,
                Wake::ShutdownChanged => self.check_shutdown(),
                Wake::Timer => {
                    if let Err(end) = Box::pin(self.on_timer(session, &mut up)).await {
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
        let next = self.deadlines.next();
        if self.timer.deadline() != next {
            self.timer.as_mut().reset(next);
        }
        tokio::select! {
            r = upstream => Wake::Upstream(r),
            _ = self.timer.as_mut() => Wake::Timer,
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
                    Committed::No => match Box::pin(self.commit_sse(session)).await {
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
                        // `id: N` written in place (it is the field `encode::event` writes first, and digits
                        // need no escaping): no string per event.
                        self.next_id += 1;
                        ev.id = None;
                        let _ = writeln!(self.out, "id: {}", self.next_id);
                    }
                    encode::event(&ev, &mut self.out);
                    n += 1;
                }
                Item::Comment(text) => encode::comment(&text, &mut self.out),
                Item::Retry(ms) => encode::retry(ms, &mut self.out),
                Item::Error(e) => {
                    self.metrics.decode_error(e.kind());
                    self.decode_errors += 1;
                    if self.decode_errors == 1 {
                        tracing::warn!(route = %self.route.cfg.name, kind = e.kind(), error = %e,
                            "bad upstream message (further ones of this stream are logged at debug)");
                    } else {
                        tracing::debug!(route = %self.route.cfg.name, kind = e.kind(), error = %e, "bad upstream message");
                    }
                    if !e.recoverable() || self.route.cfg.on_decode_error == DecodeErrorPolicy::Close {
                        fatal = Some(e);
                        break;
                    }
                }
            }
        }
        if self.items.capacity() > KEEP_ITEMS {
            self.items = Vec::new();
        }
        if self.flush(session).await.is_err() {
            return Err(self.client_gone(up).await);
        }
        if n > 0 {
            let now = Instant::now();
            self.events += n;
            self.metrics.events(self.format, n);
            match self.last_event {
                Some(last) => self.metrics.event_gap(now - last),
                None => {
                    let first = now - self.started;
                    self.first_event = Some(first);
                    self.metrics.first_event(first);
                }
            }
            // The events of one flush reach the client together: gap 0 between them, one read→flush latency.
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

    /// Writes what is buffered, as one chunk.
    async fn flush(&mut self, session: &mut ServerSession) -> Result<(), ()> {
        let data = self.out.split().freeze();
        if data.len() > KEEP_BUFFER {
            // Let a burst's allocation go with the written chunk (`out` would otherwise reclaim it for good).
            self.out = BytesMut::new();
        }
        self.write(session, data).await
    }

    /// Writes `data` (if any) as one chunk, flushed by pingora on every body write; counts it and moves the
    /// heartbeat.
    async fn write(&mut self, session: &mut ServerSession, data: Bytes) -> Result<(), ()> {
        if data.is_empty() {
            return Ok(());
        }
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
        let _ =
            head.insert_header("content-type", HeaderValue::from_static("text/event-stream; charset=utf-8"));
        let _ = head.insert_header("cache-control", HeaderValue::from_static("no-cache, no-transform"));
        let _ = head.insert_header("x-accel-buffering", HeaderValue::from_static("no"));
        for (name, value) in &self.cors {
            let _ = head.append_header(name.clone(), value.clone());
        }
        if chunked_allowed(session) {
            let _ = head.insert_header("transfer-encoding", HeaderValue::from_static("chunked"));
        }
        if session.write_response_header(Box::new(head)).await.is_err() {
            self.metrics.client_disconnect();
            return Err(End::ClientGone);
        }
        self.committed = Committed::Sse;
        Ok(())
    }

    /// An upstream failure (before or after commit): counted, logged with its full `detail` (addresses,
    /// pingora's error chain), and reported to the client with the short `public` message only.
    async fn upstream_fail(
        &mut self,
        session: &mut ServerSession,
        ty: ErrorType,
        public: &str,
        detail: &(dyn std::fmt::Display + Sync),
    ) -> End {
        self.metrics.upstream_error(ty.as_str());
        tracing::warn!(route = %self.route.cfg.name, error_type = ty.as_str(), error = %detail, "upstream failure");
        self.fail(session, ty, public, None).await
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
                Box::pin(respond::send_json_error_with(session, ty, msg, &self.cors)).await;
                End::Failed { ty, reusable }
            }
            Committed::Sse => {
                if ty == ErrorType::Shutdown {
                    let ms = self.settings.shutdown_retry.as_millis().min(u64::MAX as u128) as u64;
                    encode::retry(ms, &mut self.out);
                }
                respond::error_event(ty, msg, status, &mut self.out);
                let ok = Box::pin(async {
                    self.flush(session).await.is_ok() && session.finish_body().await.is_ok()
                })
                .await;
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

/// Reads (and drops) what is left of a refused request's body, at most 64 KiB and 1 s, so that the error
/// response is not lost to a TCP reset caused by unread bytes. A longer body closes the connection.
async fn drain_some(session: &mut ServerSession) {
    let drain = async {
        let mut left = 64 * 1024usize;
        while let Ok(Some(chunk)) = session.read_request_body().await {
            left = left.saturating_sub(chunk.len());
            if left == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// After a refusal the connection is kept only if the request body was read to its end (unread body bytes
/// would be taken for the next request); otherwise it is closed after the answer.
fn keep_if_body_done(session: &mut ServerSession) -> bool {
    let done = session.is_body_done();
    if !done {
        session.set_keepalive(None);
    }
    done
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
    let essence = content_type.split(';').next().unwrap_or("").trim().as_bytes();
    essence.eq_ignore_ascii_case(b"application/json")
        || essence.len() >= 5 && essence[essence.len() - 5..].eq_ignore_ascii_case(b"+json")
}

/// The upstream's response header for the client, minus hop-by-hop headers. On a CORS route the
/// upstream's own `Access-Control-*` headers are replaced by the route's (`cors`).
fn passthrough_header(
    resp: &ResponseHeader,
    cors_route: bool,
    cors: &[(HeaderName, HeaderValue)],
) -> ResponseHeader {
    let mut out = resp.clone();
    let connection = resp.headers.get(header::CONNECTION).map(|v| v.as_bytes());
    for name in resp.headers.keys() {
        let n = name.as_str();
        if upstream::is_hop_by_hop(n, connection) || (cors_route && n.starts_with("access-control-")) {
            out.remove_header(name);
        }
    }
    for (name, value) in cors {
        let _ = out.append_header(name.clone(), value.clone());
    }
    out
}
