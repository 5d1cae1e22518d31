//! The downstream writer: the only code that writes to pingora's [`ServerSession`] — response heads
//! (SSE, passthrough, JSON errors, CORS preflights), body chunks, the end of the body.
//!
//! It owns what the client has been sent so far ([`Committed`]), the output buffer that events are encoded
//! into, the CORS headers every response of the request carries, and the request's [`Answer`] (its
//! `X-Request-Id` and the route's `response_headers`), which every head it writes goes through. It knows nothing of upstreams,
//! timers or metrics: it reports what happened ([`WriteError`], bytes written) and the exchange acts on it.

use bytes::{Bytes, BytesMut};
use http::{header, HeaderName, HeaderValue};
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
use ssegate_frame::encode::Output;

use super::choose::Committed;
use crate::error::ErrorType;
use crate::headers::Answer;
use crate::respond;
use crate::upstream;

/// The largest output buffer kept between reads: one upstream chunk of many small messages can fill much
/// more, and a stream may then stay open and idle for hours.
const KEEP_BUFFER: usize = 64 * 1024;

/// The response header naming a resumable stream (exposed to CORS clients).
pub const STREAM_ID: &str = "ssegate-stream-id";

/// Why a write failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteError {
    /// The client did not accept the data within `write_timeout` (it stopped reading).
    Slow,
    /// The client is gone (connection closed or reset).
    Gone,
}

/// The response side of one exchange.
#[derive(Debug)]
pub struct Downstream {
    /// How events, heartbeats and errors are written (the content type of a converted stream).
    output: Output,
    committed: Committed,
    /// Encoded output not yet written.
    out: BytesMut,
    /// CORS headers for every response of this request (empty unless the route has `cors`).
    cors: Vec<(HeaderName, HeaderValue)>,
    /// The request id and the route's `response_headers`, for every head written.
    answer: Answer,
    /// `Vary: Accept` on the stream's head (the route lists several outputs).
    vary_accept: bool,
}

impl Downstream {
    pub fn new(output: Output, cors: Vec<(HeaderName, HeaderValue)>, answer: Answer) -> Downstream {
        Downstream {
            output,
            committed: Committed::No,
            out: BytesMut::new(),
            cors,
            answer,
            vary_accept: false,
        }
    }

    /// The request id and the route's `response_headers`.
    pub fn answer(&self) -> &Answer {
        &self.answer
    }

    /// What the client has been sent.
    pub fn committed(&self) -> Committed {
        self.committed
    }

    /// The CORS headers of this request.
    pub fn cors(&self) -> &[(HeaderName, HeaderValue)] {
        &self.cors
    }

    /// The buffer events are encoded into; [`Downstream::flush`] writes it.
    pub fn out(&mut self) -> &mut BytesMut {
        &mut self.out
    }

    /// Adds `Vary: Accept` to the stream's head: the route chooses its output by `Accept`.
    pub fn vary_accept(&mut self) {
        self.vary_accept = true;
    }

    /// Encodes `ev` with the stream's output (e.g. the route's `done_event`).
    pub fn event(&mut self, ev: &ssegate_frame::Event) {
        self.output.event(ev, &mut self.out);
    }

