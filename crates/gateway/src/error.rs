//! Every failure ssegate reports, classified in one place: the HTTP status before the response is
//! committed (and the `status` of the JSON body after it), the stream's `outcome`, who caused it, and which
//! counter it moves. Every match here is exhaustive: a new [`ErrorType`] does not compile until each of
//! these questions has an answer.
//!
//! | type | status | outcome | source | counted in |
//! |---|---|---|---|---|
//! | `not_found`, `bad_request` (target, ambiguous or malformed head: `http_rules.rs`), `method_not_allowed`, `header_too_large` | 404 400 405 431 | — (no route) | client | `ssegate_downstream_rejected_total{reason}` |
//! | `unauthorized`, `forbidden`, `payload_too_large`, `request_timeout`, `bad_request` (body), `overloaded` | 401 403 413 408 400 503 | `rejected` | client (overloaded: gateway) | `ssegate_rejected_total{reason}` |
//! | `upstream_connect`, `upstream_reset`, `upstream_status`, `decode` | 502 | `upstream_error` | upstream | `ssegate_upstream_errors_total{kind}` |
//! | `upstream_timeout`, `upstream_idle`, `max_duration` | 504 | `timeout` | upstream (max_duration: gateway) | `ssegate_upstream_errors_total{kind}` |
//! | `shutdown` | 503 | `shutdown` | gateway | `ssegate_upstream_errors_total{kind}` |
//! | `upstream_truncated` | 502 | `truncated` | upstream | `ssegate_upstream_errors_total{kind}` |
//! | `resume_unknown`, `resume_expired` | 404 410 | `rejected` | client | `ssegate_resume_requests_total{result}` |
//! | `resume_gap` | 410 | `rejected` | client | `ssegate_resume_requests_total{result="gap"}` |
//! | `upstream_lost` | 502 | `upstream_error` | upstream | `ssegate_upstream_errors_total{kind}` |
//!
//! The `resume_*` types answer resume requests ([`crate::resume`]): a reader, not a stream, so they are
//! counted by result in `ssegate_resume_requests_total` (a wrong or missing key there is `forbidden`,
//! answered `401`/`403` as `unauthorized`/`forbidden`). `resume_gap` is always an `event: error` (the
//! answer is committed first), like `upstream_lost` (the producer of the stream a reader follows is gone).
//!
//! `ssegate_upstream_errors_total` counts every failure *reported to a client* once its request was
//! admitted (README: "Failures reported to a client … by error type"); `shutdown` is one of them. A client
//! that stops reading is not a reported failure (nobody is left to tell): it ends the stream with outcome
//! `client_closed` and is counted in `ssegate_slow_clients_total`. A `401` is counted once, in
//! `ssegate_rejected_total{reason="unauthorized"}`. A client that leaves a route with
//! `on_disconnect = "drain"` ends with outcome `client_closed` once the drain is over, however the drain ended
//! (the upstream's end, `max_duration`, `idle_timeout`, shutdown, a broken upstream): nobody is left to be told,
//! so none of those is counted as a failure.

/// The `type` of an error response or error event (closed set; also the `kind` metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    /// Every backend of the route's pool is down (ejected or failing its health checks), so none was
    /// tried (503).
    UpstreamUnavailable,
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
    /// The upstream ended without its provider's end marker (`provider` + `expect_end`).
    UpstreamTruncated,
    /// A resume named a stream this gateway does not know (never existed, removed, or another route's) (404).
    ResumeUnknown,
    /// A resume named a stream past its `ttl` (410).
    ResumeExpired,
    /// A resume needs events no longer retained (the reader fell behind the window) (`event: error`).
    ResumeGap,
    /// The stream a reader follows lost its producer: its owner stopped without an ending (the owner's
    /// process died, or `detach_timeout` passed with nobody reading) (`event: error`).
    UpstreamLost,
}

/// How a stream ended: the `outcome` label (closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    ClientClosed,
    UpstreamError,
    Timeout,
    Shutdown,
    Rejected,
    /// The upstream ended cleanly but without its provider's end marker.
    Truncated,
}

/// Who caused a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The request was unusable or not allowed.
    Client,
    /// The upstream could not be reached, was too slow, or sent something unusable.
    Upstream,
    /// ssegate's own limits or lifecycle (`max_streams`, `max_duration`, shutdown).
    Gateway,
}

/// Why a route refused a request before anything was sent upstream: the `reason` of
/// `ssegate_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    Unauthorized,
    MaxStreams,
    PayloadTooLarge,
    RequestTimeout,
    Cors,
    BadRequest,
}

