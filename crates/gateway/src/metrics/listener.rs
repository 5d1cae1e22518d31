//! Listener metrics:
//! - `ssegate_accept_errors_total{listener}`, the `accept()` calls that failed (typically `EMFILE`: the
//!   process is out of file descriptors). `listener` is `traffic` (pingora's accept loop, seen through its
//!   log record: see [`crate::accept_watch`]) or `admin` (ssegate's own loop).
//! - `ssegate_h2_connection_errors_total{listener, reason}`, the HTTP/2 connections the gateway closed for a
//!   connection error of the client's making (see [`crate::h2_watch`]). `listener` is `h2c` (plaintext) or
//!   `tls`; `reason` is the GOAWAY's error code ([`H2Reason`]).
//!
//! Every series is created at 0.

use std::sync::OnceLock;

use prometheus::IntCounter;

use super::counter_vec;

/// Which accept loop failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Traffic,
    Admin,
}

impl Listener {
    pub const ALL: [Listener; 2] = [Listener::Traffic, Listener::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Listener::Traffic => "traffic",
            Listener::Admin => "admin",
        }
    }
}

fn family() -> &'static [IntCounter; 2] {
    static FAMILY: OnceLock<[IntCounter; 2]> = OnceLock::new();
    FAMILY.get_or_init(|| {
        let v = counter_vec(
            "ssegate_accept_errors_total",
            "Failed accept() calls on a listener (typically EMFILE: out of file descriptors), by listener.",
            &["listener"],
        );
        Listener::ALL.map(|l| v.with_label_values(&[l.as_str()]))
    })
}

/// Creates the series at 0.
pub(super) fn init() {
    let _ = family();
    let _ = h2_family();
}

/// One failed `accept()`.
pub fn accept_failed(listener: Listener) {
    family()[listener as usize].inc();
}

/// The listener an HTTP/2 connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H2Listener {
    /// Plaintext, HTTP/2 with prior knowledge.
    H2c,
    /// TLS, h2 chosen by ALPN.
    Tls,
}

impl H2Listener {
    pub const ALL: [H2Listener; 2] = [H2Listener::H2c, H2Listener::Tls];

    pub fn as_str(self) -> &'static str {
        match self {
            H2Listener::H2c => "h2c",
            H2Listener::Tls => "tls",
        }
    }
}

/// Why an HTTP/2 connection was closed: the error code of the GOAWAY the `h2` crate sent (RFC 9113 §7, every
/// code but `NO_ERROR`, in code order), pingora's malformed-request budget, or an unknown code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H2Reason {
    ProtocolError,
    InternalError,
    FlowControlError,
    SettingsTimeout,
    StreamClosed,
    FrameSizeError,
    RefusedStream,
    Cancel,
    CompressionError,
    ConnectError,
    /// Rapid reset (too many streams reset before they were served), CONTINUATION flood, a header
    /// list far over the limit, too many DATA frames or locally reset streams.
    EnhanceYourCalm,
    InadequateSecurity,
    Http11Required,
    /// pingora closed the connection after 32 requests it refused as malformed (no GOAWAY code).
    MalformedRequests,
    /// A code outside RFC 9113's.
    Other,
}

impl H2Reason {
    pub const ALL: [H2Reason; 15] = [
        H2Reason::ProtocolError,
        H2Reason::InternalError,
        H2Reason::FlowControlError,
        H2Reason::SettingsTimeout,
        H2Reason::StreamClosed,
        H2Reason::FrameSizeError,
        H2Reason::RefusedStream,
        H2Reason::Cancel,
        H2Reason::CompressionError,
        H2Reason::ConnectError,
        H2Reason::EnhanceYourCalm,
        H2Reason::InadequateSecurity,
        H2Reason::Http11Required,
        H2Reason::MalformedRequests,
        H2Reason::Other,
    ];

    /// The reason of an HTTP/2 error code (`0x1` .. `0xd`; anything else, `NO_ERROR` included, is `Other`).
    pub fn from_code(code: u32) -> H2Reason {
        match code {
            1..=13 => H2Reason::ALL[code as usize - 1],
            _ => H2Reason::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            H2Reason::ProtocolError => "protocol_error",
            H2Reason::InternalError => "internal_error",
            H2Reason::FlowControlError => "flow_control_error",
            H2Reason::SettingsTimeout => "settings_timeout",
            H2Reason::StreamClosed => "stream_closed",
            H2Reason::FrameSizeError => "frame_size_error",
            H2Reason::RefusedStream => "refused_stream",
            H2Reason::Cancel => "cancel",
            H2Reason::CompressionError => "compression_error",
            H2Reason::ConnectError => "connect_error",
            H2Reason::EnhanceYourCalm => "enhance_your_calm",
            H2Reason::InadequateSecurity => "inadequate_security",
            H2Reason::Http11Required => "http_1_1_required",
            H2Reason::MalformedRequests => "malformed_requests",
            H2Reason::Other => "other",
        }
    }
}

type H2Family = [[IntCounter; 15]; 2];

fn h2_family() -> &'static H2Family {
    static FAMILY: OnceLock<H2Family> = OnceLock::new();
    FAMILY.get_or_init(|| {
        let v = counter_vec(
            "ssegate_h2_connection_errors_total",
            "HTTP/2 connections closed for a connection error of the client's making (GOAWAY with an error \
             code, e.g. enhance_your_calm for a rapid-reset or CONTINUATION flood), by listener and reason.",
            &["listener", "reason"],
        );
        H2Listener::ALL.map(|l| H2Reason::ALL.map(|r| v.with_label_values(&[l.as_str(), r.as_str()])))
    })
}

/// One HTTP/2 connection closed for `reason`.
pub fn h2_connection_error(listener: H2Listener, reason: H2Reason) {
    h2_family()[listener as usize][reason as usize].inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_failures_are_counted_per_listener() {
        let before = family().clone().map(|c| c.get());
        accept_failed(Listener::Admin);
        accept_failed(Listener::Traffic);
        accept_failed(Listener::Traffic);
        let after = family().clone().map(|c| c.get());
        assert_eq!((after[0] - before[0], after[1] - before[1]), (2, 1));
    }

    #[test]
    fn h2_reasons_follow_the_error_codes_and_are_counted_per_listener() {
        assert_eq!(H2Reason::from_code(0x1), H2Reason::ProtocolError);
        assert_eq!(H2Reason::from_code(0x6), H2Reason::FrameSizeError);
        assert_eq!(H2Reason::from_code(0xb), H2Reason::EnhanceYourCalm);
        assert_eq!(H2Reason::from_code(0xd), H2Reason::Http11Required);
        assert_eq!((H2Reason::from_code(0), H2Reason::from_code(0xe)), (H2Reason::Other, H2Reason::Other));
        let names: std::collections::HashSet<_> = H2Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), H2Reason::ALL.len());
        for (i, r) in H2Reason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?}");
        }
        let get = |l: H2Listener, r: H2Reason| h2_family()[l as usize][r as usize].get();
        let before = (
            get(H2Listener::Tls, H2Reason::EnhanceYourCalm),
            get(H2Listener::H2c, H2Reason::EnhanceYourCalm),
        );
        h2_connection_error(H2Listener::Tls, H2Reason::EnhanceYourCalm);
        let after = (
            get(H2Listener::Tls, H2Reason::EnhanceYourCalm),
            get(H2Listener::H2c, H2Reason::EnhanceYourCalm),
        );
        assert_eq!((after.0 - before.0, after.1 - before.1), (1, 0));
    }
}
