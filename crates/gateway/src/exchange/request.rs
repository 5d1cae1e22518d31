//! One attempt: sending the request to one backend and waiting for the answer's head — committing early
//! and heartbeating if the backend is slow — with the one retry that is always safe: a reused pooled
//! connection that the upstream had already closed fails before any response byte (pingora marks such
//! errors retryable on reused connections only); the request is then sent once more, on a new connection
//! unless the pool holds another one.
//!
//! A failure of the attempt itself (connect, send, head timeout, first-event deadline, reset before the
//! head) is returned to the caller ([`Failure::Attempt`]), which fails over to another backend or reports
//! it ([`super::failover`]); nothing is written to the client for it here.

use bytes::Bytes;
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession;
use pingora::protocols::http::ServerSession;
use pingora::upstreams::peer::HttpPeer;
use tokio::time::Instant;

use super::failover::{AttemptFailed, Failure};
use super::{disconnect, wake, Exchange, Wake};
use crate::error::ErrorType;
use crate::metrics::RetryReason;
use crate::upstream;

impl Exchange<'_> {
    /// Returns the upstream session with its response head read.
    pub(super) async fn request(
        &mut self,
        session: &mut ServerSession,
        peer: &HttpPeer,
        head: &RequestHeader,
        body: &Bytes,
    ) -> Result<HttpSession, Failure> {
        let mut retried = false;
        loop {
            let (mut up, reused) = match Box::pin(upstream::connect(&self.route.connector, peer)).await {
                Ok(s) => s,
                Err(e) => {
                    let public = e.public_message();
                    return Err(AttemptFailed::failure(
                        ErrorType::UpstreamConnect,
                        public,
                        &e,
                        RetryReason::Connect,
                    ));
                }
            };
            let sent = async {
                up.write_request_header(Box::new(head.clone())).await?;
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
                    self.route.metrics.upstream_retry();
                    continue;
                }
                let msg = "sending the request to the upstream failed";
                return Err(AttemptFailed::failure(
                    ErrorType::UpstreamConnect,
                    msg,
                    &e,
                    RetryReason::Connect,
                ));
            }
            let sent_at = Instant::now();
            self.timers.waiting_for_head(sent_at, self.route.cfg.header_timeout);
            let failed = loop {
                match wake(
                    &mut self.timers,
                    session,
                    &mut self.client,
                    &mut self.shutdown,
                    up.read_response_header(),
                )
                .await
                {
                    Wake::Upstream(Ok(())) => break None,
                    Wake::Upstream(Err(e)) => break Some(e),
                    Wake::ClientGone => {
                        return Err(Failure::End(
                            Box::pin(disconnect::client_gone(Some(&mut up), &self.route.metrics)).await,
                        ))
                    }
                    Wake::ShutdownChanged => self.check_shutdown(),
                    Wake::Timer => {
                        let now = Instant::now();
                        let timeout = if self.timers.head_overdue(now) {
                            let msg = "the upstream sent no response headers within header_timeout";
                            Some((msg, RetryReason::Timeout))
                        } else if self.timers.first_event_overdue(now) && self.may_fail_over() {
                            // Only when another backend can take over; else this one may still answer.
                            Some((
                                "the upstream sent no event within first_event_timeout",
                                RetryReason::FirstEvent,
                            ))
                        } else {
                            None
                        };
                        if let Some((msg, reason)) = timeout {
                            up.shutdown().await;
                            self.timers.head_arrived();
                            return Err(AttemptFailed::failure(
                                ErrorType::UpstreamTimeout,
                                msg,
                                &msg,
                                reason,
                            ));
                        }
                        Box::pin(self.on_timer(session, &mut up)).await.map_err(Failure::End)?
                    }
                }
            };
            let Some(e) = failed else {
                self.timers.head_arrived();
                let took = sent_at.elapsed();
                self.route.metrics.upstream_header(took);
                if let Some(b) = self.attempts.backend {
                    self.route.pool.backend(b).metrics.header(took);
                }
                return Ok(up);
            };
            up.shutdown().await;
            let mut retry = e.retry;
            retry.decide_reuse(reused);
            if retry.retry() && !retried {
                retried = true;
                self.route.metrics.upstream_retry();
                continue;
            }
            self.timers.head_arrived();
            let msg = "the upstream connection broke before the response headers";
            return Err(AttemptFailed::failure(ErrorType::UpstreamReset, msg, &e, RetryReason::Connect));
        }
    }
}
