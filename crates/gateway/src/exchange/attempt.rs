//! One attempt on one backend: build its request, send it and wait for the head ([`request`](super::request)),
//! then decide what to do with the answer ([`choose`](super::choose)) and stream it: passed through, an
//! error event, or decoded by the pump. `Err` when the attempt failed in a way another backend may fix
//! (before the first event: [`failover`](super::failover)).

use bytes::Bytes;
use pingora::protocols::http::client::HttpSession;
use pingora::protocols::http::ServerSession;
use ssegate_frame::{Decoder, DecoderOptions};

use super::choose::{choose, Choice, Committed};
use super::failover::{AttemptFailed, Failure};
use super::pump::Pump;
use super::{disconnect, End, Exchange};
use crate::error::ErrorType;
use crate::headers;
use crate::metrics::RetryReason;
use crate::upstream::{self, Decompressor};

/// The most of an upstream error body quoted in an `upstream_status` error event.
const ERROR_BODY_LIMIT: usize = 16 * 1024;

impl Exchange<'_> {
    /// One attempt on backend `b`: its request (`base` for the route, changed for the backend; `body`),
    /// its head, then the answer streamed to the client. `Err`
    /// when it failed in a way that another backend may fix (nothing but heartbeats was written then).
    pub(super) async fn attempt(
        &mut self,
        session: &mut ServerSession,
        b: usize,
        base: pingora::http::RequestHeader,
        body: Bytes,
    ) -> Result<End, AttemptFailed> {
        let route = self.route;
        let cfg = &route.cfg;
        let backend = route.pool.backend(b);
        let head = match backend.request_head(base, &cfg.upstream) {
            Ok(h) => h,
            Err(e) => return Ok(self.fail(session, ErrorType::BadRequest, &e.to_string(), None).await),
        };
        let peer = match Box::pin(upstream::peer(&backend.cfg.upstream, cfg)).await {
            Ok(p) => p,
            Err(e) => {
                let public = e.public_message();
                return Err(AttemptFailed {
                    ty: e.error_type(),
                    public,
                    detail: e.to_string(),
                    reason: RetryReason::Connect,
                });
            }
        };
        let stream_call = crate::provider::format::is_stream_call(head.uri.path());
        let sent = self.request(session, &peer, &head, &body).await;
        // Neither is kept for the stream (pingora holds the copy of the head it wrote).
        drop((head, body));
        let mut up = match sent {
            Ok(up) => up,
            Err(Failure::End(end)) => return Ok(end),
            Err(Failure::Attempt(f)) => return Err(f),
        };
        let Some(resp) = up.response_header() else {
            up.shutdown().await;
            let msg = "the upstream sent no response header";
            return Ok(self.upstream_fail(session, ErrorType::UpstreamReset, msg, &msg).await);
        };
        let status = resp.status.as_u16();
        self.stats.upstream_status = Some(status);
        // Logged even when the stream was committed early and the upstream's headers cannot be sent.
        self.stats.upstream_request_id =
            headers::upstream_request_id(resp, &self.settings.upstream_request_id_headers);
        if cfg.pool.retry.on.status(status) && self.may_fail_over() {
            up.shutdown().await;
            let detail = format!("backend {} answered {status}", backend.cfg.name);
            let public = "the upstream answered with an error status";
            return Err(AttemptFailed {
                ty: ErrorType::UpstreamStatus,
                public,
                detail,
                reason: RetryReason::Status,
            });
        }
        let content_type = header_str(resp, "content-type").unwrap_or("");
        let format = crate::provider::format::for_call(cfg.provider, cfg.format, content_type, stream_call);
        let end = match choose(format, status, content_type, self.down.committed()) {
            Choice::Passthrough => {
                let head = resp.clone();
                if self.down.commit_passthrough(session, &head, cfg.cors.is_some()).await.is_err() {
                    return Ok(Box::pin(disconnect::client_gone(Some(&mut up), &self.route.metrics)).await);
                }
                self.timers.passthrough_committed();
                let end = self.pump(session, Pump::new(up, None, None), &peer).await;
                if status >= 400 && matches!(end, End::Completed) {
                    // The upstream's own error reached the client unchanged; it is still an upstream error.
                    self.route.metrics.stream_error(ErrorType::UpstreamStatus);
                    return Ok(End::Failed { ty: ErrorType::UpstreamStatus, reusable: true });
                }
                end
            }
            Choice::ErrorEvent => {
                let message = Box::pin(read_error_body(&mut up, status)).await;
                up.shutdown().await;
                self.fail(session, ErrorType::UpstreamStatus, &message, Some(status)).await
            }
            Choice::Decode(format) => {
                let decompressor = match Decompressor::for_encoding(header_str(resp, "content-encoding")) {
                    // Boxed before it is held across the awaits below (rare, 256 bytes).
                    Ok(d) => d.map(Box::new),
                    Err(enc) => {
                        up.shutdown().await;
                        let msg = format!("upstream used unsupported content-encoding {enc:?}");
                        return Ok(self.upstream_fail(session, ErrorType::Decode, &msg, &msg).await);
                    }
                };
                if self.down.committed() == Committed::No {
                    let upstream_head = Some((resp, cfg.cors.is_some()));
                    if let Err(e) = Box::pin(self.commit_sse(session, upstream_head)).await {
                        return Ok(Box::pin(self.write_failed(e, Some(&mut up))).await);
                    }
                }
                self.stats.format = Some(format);
                let opts = DecoderOptions {
                    max_event_size: cfg.max_event_size,
                    event_field: cfg.event_field.clone(),
                    comments: cfg.forward_comments,
                };
                let pump = Pump::new(up, Some(Decoder::new(format, opts)), decompressor);
                self.pump(session, pump, &peer).await
            }
        };
        match end {
            End::NextBackend => Err(AttemptFailed {
                ty: ErrorType::UpstreamTimeout,
                public: "the upstream sent no event within first_event_timeout",
                detail: format!("backend {} sent no event within first_event_timeout", backend.cfg.name),
                reason: RetryReason::FirstEvent,
            }),
            end => Ok(end),
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
