//! The edge: everything decided before anything is sent upstream, then the hand-over to the exchange and
//! the stream's metrics and access-log line at its end.
//!
//! In order: `CONNECT` is refused (405); the request target must pass [`security::check_target`] (400), and
//! the path it returns is both what routing matches and what is forwarded; no route → 404; a CORS
//! preflight is answered here; then the client key (401), a `max_streams` slot (503) and the request body
//! within `max_request_body` (413) and `request_body_timeout` (408). Every refusal is counted once:
//! before a route in `ssegate_downstream_rejected_total`, after it in `ssegate_rejected_total`
//! ([`ErrorType::reject_reason`]).
//!
//! The request id ([`headers::request_id`]) is decided first, so that every answer — refusals before a
//! route included — carries it as `X-Request-Id` and in its JSON error body.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderName, HeaderValue, Method};
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use ssegate_frame::Format;
use tokio::time::Instant;

use crate::error::ErrorType;
use crate::exchange::downstream::{send_json_error, send_json_error_with, send_preflight};
use crate::exchange::{Admitted, End, Exchange};
use crate::gateway::{Gateway, RouteState};
use crate::headers::{self, Answer, Forwarded};
use crate::logging::{self, AccessRecord};
use crate::metrics::{self, EdgeReason};
use crate::resume::follow;
use crate::resume::store::{Limits, Meta, StreamId};
use crate::route;
use crate::security::{self, KeyHeaders};

