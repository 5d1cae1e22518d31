//! One attempt on one backend: build its request, send it and wait for the head ([`request`](super::request)),
//! then decide what to do with the answer ([`choose`](super::choose)) and stream it: passed through, an
//! error event, or decoded by the pump. `Err` when the attempt failed in a way another backend may fix
//! (before the first event: [`failover`](super::failover)).

use std::sync::Arc;

use bytes::Bytes;
use pingora::protocols::http::client::HttpSession;
use pingora::protocols::http::ServerSession;
use pingora::upstreams::peer::HttpPeer;
use ssegate_frame::{Decoder, DecoderOptions};

use super::choose::{choose, Choice, Committed};
use super::failover::{AttemptFailed, Failure};
use super::pump::Pump;
use super::{disconnect, End, Exchange};
use crate::error::ErrorType;
use crate::headers;
use crate::metrics::RetryReason;
use crate::upstream::Decompressor;

/// The most of an upstream error body quoted in an `upstream_status` error event.
const ERROR_BODY_LIMIT: usize = 16 * 1024;

/// What the answer's head decided, when the answer is to be streamed.
struct Streamed {
    pump: Pump,
    /// Passed through as it came: its status (an upstream error status is still counted as one).
    passthrough: Option<u16>,
}

impl Exchange<'_> {
    /// One attempt on backend `b`: its request (`base` for the route, changed for the backend; `body`),
    /// its head, then the answer streamed to the client. `Err`
    /// when it failed in a way that another backend may fix (nothing but heartbeats was written then).
    ///
    /// The stream's state is the largest part of every open stream's memory, so what the body loop does
    /// not need is not held across it: the request, the connect and the head wait are a boxed future
    /// freed once the head arrived ([`Exchange::open`]), the head's decision is an awaited call of its own
    /// ([`Exchange::on_head`]), and the upstream session lives only in the [`Pump`].
    pub(super) async fn attempt(
        &mut self,
        session: &mut ServerSession,
        b: usize,
        base: Box<pingora::http::RequestHeader>,
        body: Bytes,
    ) -> Result<End, AttemptFailed> {
        let (up, peer, stream_call) = match Box::pin(self.open(session, b, base, body)).await {
            Ok(opened) => opened,
            Err(Failure::End(end)) => return Ok(end),
            Err(Failure::Attempt(f)) => return Err(f),
        };
        // Boxed: its state is larger than the body loop's, and it would size this future for the stream's life.
        let Streamed { pump, passthrough } = match Box::pin(self.on_head(session, b, up, stream_call)).await {
            Ok(streamed) => streamed,
            Err(done) => return done,
        };
        let end = self.pump(session, pump, &peer).await;
        if passthrough.is_some_and(|status| status >= 400) && matches!(end, End::Completed) {
            // The upstream's own error reached the client unchanged; it is still an upstream error.
            self.route.metrics.stream_error(ErrorType::UpstreamStatus);
            return Ok(End::Failed { ty: ErrorType::UpstreamStatus, reusable: true });
        }
        match end {
            End::NextBackend => {
                let name = &self.route.pool.backend(b).cfg.name;
                Err(AttemptFailed {
                    ty: ErrorType::UpstreamTimeout,
                    public: "the upstream sent no event within first_event_timeout",
                    detail: format!("backend {name} sent no event within first_event_timeout"),
                    reason: RetryReason::FirstEvent,
                })
            }
            end => Ok(end),
        }
    }

    /// The attempt's request on backend `b`: its head built for the backend, the peer, then sent with
    /// `body` and the answer's head read ([`request`](super::request)). Also whether it is a streaming
    /// call (for the provider's format).
    async fn open(
        &mut self,
        session: &mut ServerSession,
        b: usize,
        base: Box<pingora::http::RequestHeader>,
        body: Bytes,
    ) -> Result<(HttpSession, Arc<HttpPeer>, bool), Failure> {
        let cfg = &self.route.cfg;
        let backend = self.route.pool.backend(b);
        let head = match backend.request_head(*base, &cfg.upstream) {
            Ok(h) => h,
            Err(e) => {
                return Err(Failure::End(
                    self.fail(session, ErrorType::BadRequest, &e.to_string(), None).await,
                ))
            }
        };
        let peer = match Box::pin(backend.peers.peer(&backend.cfg.upstream, cfg)).await {
            Ok(p) => p,
            Err(e) => {
                let public = e.public_message();
                return Err(Failure::Attempt(AttemptFailed {
                    ty: e.error_type(),
                    public,
                    detail: e.to_string(),
                    reason: RetryReason::Connect,
                }));
            }
        };
        let stream_call = crate::provider::format::is_stream_call(head.uri.path());
        // Neither the head nor the body is kept for the stream (pingora holds the copy of the head it wrote).
        let up = self.request(session, &peer, &head, &body).await?;
        Ok((up, peer, stream_call))
    }

    /// Decides what to do with the answer whose head `up` has read ([`choose`]): fail over (`Err(Err)`),
    /// answer with an error (`Err(Ok)`), or stream it — passed through, or decoded by the pump (committing
    /// the SSE head first unless a heartbeat already did).
    async fn on_head(
        &mut self,
        session: &mut ServerSession,
        b: usize,
        mut up: HttpSession,
        stream_call: bool,
    ) -> Result<Streamed, Result<End, AttemptFailed>> {
        let route = self.route;
        let cfg = &route.cfg;
        let Some(resp) = up.response_header() else {
            up.shutdown().await;
            let msg = "the upstream sent no response header";
            return Err(Ok(self.upstream_fail(session, ErrorType::UpstreamReset, msg, &msg).await));
        };
        let status = resp.status.as_u16();
        self.stats.upstream_status = Some(status);
        // Logged even when the stream was committed early and the upstream's headers cannot be sent.
        self.stats.upstream_request_id =
            headers::upstream_request_id(resp, &self.settings.upstream_request_id_headers);
        if cfg.pool.retry.on.status(status) && self.may_fail_over() {
            up.shutdown().await;
            let detail = format!("backend {} answered {status}", route.pool.backend(b).cfg.name);
            let public = "the upstream answered with an error status";
            return Err(Err(AttemptFailed {
                ty: ErrorType::UpstreamStatus,
                public,
                detail,
                reason: RetryReason::Status,
            }));
        }
        let content_type = header_str(resp, "content-type").unwrap_or("");
        let format = crate::provider::format::for_call(cfg.provider, cfg.format, content_type, stream_call);
        match choose(format, status, content_type, self.down.committed()) {
            Choice::Passthrough => {
                let head = resp.clone();
                if self.down.commit_passthrough(session, &head, cfg.cors.is_some()).await.is_err() {
                    return Err(Ok(Box::pin(disconnect::client_gone(Some(&mut up), &route.metrics)).await));
                }
                self.timers.passthrough_committed();
                up.trim_heads();
                Ok(Streamed { pump: Pump::new(up, None, None), passthrough: Some(status) })
            }
            Choice::ErrorEvent => {
                let message = Box::pin(read_error_body(&mut up, status)).await;
                up.shutdown().await;
                Err(Ok(self.fail(session, ErrorType::UpstreamStatus, &message, Some(status)).await))
            }
            Choice::Decode(format) => {
                let decompressor = match Decompressor::for_encoding(header_str(resp, "content-encoding")) {
                    // Boxed before it is held across the awaits below (rare, 256 bytes).
                    Ok(d) => d.map(Box::new),
                    Err(enc) => {
                        up.shutdown().await;
                        let msg = format!("upstream used unsupported content-encoding {enc:?}");
                        return Err(Ok(self.upstream_fail(session, ErrorType::Decode, &msg, &msg).await));
                    }
                };
                if self.down.committed() == Committed::No {
                    let upstream_head = Some((resp, cfg.cors.is_some()));
                    if let Err(e) = Box::pin(self.commit_sse(session, upstream_head)).await {
                        return Err(Ok(Box::pin(self.write_failed(e, Some(&mut up))).await));
                    }
                }
                self.stats.format = Some(format);
                let opts = DecoderOptions {
                    max_event_size: cfg.max_event_size,
                    event_field: cfg.event_field.clone(),
                    comments: cfg.forward_comments,
                };
                up.trim_heads();
                let pump = Pump::new(up, Some(Decoder::new(format, opts)), decompressor);
                Ok(Streamed { pump, passthrough: None })
            }
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
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), read).await;
    body.truncate(ERROR_BODY_LIMIT);
    let text = String::from_utf8_lossy(&body);
    let text = text.trim();
    if text.is_empty() {
        format!("upstream answered {status}")
    } else {
        format!("upstream answered {status}: {text}")
    }
}

fn header_str<'h>(resp: &'h pingora::http::ResponseHeader, name: &str) -> Option<&'h str> {
    resp.headers.get(name).and_then(|v| v.to_str().ok())
}