    /// Commits `200` with the output's content type (`text/event-stream; charset=utf-8`) and the streaming
    /// headers, plus the upstream's end-to-end headers when its head is there (`upstream`; see
    /// [`Answer::copy_upstream`] for what a conversion drops). An early commit (a heartbeat before the
    /// upstream's head) has none to give: the head is gone before they exist.
    /// A resumable stream's head also carries `ssegate-stream-id: <stream>` (`stream_id`).
    pub async fn commit_sse(
        &mut self,
        session: &mut ServerSession,
        upstream: Option<(&ResponseHeader, bool)>,
        stream_id: Option<HeaderValue>,
    ) -> Result<(), WriteError> {
        // Sized to what it will hold — the 3 below, `transfer-encoding`, and pingora's `date` and
        // `connection` —: a header map sized for more, or grown by doubling, is kilobytes (freed once the
        // head is written, but it sets the peak while a crowd of streams opens).
        let copied = upstream.map_or(0, |(u, cors_route)| self.answer.upstream_kept(u, cors_route).count());
        let size = 6 + copied + self.cors.len() + usize::from(self.vary_accept) + self.answer.added();
        let mut head = ResponseHeader::build(200, Some(size)).map_err(|_| WriteError::Gone)?;
        let _ = head.insert_header("content-type", HeaderValue::from_static(self.output.content_type()));
        let _ = head.insert_header("cache-control", HeaderValue::from_static("no-cache, no-transform"));
        let _ = head.insert_header("x-accel-buffering", HeaderValue::from_static("no"));
        if let Some((resp, cors_route)) = upstream {
            self.answer.copy_upstream(resp, &mut head, cors_route);
        }
        for (name, value) in &self.cors {
            let _ = head.append_header(name.clone(), value.clone());
        }
        if self.vary_accept {
            let _ = head.append_header(http::header::VARY, HeaderValue::from_static("Accept"));
        }
        if let Some(id) = stream_id {
            let _ = head.insert_header(STREAM_ID, id);
        }
        self.answer.finish(&mut head);
        if chunked_allowed(session) {
            let _ = head.insert_header("transfer-encoding", HeaderValue::from_static("chunked"));
        }
        session.write_response_header(Box::new(head)).await.map_err(|_| WriteError::Gone)?;
        // pingora keeps the written head for the life of the stream; nothing reads its fields again.
        session.trim_response_written();
        self.committed = Committed::Sse;
        Ok(())
    }

    /// Commits the upstream's own response head (minus hop-by-hop headers; on a CORS route its
    /// `Access-Control-*` headers replaced by the route's).
    pub async fn commit_passthrough(
        &mut self,
        session: &mut ServerSession,
        resp: &ResponseHeader,
        cors_route: bool,
    ) -> Result<(), WriteError> {
        let status = resp.status.as_u16();
        let bodyless = session.req_header().method.as_str() == "HEAD" || status == 204 || status == 304;
        let mut head = passthrough_header(resp, cors_route, &self.cors, &self.answer);
        self.answer.finish(&mut head);
        if chunked_allowed(session) && !bodyless && head.headers.get("content-length").is_none() {
            let _ = head.insert_header("transfer-encoding", "chunked");
        }
        session.write_response_header(Box::new(head)).await.map_err(|_| WriteError::Gone)?;
        session.trim_response_written();
        self.committed = Committed::Passthrough;
        Ok(())
    }

    /// Writes what is buffered, as one chunk; returns the bytes written.
    pub async fn flush(&mut self, session: &mut ServerSession) -> Result<usize, WriteError> {
        let data = self.out.split().freeze();
        if data.len() > KEEP_BUFFER {
            // Let a burst's allocation go with the written chunk (`out` would otherwise reclaim it for good).
            self.out = BytesMut::new();
        }
        write(session, data).await
    }

    /// Writes `data` (a passthrough chunk, not copied) as one chunk; returns the bytes written.
    pub async fn write(&mut self, session: &mut ServerSession, data: Bytes) -> Result<usize, WriteError> {
        write(session, data).await
    }

    /// Writes a heartbeat comment.
    pub async fn heartbeat(&mut self, session: &mut ServerSession) -> Result<usize, WriteError> {
        self.output.heartbeat(&mut self.out);
        self.flush(session).await
    }

    /// Ends the body (after flushing what is buffered). Returns the bytes of the last chunk, or `None`
    /// when the client is gone.
    pub async fn finish(&mut self, session: &mut ServerSession) -> Option<usize> {
        let n = self.flush(session).await.ok()?;
        session.finish_body().await.ok()?;
        Some(n)
    }

    /// Reports a failure the only way the committed state allows, then ends the response: a JSON error
    /// response while nothing is committed, `event: error` (after `retry: retry_ms` when given) on an SSE
    /// stream, nothing on a passthrough body (cut short: the client sees an incomplete message, never a
    /// forged end). Returns whether the connection may be reused, and the body bytes written.
    pub async fn fail(
        &mut self,
        session: &mut ServerSession,
        ty: ErrorType,
        msg: &str,
        status: u16,
        retry_ms: Option<u64>,
    ) -> (bool, usize) {
        match self.committed {
            Committed::No => {
                let reusable = session.is_body_done();
                Box::pin(send_json_error_with(session, ty, msg, &self.cors, &self.answer)).await;
                (reusable, 0)
            }
            Committed::Sse => {
                if let Some(ms) = retry_ms {
                    self.output.retry(ms, &mut self.out);
                }
                let body = respond::json_body(ty, msg, status, self.answer.request_id());
                self.output.error(&body, &mut self.out);
                match Box::pin(self.finish(session)).await {
                    Some(n) => (true, n),
                    None => (false, 0),
                }
            }
            Committed::Passthrough => (false, 0),
        }
    }

