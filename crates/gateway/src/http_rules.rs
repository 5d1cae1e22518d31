//! HTTP/1 request rules at the edge, before any route is looked at: the requests whose framing or
//! authority is ambiguous are answered with a JSON `400` (`bad_request`) and `Connection: close`, and never
//! forwarded. HTTP/2 requests are not concerned (`:authority` replaces `Host`; h2 frames bodies itself).
//!
//! Two places meet such requests:
//!
//! - pingora's HTTP/1 reader ([`unreadable`]) refuses a head it cannot parse (httparse: a header name with a
//!   space, an obs-fold continuation line, a bad request line) or that it finds ambiguous itself (two
//!   `Host` fields, `Host` differing from an absolute-form target's authority, userinfo, two different
//!   `Content-Length` values, a `Transfer-Encoding` whose final coding is not `chunked`). The session has
//!   no usable request then; the answer is written without one and the connection closed.
//! - a head pingora accepted ([`check_head`]): an HTTP/1.1 request without `Host` (RFC 9112 §3.2), and a
//!   request with both `Content-Length` and `Transfer-Encoding` (pingora drops the `Content-Length` and
//!   goes on; RFC 9112 §6.3 lets a server refuse it, and a proxy should: request smuggling).
//!
//! Each refusal is counted once in `ssegate_downstream_rejected_total` under its [`EdgeReason`].

use bytes::Bytes;
use http::{header, Version};
use pingora::protocols::http::ServerSession;

use crate::error::ErrorType;
use crate::exchange::downstream::send_json_error;
use crate::headers::{self, Answer};
use crate::metrics::{self, EdgeReason};

/// Why a request is refused at the edge: its counter, its error type and the fixed message (never the
/// request's own bytes: they may hold a key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub reason: EdgeReason,
    pub ty: ErrorType,
    pub message: &'static str,
}

const BAD_HOST: Refusal = Refusal {
    reason: EdgeReason::BadHost,
    ty: ErrorType::BadRequest,
    message: "ambiguous request authority: exactly one Host header is required on HTTP/1.1, and it must \
              equal the authority of an absolute-form target (no userinfo)",
};
const NO_HOST: Refusal = Refusal {
    reason: EdgeReason::BadHost,
    ty: ErrorType::BadRequest,
    message: "an HTTP/1.1 request must carry a Host header",
};
const AMBIGUOUS_LENGTH: Refusal = Refusal {
    reason: EdgeReason::AmbiguousLength,
    ty: ErrorType::BadRequest,
    message: "ambiguous request body length: Content-Length with Transfer-Encoding, differing or invalid \
              Content-Length values, or a Transfer-Encoding not ending in chunked",
};
const MALFORMED: Refusal = Refusal {
    reason: EdgeReason::Malformed,
    ty: ErrorType::BadRequest,
    message: "the request head could not be parsed (request line, header names, obs-fold lines)",
};
const TOO_LARGE: Refusal = Refusal {
    reason: EdgeReason::HeaderTooLarge,
    ty: ErrorType::HeaderTooLarge,
    message: "the request head is larger than max_header_size",
};

/// How a head that pingora could not read is answered: `None` when the connection broke (nothing to tell,
/// nobody to tell it to), else the refusal, classified by pingora's explanation (its wording is not an API:
/// an explanation not recognised here falls back to `malformed`, which is still a 400).
pub fn classify_read_error(e: &pingora::Error) -> Option<Refusal> {
    if *e.etype() != pingora::ErrorType::InvalidHTTPHeader {
        return None;
    }
    let ctx = e.context.as_ref().map_or("", |c| c.as_str());
    Some(if ctx.starts_with("Request header larger than") {
        TOO_LARGE
    } else if ctx.starts_with("buf:") {
        // httparse refused the bytes (quoted after `buf:`, so not searched for the words below).
        MALFORMED
    } else if ["Host", "authority", "userinfo", "request target"].iter().any(|w| ctx.contains(w)) {
        BAD_HOST
    } else if ["Content-Length", "Transfer-Encoding"].iter().any(|w| ctx.contains(w)) {
        AMBIGUOUS_LENGTH
    } else {
        MALFORMED
    })
}