/// Serves one request on `session` (its header already read). Returns whether the connection may be reused.
pub async fn serve(gw: &Gateway, session: &mut ServerSession, shutdown: &ShutdownWatch) -> bool {
    let started = Instant::now();
    let bare = Answer::bare(headers::request_id(session.req_header()));
    if let Err(r) = crate::http_rules::check_head(session) {
        // Ambiguous framing or authority: answered and closed, whatever the body.
        session.set_keepalive(None);
        refuse(session, r.reason, r.ty, r.message, &bare).await;
        return false;
    }
    if session.req_header().method == Method::CONNECT {
        metrics::downstream_rejected(EdgeReason::Method);
        session.set_keepalive(None);
        let allow =
            [(header::ALLOW, HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"))];
        let msg = "CONNECT is not supported: ssegate is a reverse proxy, not a forward proxy";
        send_json_error_with(session, ErrorType::MethodNotAllowed, msg, &allow, &bare).await;
        return false;
    }
    let (path, query) = match security::check_target(session.req_header().raw_path()) {
        Ok((path, query)) => (path.to_owned(), query.map(str::to_owned)),
        Err(msg) => return refuse(session, EdgeReason::BadTarget, ErrorType::BadRequest, msg, &bare).await,
    };
    // The host picks among routes with `hosts` (h2: `:authority`; h1: `Host`); never an upstream.
    let req = session.req_header();
    let host = gw.router.uses_hosts().then(|| {
        let authority = req.uri.authority().map(|a| a.as_str());
        crate::config::request_host(authority, req.headers.get(header::HOST).map(|h| h.as_bytes()))
    });
    let Some((state, rest)) = gw.router.find_for(host.flatten().as_deref(), &path) else {
        let msg = "no route matches this path";
        return refuse(session, EdgeReason::NotFound, ErrorType::NotFound, msg, &bare).await;
    };
    // A resume (a `Last-Event-ID` or `/_streams/<stream>` on a resumable route) is served from the store.
    // Only plain values cross into it (the rest is derived again there), so that this branch does not grow
    // the future of every request.
    if state.resume.is_some() && follow::is_resume(rest, session.req_header()) {
        let prefix_len = path.len() - rest.len();
        return Box::pin(serve_resume(gw, state, session, shutdown, started, prefix_len)).await;
    }
    let answer = Answer { request_id: bare.request_id, policy: state.cfg.response_headers.clone() };
    let cors = match &state.cfg.cors {
        None => Vec::new(),
        Some(cors) => {
            let req = session.req_header();
            let origin = req.headers.get(header::ORIGIN);
            let preflight = req.method == Method::OPTIONS
                && req.headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
            if let (true, Some(origin)) = (preflight, origin) {
                return Box::pin(preflight_answer(session, state, cors, &origin.clone(), &answer)).await;
            }
            cors_headers(cors, origin)
        }
    };
    let upstream_path = route::upstream_path(&state.cfg, &path, rest, query.as_deref());
    let method = session.req_header().method.clone();
    let forwarded = Box::new(Forwarded::new(
        session.req_header(),
        session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip()),
        session.digest().is_some_and(|d| d.ssl_digest.is_some()),
        &gw.settings.trusted_proxies,
    ));
    let client = forwarded.client;

    session.set_write_timeout(Some(gw.settings.write_timeout));
    session.set_abort_on_close(true);
    let _active = state.metrics.stream_started();

    let output =
        crate::negotiate::choose(&state.cfg.outputs, session.req_header().headers.get(header::ACCEPT));
    let mut ex = Exchange::new(state, &gw.settings, started, shutdown.clone(), cors.clone(), answer, output);
    let end = match Box::pin(admit(gw, state, session, &cors, ex.answer())).await {
        Ok((key_headers, body, _slot)) => {
            if let Some(rec) = recording(state, session, key_headers) {
                ex.record(rec);
            }
            ex.run(session, Admitted { upstream_path, body, key_headers, cors, forwarded }).await
            // `_slot` is released here, when the exchange has ended.
        }
        Err(end) => end,
    };

    let outcome = end.outcome();
    let duration = started.elapsed();
    let stats = &ex.stats;
    state.metrics.finished(stats.format, outcome, duration);
    let usage = ex.usage();
    if let (Some(m), Some(u)) = (&state.usage, usage) {
        m.tokens(u.input_tokens, u.output_tokens);
    }
    logging::access(&AccessRecord {
        request_id: ex.answer().request_id(),
        client,
        upstream_request_id: stats.upstream_request_id.as_deref(),
        route: &state.cfg.name,
        method: method.as_str(),
        path: &path,
        upstream_status: stats.upstream_status,
        format: stats.format.map_or("passthrough", Format::name),
        outcome,
        duration,
        first_event: stats.first_event,
        events: stats.events,
        drained_events: stats.drained_events,
        disconnect: if matches!(end, End::HandedOver) {
            Some("handover")
        } else {
            stats.left.map(|l| l.as_str())
        },
        resumed_from: None,
        bytes_out: stats.bytes_out,
        heartbeats: stats.heartbeats,
        error: end.error_type().map(ErrorType::as_str),
        backend: stats.backend.map(|b| state.pool.backend(b).cfg.name.as_str()),
        attempts: stats.attempts,
        input_tokens: usage.and_then(|u| u.input_tokens),
        output_tokens: usage.and_then(|u| u.output_tokens),
        model: usage.and_then(|u| u.model.as_deref()),
    });
    end.reusable() && !*shutdown.borrow()
}

/// A new stream on a resumable route: its id and its store writer, bound to the route and to the hash of
/// the key that started it. `None` when the route has no `resume` (or the OS gave no random id: the stream
/// then runs without resume).
fn recording(
    state: &RouteState,
    session: &ServerSession,
    key_headers: KeyHeaders,
) -> Option<Box<crate::exchange::record::Recording>> {
    let store = state.resume.as_ref()?;
    let limits = state.cfg.resume.as_ref().map(|r| Limits { max_bytes: r.max_bytes, ttl: r.ttl })?;
    let id = StreamId::random()?;
    let h = &session.req_header().headers;
    let key = security::presented_key(h.get(header::AUTHORIZATION), h.get("x-api-key"), key_headers);
    let meta = Meta {
        route: state.cfg.name.clone(),
        key_hash: key.map(crate::resume::id::key_hash),
        created: std::time::SystemTime::now(),
    };
    Some(Box::new(crate::exchange::record::Recording::new(id, store.create(id, meta, limits))))
}

/// A resume request ([`follow`]): admitted like a stream (key, `max_streams` slot, body), then served from
/// the route's resume store; never sent upstream.
async fn serve_resume(
    gw: &Gateway,
    state: &RouteState,
    session: &mut ServerSession,
    shutdown: &ShutdownWatch,
    started: Instant,
    prefix_len: usize,
) -> bool {
    let req = session.req_header();
    let Ok((path, query)) = security::check_target(req.raw_path()) else { return false };
    let (path, query) = (path.to_owned(), query.map(str::to_owned));
    let rest = path.get(prefix_len..).unwrap_or("");
    let ask = follow::detect(rest, query.as_deref(), req.headers.get(follow::LAST_EVENT_ID));
    let answer = Answer { request_id: headers::request_id(req), policy: state.cfg.response_headers.clone() };
    let cors =
        state.cfg.cors.as_ref().map_or_else(Vec::new, |c| cors_headers(c, req.headers.get(header::ORIGIN)));
    let method = req.method.clone();
    let output = crate::negotiate::choose(&state.cfg.outputs, req.headers.get(header::ACCEPT));
    let client = Forwarded::new(
        req,
        session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip()),
        session.digest().is_some_and(|d| d.ssl_digest.is_some()),
        &gw.settings.trusted_proxies,
    )
    .client;
    session.set_write_timeout(Some(gw.settings.write_timeout));
    session.set_abort_on_close(true);
    let _active = state.metrics.stream_started();
    let done = match admit(gw, state, session, &cors, &answer).await {
        Ok((key_headers, _body, _slot)) => {
            let h = &session.req_header().headers;
            let key = security::presented_key(h.get(header::AUTHORIZATION), h.get("x-api-key"), key_headers);
            let req = follow::ReaderRequest {
                route: state,
                key_hash: key.map(crate::resume::id::key_hash),
                output,
                cors: &cors,
                answer: &answer,
                shutdown: shutdown.clone(),
            };
            match ask {
                Some(ask) => follow::serve(session, req, ask).await,
                None => follow::serve(session, req, follow::Ask::Unknown).await,
            }
        }
        Err(end) => {
            if end.error_type() == Some(ErrorType::Unauthorized) {
                metrics::resume::request(&state.cfg.name, metrics::resume::ResumeResult::Forbidden);
            }
            follow::Followed { end, from: None, events: 0, bytes_out: 0, heartbeats: 0 }
        }
    };
    // Readers are counted by result in `ssegate_resume_requests_total`, not as streams.
    let outcome = done.end.outcome();
    let duration = started.elapsed();
    logging::access(&AccessRecord {
        request_id: answer.request_id(),
        client,
        upstream_request_id: None,
        route: &state.cfg.name,
        method: method.as_str(),
        path: &path,
        upstream_status: None,
        format: "resume",
        outcome,
        duration,
        first_event: None,
        events: done.events,
        drained_events: None,
        disconnect: None,
        resumed_from: done.from,
        bytes_out: done.bytes_out,
        heartbeats: done.heartbeats,
        error: done.end.error_type().map(ErrorType::as_str),
        backend: None,
        attempts: 0,
        input_tokens: None,
        output_tokens: None,
        model: None,
    });
    done.end.reusable() && !*shutdown.borrow()
}