    /// [`Downstream::fail`] on a committed resumable stream: the recorded `event: error` `ev`, with its
    /// resume `id`, then the end of the response.
    pub async fn fail_recorded(
        &mut self,
        session: &mut ServerSession,
        ev: &ssegate_frame::Event,
        id: ssegate_frame::encode::Id<'_>,
        retry_ms: Option<u64>,
    ) -> (bool, usize) {
        if let Some(ms) = retry_ms {
            self.output.retry(ms, &mut self.out);
        }
        self.output.event_with_id(ev, id, &mut self.out);
        match Box::pin(self.finish(session)).await {
            Some(n) => (true, n),
            None => (false, 0),
        }
    }
}

async fn write(session: &mut ServerSession, data: Bytes) -> Result<usize, WriteError> {
    if data.is_empty() {
        return Ok(0);
    }
    let n = data.len();
    match session.write_response_body(data, false).await {
        Ok(()) => Ok(n),
        Err(e) if e.etype() == &pingora::ErrorType::WriteTimedout => Err(WriteError::Slow),
        Err(e) => {
            tracing::debug!(error = %e, "client write failed");
            Err(WriteError::Gone)
        }
    }
}

/// Writes a complete JSON error response (before anything was committed). Errors writing to a client that
/// is gone are ignored: there is nobody left to tell.
pub async fn send_json_error(session: &mut ServerSession, ty: ErrorType, message: &str, answer: &Answer) {
    send_json_error_with(session, ty, message, &[], answer).await;
}

/// Like [`send_json_error`], with extra response headers (`WWW-Authenticate`, `Retry-After`, CORS, `Allow`).
pub async fn send_json_error_with(
    session: &mut ServerSession,
    ty: ErrorType,
    message: &str,
    extra: &[(HeaderName, HeaderValue)],
    answer: &Answer,
) {
    let status = ty.status();
    let body = respond::json_body(ty, message, status, answer.request_id());
    let Ok(mut resp) = ResponseHeader::build(status, Some(5 + extra.len())) else { return };
    let _ = resp.insert_header("content-type", HeaderValue::from_static("application/json"));
    let _ = resp.insert_header("cache-control", HeaderValue::from_static("no-store"));
    let _ = resp.set_content_length(body.len());
    for (name, value) in extra {
        let _ = resp.append_header(name.clone(), value.clone());
    }
    answer.finish(&mut resp);
    if session.write_response_header(Box::new(resp)).await.is_ok() {
        let _ = session.write_response_body(body, true).await;
    }
}

/// Writes a `204` CORS preflight answer with `headers`; whether the connection may be reused.
pub async fn send_preflight(
    session: &mut ServerSession,
    headers: &[(HeaderName, HeaderValue)],
    answer: &Answer,
) -> bool {
    let Ok(mut resp) = ResponseHeader::build(204, Some(headers.len() + 2)) else { return false };
    for (name, value) in headers {
        let _ = resp.insert_header(name.clone(), value.clone());
    }
    answer.finish(&mut resp);
    if session.write_response_header(Box::new(resp)).await.is_err() {
        return false;
    }
    session.finish_body().await.is_ok()
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

/// The upstream's response header for the client, minus hop-by-hop headers and the route's
/// `response_headers.remove`. On a CORS route the upstream's own `Access-Control-*` headers are replaced by
/// the route's (`cors`).
fn passthrough_header(
    resp: &ResponseHeader,
    cors_route: bool,
    cors: &[(HeaderName, HeaderValue)],
    answer: &Answer,
) -> ResponseHeader {
    let mut out = resp.clone();
    let connection = resp.headers.get(header::CONNECTION).map(|v| v.as_bytes());
    for name in resp.headers.keys() {
        let n = name.as_str();
        if upstream::is_hop_by_hop(n, connection)
            || (cors_route && n.starts_with("access-control-"))
            || answer.removes(n)
        {
            out.remove_header(name);
        }
    }
    for (name, value) in cors {
        let _ = out.append_header(name.clone(), value.clone());
    }
    out
}