/// Answers (when it can: see [`classify_read_error`]; not a head over pingora's 1 MiB bound) a head
/// pingora refused, and counts it. The connection is closed afterwards by the caller.
pub async fn unreadable(session: &mut ServerSession, e: &pingora::Error) {
    let Some(refusal) = classify_read_error(e) else {
        metrics::downstream_rejected(EdgeReason::Malformed);
        return;
    };
    metrics::downstream_rejected(refusal.reason);
    if refusal.reason == EdgeReason::HeaderTooLarge {
        // Over pingora's own 1 MiB bound: the client is still sending; the unread bytes would turn the
        // close into a reset that destroys the answer anyway. Closed without one.
        return;
    }
    session.set_keepalive(None);
    // No request to take an id from: a new one.
    let answer = Answer::bare(headers::new_request_id());
    send_json_error(session, refusal.ty, refusal.message, &answer).await;
    // Half-close so that the answer goes out before the close (pingora's own proxy does the same).
    session.shutdown().await;
}

/// The rules pingora's reader does not apply, for a head it accepted (HTTP/1 only).
pub fn check_head(session: &ServerSession) -> Result<(), Refusal> {
    let Some(h1) = session.as_http1() else { return Ok(()) };
    let req = session.req_header();
    if req.version == Version::HTTP_11 && !req.headers.contains_key(header::HOST) {
        return Err(NO_HOST);
    }
    if req.headers.contains_key(header::TRANSFER_ENCODING) && has_content_length(&h1.get_headers_raw_bytes())
    {
        return Err(AMBIGUOUS_LENGTH);
    }
    Ok(())
}

/// Whether a raw HTTP/1 head has a `Content-Length` field line (pingora removes the field from the parsed
/// head when `Transfer-Encoding` is present, so only the raw bytes still tell).
fn has_content_length(raw: &Bytes) -> bool {
    raw.split(|b| *b == b'\n').skip(1).any(|line| {
        let name = line.split(|b| *b == b':').next().unwrap_or(b"");
        line.contains(&b':') && name.trim_ascii().eq_ignore_ascii_case(b"content-length")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora::{Error, ErrorType as E};

    #[test]
    fn read_errors_are_classified() {
        let cases = [
            ("multiple Host header fields", EdgeReason::BadHost),
            ("Host header differs from request-target authority", EdgeReason::BadHost),
            ("Host header differs from URI authority", EdgeReason::BadHost),
            ("userinfo in request target", EdgeReason::BadHost),
            ("invalid Content-Length header", EdgeReason::AmbiguousLength),
            ("non-chunked final Transfer-Encoding", EdgeReason::AmbiguousLength),
            ("Request header larger than 1048575", EdgeReason::HeaderTooLarge),
            ("buf: GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 ...", EdgeReason::Malformed),
        ];
        for (ctx, reason) in cases {
            let r = classify_read_error(&Error::explain(E::InvalidHTTPHeader, ctx)).unwrap();
            assert_eq!(r.reason, reason, "{ctx}");
        }
        assert_eq!(classify_read_error(&Error::explain(E::ReadError, "reset")), None);
    }

    #[test]
    fn content_length_lines_are_found_in_the_raw_head() {
        let yes = Bytes::from_static(b"POST / HTTP/1.1\r\nHost: a\r\ncontent-LENGTH: 5\r\n\r\n");
        let no = Bytes::from_static(
            b"POST /content-length: HTTP/1.1\r\nHost: a\r\nX-A: Content-Length: 5\r\n\r\n",
        );
        assert!(has_content_length(&yes));
        assert!(!has_content_length(&no));
    }
}