/// Admission on the route: the client key, a `max_streams` slot (held until the exchange ends) and the
/// request body, bounded in size and time. A refusal is answered here.
async fn admit<'r>(
    gw: &Gateway,
    state: &'r RouteState,
    session: &mut ServerSession,
    cors: &[(HeaderName, HeaderValue)],
    answer: &Answer,
) -> Result<(KeyHeaders, Bytes, crate::gateway::Slot<'r>), End> {
    // 1. The client key, if the route wants one.
    let key_headers = match &state.cfg.auth {
        None => KeyHeaders::default(),
        Some(keys) => {
            let h = &session.req_header().headers;
            match keys.check(h.get(header::AUTHORIZATION), h.get("x-api-key")) {
                Some(k) => k,
                None => {
                    let msg = "a valid key is required: Authorization: Bearer <key> or x-api-key: <key>";
                    let challenge = (header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                    drain_some(session).await;
                    return Err(reject(
                        state,
                        session,
                        cors,
                        answer,
                        ErrorType::Unauthorized,
                        msg,
                        Some(challenge),
                    )
                    .await);
                }
            }
        }
    };
    // 2. A max_streams slot.
    let Some(slot) = state.admit() else {
        drain_some(session).await;
        let retry = (header::RETRY_AFTER, state.retry_after.clone());
        let msg = "the route has reached max_streams concurrent requests; retry later";
        return Err(reject(state, session, cors, answer, ErrorType::Overloaded, msg, Some(retry)).await);
    };
    // 3. The request body, bounded in size and time.
    let read = read_body(session, gw.settings.max_request_body);
    let body = match tokio::time::timeout(gw.settings.request_body_timeout, read).await {
        Ok(Ok(b)) => b,
        Ok(Err(ty)) => {
            let msg = match ty {
                ErrorType::PayloadTooLarge => "request body larger than max_request_body",
                _ => "could not read the request body",
            };
            return Err(reject(state, session, cors, answer, ty, msg, None).await);
        }
        Err(_) => {
            let msg = "the request body did not arrive within request_body_timeout";
            return Err(reject(state, session, cors, answer, ErrorType::RequestTimeout, msg, None).await);
        }
    };
    Ok((key_headers, body, slot))
}

/// A refusal on a route before anything was sent upstream: counted, answered with the JSON error (plus
/// `extra` and the CORS headers); the connection is kept only if the request body was read to its end.
async fn reject(
    state: &RouteState,
    session: &mut ServerSession,
    cors: &[(HeaderName, HeaderValue)],
    answer: &Answer,
    ty: ErrorType,
    msg: &str,
    extra: Option<(HeaderName, HeaderValue)>,
) -> End {
    if let Some(reason) = ty.reject_reason() {
        state.metrics.rejected(reason);
    }
    let reusable = keep_if_body_done(session);
    let mut headers = cors.to_vec();
    headers.extend(extra);
    send_json_error_with(session, ty, msg, &headers, answer).await;
    End::Failed { ty, reusable }
}

/// A refusal before a route is chosen: counted, the body drained within [`drain_some`]'s bounds, answered.
/// Returns whether the connection may be reused.
async fn refuse(
    session: &mut ServerSession,
    reason: EdgeReason,
    ty: ErrorType,
    msg: &str,
    answer: &Answer,
) -> bool {
    metrics::downstream_rejected(reason);
    drain_some(session).await;
    let reusable = keep_if_body_done(session);
    send_json_error(session, ty, msg, answer).await;
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
    answer: &Answer,
) -> bool {
    drain_some(session).await;
    let reusable = keep_if_body_done(session);
    let req = session.req_header();
    let method = req.headers.get(header::ACCESS_CONTROL_REQUEST_METHOD).map_or(&b""[..], |v| v.as_bytes());
    let allowed = cors
        .allow_origin(origin)
        .filter(|_| cors.preflight_allows(method, req.headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS)));
    let Some(allow_origin) = allowed else {
        let vary = [(header::VARY, HeaderValue::from_static("Origin"))];
        let msg = "CORS preflight refused: origin, method or request headers not allowed on this route";
        return reject(state, session, &vary, answer, ErrorType::Forbidden, msg, None).await.reusable()
            && reusable;
    };
    let mut headers = vec![
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin),
        (header::ACCESS_CONTROL_ALLOW_METHODS, cors.allow_methods_value.clone()),
        (header::ACCESS_CONTROL_ALLOW_HEADERS, cors.allow_headers_value.clone()),
        (header::ACCESS_CONTROL_MAX_AGE, cors.max_age_value.clone()),
    ];
    if cors.allow_credentials {
        headers.push((header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true")));
    }
    headers.push((header::VARY, HeaderValue::from_static("Origin")));
    headers.push((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    send_preflight(session, &headers, answer).await && reusable
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
