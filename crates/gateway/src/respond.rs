//! Every way ssegate reports a failure, in one place: the error type decides the HTTP status before the
//! response is committed, and the `event: error` after it.
//!
//! Body of both: `{"error":{"type":"<type>","message":"<text>","status":<N>}}`.

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderName, HeaderValue};
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;

/// The `type` of an error response or error event (closed set; also the `kind` metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// No route matches the path (404).
    NotFound,
    /// The request body is larger than `max_request_body` (413).
    PayloadTooLarge,
    /// The request could not be read or forwarded as sent, or its target breaks the path rule (400).
    BadRequest,
    /// The route has `auth` and the request carried no valid key (401, with `WWW-Authenticate: Bearer`).
    Unauthorized,
    /// A CORS preflight from an origin, method or header the route does not allow (403).
    Forbidden,
    /// A method ssegate never forwards (`CONNECT`) (405).
    MethodNotAllowed,
    /// The request body did not arrive within `request_body_timeout` (408).
    RequestTimeout,
    /// The request head is larger than `max_header_size` (431).
    HeaderTooLarge,
    /// The route already has `max_streams` requests in progress (503, with `Retry-After`).
    Overloaded,
    /// DNS, TCP or TLS to the upstream failed (502).
    UpstreamConnect,
    /// The upstream sent no response headers within `header_timeout` (504).
    UpstreamTimeout,
    /// The upstream body was silent for `idle_timeout`.
    UpstreamIdle,
    /// The upstream connection broke mid-response.
    UpstreamReset,
    /// The upstream answered with an error status after the stream was committed.
    UpstreamStatus,
    /// A message could not be decoded and the route says `on_decode_error = "close"` (or it was unrecoverable).
    Decode,
    /// The stream reached the route's `max_duration`.
    MaxDuration,
    /// The gateway is shutting down and the drain period ended.
    Shutdown,
}

impl ErrorType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::NotFound => "not_found",
            ErrorType::PayloadTooLarge => "payload_too_large",
            ErrorType::BadRequest => "bad_request",
            ErrorType::Unauthorized => "unauthorized",
            ErrorType::Forbidden => "forbidden",
            ErrorType::MethodNotAllowed => "method_not_allowed",
            ErrorType::RequestTimeout => "request_timeout",
            ErrorType::HeaderTooLarge => "header_too_large",
            ErrorType::Overloaded => "overloaded",
            ErrorType::UpstreamConnect => "upstream_connect",
            ErrorType::UpstreamTimeout => "upstream_timeout",
            ErrorType::UpstreamIdle => "upstream_idle",
            ErrorType::UpstreamReset => "upstream_reset",
            ErrorType::UpstreamStatus => "upstream_status",
            ErrorType::Decode => "decode",
            ErrorType::MaxDuration => "max_duration",
            ErrorType::Shutdown => "shutdown",
        }
    }

    /// The HTTP status used for a response (and in the JSON `status` when no upstream status applies).
    pub fn status(self) -> u16 {
        match self {
            ErrorType::NotFound => 404,
            ErrorType::PayloadTooLarge => 413,
            ErrorType::BadRequest => 400,
            ErrorType::Unauthorized => 401,
            ErrorType::Forbidden => 403,
            ErrorType::MethodNotAllowed => 405,
            ErrorType::RequestTimeout => 408,
            ErrorType::HeaderTooLarge => 431,
            ErrorType::Overloaded => 503,
            ErrorType::UpstreamConnect | ErrorType::UpstreamReset | ErrorType::Decode => 502,
            ErrorType::UpstreamStatus => 502,
            ErrorType::UpstreamTimeout | ErrorType::UpstreamIdle | ErrorType::MaxDuration => 504,
            ErrorType::Shutdown => 503,
        }
    }
}

/// `{"error":{"type":..,"message":..,"status":..}}`
/// The fields are written in the documented order; `message` is JSON-escaped with runs of whitespace folded.
pub fn json_body(ty: ErrorType, message: &str, status: u16) -> Bytes {
    let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
    let message = serde_json::Value::String(message).to_string();
    Bytes::from(format!(r#"{{"error":{{"type":"{}","message":{message},"status":{status}}}}}"#, ty.as_str()))
}

/// Appends `event: error` with the JSON body as its data.
pub fn error_event(ty: ErrorType, message: &str, status: u16, out: &mut BytesMut) {
    out.put_slice(b"event: error\ndata: ");
    out.put_slice(&json_body(ty, message, status));
    out.put_slice(b"\n\n");
}

/// Writes a complete JSON error response (before anything was committed). Errors writing to a client that
/// is gone are ignored: there is nobody left to tell.
pub async fn send_json_error(session: &mut ServerSession, ty: ErrorType, message: &str) {
    send_json_error_with(session, ty, message, &[]).await;
}

/// Like [`send_json_error`], with extra response headers (`WWW-Authenticate`, `Retry-After`, CORS).
pub async fn send_json_error_with(
    session: &mut ServerSession,
    ty: ErrorType,
    message: &str,
    extra: &[(HeaderName, HeaderValue)],
) {
    let status = ty.status();
    let body = json_body(ty, message, status);
    let Ok(mut resp) = ResponseHeader::build(status, Some(3 + extra.len())) else { return };
    let _ = resp.insert_header("content-type", HeaderValue::from_static("application/json"));
    let _ = resp.insert_header("cache-control", HeaderValue::from_static("no-store"));
    let _ = resp.set_content_length(body.len());
    for (name, value) in extra {
        let _ = resp.append_header(name.clone(), value.clone());
    }
    if session.write_response_header(Box::new(resp)).await.is_ok() {
        let _ = session.write_response_body(body, true).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn json_body_shape_and_escaping() {
        let b = json_body(ErrorType::UpstreamReset, "broke \"here\"\n", 502);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["error"]["type"], "upstream_reset");
        assert_eq!(v["error"]["message"], "broke \"here\"");
        assert!(b.starts_with(br#"{"error":{"type":"upstream_reset","message":"#));
        assert!(b.ends_with(br#","status":502}}"#));
        assert_eq!(v["error"]["status"], 502);
        assert!(!b.contains(&b'\n'));
    }

    #[test]
    fn error_event_is_one_data_line() {
        let mut out = BytesMut::new();
        error_event(ErrorType::Shutdown, "bye\r\nevent: x", 503, &mut out);
        let s = std::str::from_utf8(&out).unwrap();
        assert!(s.starts_with("event: error\ndata: {"));
        assert_eq!(s.matches('\n').count(), 3);
        assert!(s.ends_with("}\n\n"));
    }
}