impl RejectReason {
    pub const ALL: [RejectReason; 6] = [
        RejectReason::Unauthorized,
        RejectReason::MaxStreams,
        RejectReason::PayloadTooLarge,
        RejectReason::RequestTimeout,
        RejectReason::Cors,
        RejectReason::BadRequest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Unauthorized => "unauthorized",
            RejectReason::MaxStreams => "max_streams",
            RejectReason::PayloadTooLarge => "payload_too_large",
            RejectReason::RequestTimeout => "request_timeout",
            RejectReason::Cors => "cors",
            RejectReason::BadRequest => "bad_request",
        }
    }

    /// Its position in [`RejectReason::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl ErrorType {
    /// Every type, in documentation (and declaration: `ty as usize` is its index here) order.
    pub const ALL: [ErrorType; 23] = [
        ErrorType::NotFound,
        ErrorType::PayloadTooLarge,
        ErrorType::BadRequest,
        ErrorType::Unauthorized,
        ErrorType::Forbidden,
        ErrorType::MethodNotAllowed,
        ErrorType::RequestTimeout,
        ErrorType::HeaderTooLarge,
        ErrorType::Overloaded,
        ErrorType::UpstreamConnect,
        ErrorType::UpstreamUnavailable,
        ErrorType::UpstreamTimeout,
        ErrorType::UpstreamIdle,
        ErrorType::UpstreamReset,
        ErrorType::UpstreamStatus,
        ErrorType::Decode,
        ErrorType::MaxDuration,
        ErrorType::Shutdown,
        ErrorType::UpstreamTruncated,
        ErrorType::ResumeUnknown,
        ErrorType::ResumeExpired,
        ErrorType::ResumeGap,
        ErrorType::UpstreamLost,
    ];

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
            ErrorType::UpstreamUnavailable => "upstream_unavailable",
            ErrorType::UpstreamTimeout => "upstream_timeout",
            ErrorType::UpstreamIdle => "upstream_idle",
            ErrorType::UpstreamReset => "upstream_reset",
            ErrorType::UpstreamStatus => "upstream_status",
            ErrorType::Decode => "decode",
            ErrorType::MaxDuration => "max_duration",
            ErrorType::Shutdown => "shutdown",
            ErrorType::UpstreamTruncated => "upstream_truncated",
            ErrorType::ResumeUnknown => "resume_unknown",
            ErrorType::ResumeExpired => "resume_expired",
            ErrorType::ResumeGap => "resume_gap",
            ErrorType::UpstreamLost => "upstream_lost",
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
            ErrorType::ResumeUnknown => 404,
            ErrorType::ResumeExpired | ErrorType::ResumeGap => 410,
            ErrorType::Overloaded | ErrorType::Shutdown | ErrorType::UpstreamUnavailable => 503,
            ErrorType::UpstreamConnect
            | ErrorType::UpstreamReset
            | ErrorType::UpstreamStatus
            | ErrorType::UpstreamTruncated
            | ErrorType::UpstreamLost
            | ErrorType::Decode => 502,
            ErrorType::UpstreamTimeout | ErrorType::UpstreamIdle | ErrorType::MaxDuration => 504,
        }
    }

    /// The outcome of a stream that ended with this error.
    pub fn outcome(self) -> Outcome {
        match self {
            ErrorType::UpstreamTimeout | ErrorType::UpstreamIdle | ErrorType::MaxDuration => Outcome::Timeout,
            ErrorType::Shutdown => Outcome::Shutdown,
            ErrorType::UpstreamTruncated => Outcome::Truncated,
            ErrorType::NotFound
            | ErrorType::PayloadTooLarge
            | ErrorType::BadRequest
            | ErrorType::Unauthorized
            | ErrorType::Forbidden
            | ErrorType::MethodNotAllowed
            | ErrorType::RequestTimeout
            | ErrorType::HeaderTooLarge
            | ErrorType::ResumeUnknown
            | ErrorType::ResumeExpired
            | ErrorType::ResumeGap
            | ErrorType::Overloaded => Outcome::Rejected,
            ErrorType::UpstreamConnect
            | ErrorType::UpstreamUnavailable
            | ErrorType::UpstreamReset
            | ErrorType::UpstreamStatus
            | ErrorType::UpstreamLost
            | ErrorType::Decode => Outcome::UpstreamError,
        }
    }

    /// Who caused it.
    pub fn source(self) -> Source {
        match self {
            ErrorType::NotFound
            | ErrorType::PayloadTooLarge
            | ErrorType::BadRequest
            | ErrorType::Unauthorized
            | ErrorType::Forbidden
            | ErrorType::MethodNotAllowed
            | ErrorType::RequestTimeout
            | ErrorType::ResumeUnknown
            | ErrorType::ResumeExpired
            | ErrorType::ResumeGap
            | ErrorType::HeaderTooLarge => Source::Client,
            ErrorType::UpstreamLost
            | ErrorType::UpstreamConnect
            | ErrorType::UpstreamUnavailable
            | ErrorType::UpstreamTimeout
            | ErrorType::UpstreamIdle
            | ErrorType::UpstreamReset
            | ErrorType::UpstreamStatus
            | ErrorType::UpstreamTruncated
            | ErrorType::Decode => Source::Upstream,
            ErrorType::Overloaded | ErrorType::MaxDuration | ErrorType::Shutdown => Source::Gateway,
        }
    }

    /// The `reason` under which a route counts this refusal in `ssegate_rejected_total`, for the types a
    /// route refuses with before contacting the upstream; `None` for stream errors (counted by
    /// [`ErrorType::is_stream_error`]) and for refusals before a route is chosen (`not_found`,
    /// `method_not_allowed`, `header_too_large`: `ssegate_downstream_rejected_total`).
    pub fn reject_reason(self) -> Option<RejectReason> {
        match self {
            ErrorType::Unauthorized => Some(RejectReason::Unauthorized),
            ErrorType::Overloaded => Some(RejectReason::MaxStreams),
            ErrorType::PayloadTooLarge => Some(RejectReason::PayloadTooLarge),
            ErrorType::RequestTimeout => Some(RejectReason::RequestTimeout),
            ErrorType::Forbidden => Some(RejectReason::Cors),
            ErrorType::BadRequest => Some(RejectReason::BadRequest),
            ErrorType::NotFound | ErrorType::MethodNotAllowed | ErrorType::HeaderTooLarge => None,
            // Counted by result in `ssegate_resume_requests_total`.
            ErrorType::ResumeUnknown | ErrorType::ResumeExpired | ErrorType::ResumeGap => None,
            ErrorType::UpstreamLost => None,
            ErrorType::UpstreamConnect
            | ErrorType::UpstreamUnavailable
            | ErrorType::UpstreamTimeout
            | ErrorType::UpstreamIdle
            | ErrorType::UpstreamReset
            | ErrorType::UpstreamStatus
            | ErrorType::Decode
            | ErrorType::MaxDuration
            | ErrorType::Shutdown
            | ErrorType::UpstreamTruncated => None,
        }
    }

    /// Whether it is counted in `ssegate_upstream_errors_total{kind}`: a failure of an admitted stream,
    /// reported to the client.
    pub fn is_stream_error(self) -> bool {
        match self.outcome() {
            Outcome::UpstreamError | Outcome::Timeout | Outcome::Shutdown | Outcome::Truncated => true,
            Outcome::Rejected | Outcome::Completed | Outcome::ClientClosed => false,
        }
    }
}

impl Outcome {
    /// Every outcome, in documentation order.
    pub const ALL: [Outcome; 7] = [
        Outcome::Completed,
        Outcome::ClientClosed,
        Outcome::UpstreamError,
        Outcome::Timeout,
        Outcome::Shutdown,
        Outcome::Rejected,
        Outcome::Truncated,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::ClientClosed => "client_closed",
            Outcome::UpstreamError => "upstream_error",
            Outcome::Timeout => "timeout",
            Outcome::Shutdown => "shutdown",
            Outcome::Rejected => "rejected",
            Outcome::Truncated => "truncated",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_is_classified_consistently() {
        for ty in ErrorType::ALL {
            let (status, outcome, source) = (ty.status(), ty.outcome(), ty.source());
            // A refusal is never a stream error and vice versa; each is counted in exactly one family
            // (refusals before a route: the edge's family, reason chosen there).
            assert!(!(ty.is_stream_error() && ty.reject_reason().is_some()), "{ty:?} counted twice");
            match outcome {
                Outcome::Rejected => assert!(!ty.is_stream_error(), "{ty:?}"),
                Outcome::UpstreamError | Outcome::Timeout | Outcome::Shutdown | Outcome::Truncated => {
                    assert!(ty.is_stream_error(), "{ty:?}");
                    assert!(status >= 500, "{ty:?}");
                }
                Outcome::Completed | Outcome::ClientClosed => panic!("{ty:?} cannot end a stream cleanly"),
            }
            if source == Source::Client {
                assert!((400..500).contains(&status), "{ty:?}: client faults are 4xx");
            }
        }
    }

    #[test]
    fn all_is_in_declaration_order() {
        for (i, ty) in ErrorType::ALL.iter().enumerate() {
            assert_eq!(*ty as usize, i, "{ty:?}");
        }
    }

    #[test]
    fn names_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for ty in ErrorType::ALL {
            let n = ty.as_str();
            assert!(n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{n}");
            assert!(seen.insert(n), "{n} twice");
        }
        assert_eq!(ErrorType::ALL.len(), seen.len());
    }

    #[test]
    fn documented_statuses_and_outcomes() {
        use ErrorType as E;
        let table = [
            (E::NotFound, 404, Outcome::Rejected),
            (E::Unauthorized, 401, Outcome::Rejected),
            (E::Overloaded, 503, Outcome::Rejected),
            (E::UpstreamConnect, 502, Outcome::UpstreamError),
            (E::UpstreamStatus, 502, Outcome::UpstreamError),
            (E::Decode, 502, Outcome::UpstreamError),
            (E::UpstreamTimeout, 504, Outcome::Timeout),
            (E::UpstreamIdle, 504, Outcome::Timeout),
            (E::MaxDuration, 504, Outcome::Timeout),
            (E::Shutdown, 503, Outcome::Shutdown),
            (E::UpstreamTruncated, 502, Outcome::Truncated),
        ];
        for (ty, status, outcome) in table {
            assert_eq!((ty.status(), ty.outcome()), (status, outcome), "{ty:?}");
        }
        assert_eq!(E::Unauthorized.reject_reason(), Some(RejectReason::Unauthorized));
        assert_eq!(E::Forbidden.reject_reason(), Some(RejectReason::Cors));
        assert_eq!(E::NotFound.reject_reason(), None);
    }
}
