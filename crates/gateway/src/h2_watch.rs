//! Counts the HTTP/2 connections the gateway closes for a connection error of the client's making.
//!
//! HTTP/2 is served by pingora's accept loop over the `h2` crate. `h2` defends itself: a rapid-reset flood
//! (streams reset before the server accepted them, CVE-2023-44487), a CONTINUATION flood (a header block that
//! never ends, CVE-2024-27316 family), a header list far over the limit, too many DATA frames or locally reset
//! streams end the connection with a GOAWAY `ENHANCE_YOUR_CALM`; a frame that breaks the protocol with a GOAWAY
//! `PROTOCOL_ERROR`, `FRAME_SIZE_ERROR`, `COMPRESSION_ERROR`, …. The connection's `accept()` then returns that
//! `h2::Error` (a GOAWAY sent by the library) and pingora's loop ends. pingora itself also ends a connection
//! whose client sent 32 requests it refused as malformed (no GOAWAY code: an `H2Error` with no cause).
//!
//! Unpatched pingora 0.9.1 only logs these at `debug` ("H2 error when accepting new stream"). ssegate's
//! pingora-core patch (`docs/pingora-h2-errors.md`) hands the error to [`HttpServerApp::h2_connection_error`],
//! which the app answers with [`count`]: one `ssegate_h2_connection_errors_total{listener, reason}`.
//!
//! Not counted: a client that vanishes (an I/O error), a GOAWAY with an error code *received* from the client
//! (its own error, not abuse), a connection closed cleanly or idle. When the socket fails while `h2` is still
//! flushing its GOAWAY (the flooding client already reset the connection), `h2` reports the I/O error instead and
//! that close is not counted either.
//!
//! [`HttpServerApp::h2_connection_error`]: pingora::apps::HttpServerApp::h2_connection_error

use pingora::{Error, ErrorType};

use crate::metrics::listener::{h2_connection_error, H2Listener, H2Reason};

/// Why `error` ended an HTTP/2 connection, when it was the client's fault; `None` for everything else.
pub fn classify(error: &Error) -> Option<H2Reason> {
    match error.root_cause().downcast_ref::<h2::Error>() {
        // A GOAWAY the `h2` library sent: the client broke the protocol or flooded.
        Some(e) if e.is_go_away() && e.is_library() => e.reason().map(|r| H2Reason::from_code(r.into())),
        Some(_) => None,
        // pingora's own teardown after too many malformed requests (`account_malformed_stream`).
        None if *error.etype() == ErrorType::H2Error && error.cause.is_none() => {
            Some(H2Reason::MalformedRequests)
        }
        None => None,
    }
}

/// Counts `error` when it was the client's fault (see [`classify`]); logs it at `debug` with the reason.
pub fn count(listener: H2Listener, error: &Error) {
    if let Some(reason) = classify(error) {
        h2_connection_error(listener, reason);
        tracing::debug!(listener = listener.as_str(), reason = reason.as_str(), "HTTP/2 connection closed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = (payload.len() as u32).to_be_bytes();
        let mut f = vec![len[1], len[2], len[3], kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// `GET /` on `a` in HPACK: `:method GET`, `:scheme http`, `:path /` indexed, `:authority a` literal.
    const GET: &[u8] = &[0x82, 0x86, 0x84, 0x41, 0x01, b'a'];
    const HEADERS: u8 = 0x1;
    const RST_STREAM: u8 = 0x3;
    const SETTINGS: u8 = 0x4;
    const GOAWAY: u8 = 0x7;
    const CONTINUATION: u8 = 0x9;

    /// Runs an `h2` server (as pingora configures it) against a client that writes `bytes` (then closes when
    /// `close`), accepting and dropping every stream; returns the error that ended the connection, wrapped as
    /// pingora's accept loop wraps it (`None` when it ended cleanly).
    async fn ended_with(bytes: Vec<u8>, close: bool) -> Option<Box<Error>> {
        let (client, server) = tokio::io::duplex(1 << 20);
        let (mut rx, mut tx) = tokio::io::split(client);
        let drain = tokio::spawn(async move {
            let mut sink = Vec::new();
            let _ = rx.read_to_end(&mut sink).await;
        });
        let writer = tokio::spawn(async move {
            tx.write_all(&bytes).await.unwrap();
            if close {
                tx.shutdown().await.unwrap();
            } else {
                std::future::pending::<()>().await;
            }
        });
        let builder = pingora::protocols::http::v2::server::default_h2_options();
        let result = async {
            let mut conn = builder.handshake::<_, bytes::Bytes>(server).await?;
            while let Some(accepted) = conn.accept().await {
                drop(accepted?);
            }
            Ok::<(), h2::Error>(())
        };
        let result = tokio::time::timeout(std::time::Duration::from_secs(10), result).await.unwrap();
        writer.abort();
        drop(drain);
        result.err().map(|e| Error::because(ErrorType::H2Error, "while accepting new downstream requests", e))
    }

    fn start() -> Vec<u8> {
        let mut b = PREFACE.to_vec();
        b.extend(frame(SETTINGS, 0, 0, &[]));
        b
    }

    #[tokio::test]
    async fn a_rapid_reset_flood_is_enhance_your_calm() {
        let mut b = start();
        for i in 0..200u32 {
            b.extend(frame(HEADERS, 0x5, 2 * i + 1, GET));
            b.extend(frame(RST_STREAM, 0, 2 * i + 1, &8u32.to_be_bytes()));
        }
        let e = ended_with(b, false).await.expect("the flood ended the connection");
        assert_eq!(classify(&e), Some(H2Reason::EnhanceYourCalm), "{e}");
    }

    #[tokio::test]
    async fn a_continuation_flood_is_enhance_your_calm() {
        let mut b = start();
        b.extend(frame(HEADERS, 0x1, 1, GET)); // END_STREAM, no END_HEADERS
                                               // A literal header (not indexed) again and again: a header block that never ends.
        let mut block = Vec::new();
        for _ in 0..16 {
            block.extend_from_slice(&[0x00, 0x01, b'x', 0x7f, 0xe9, 0x06]); // x: 1000 × 'a'
            block.extend(std::iter::repeat_n(b'a', 1000));
        }
        for _ in 0..200 {
            b.extend(frame(CONTINUATION, 0, 1, &block));
        }
        let e = ended_with(b, false).await.expect("the flood ended the connection");
        // pingora's 64 KiB header list in 16 KiB frames: the sixth CONTINUATION is one too many.
        assert_eq!(classify(&e), Some(H2Reason::EnhanceYourCalm), "{e}");
    }

    #[tokio::test]
    async fn a_protocol_violation_is_counted_by_its_code() {
        let mut b = start();
        b.extend(frame(CONTINUATION, 0x4, 1, GET)); // CONTINUATION without a HEADERS before it
        let e = ended_with(b, false).await.expect("the violation ended the connection");
        assert_eq!(classify(&e), Some(H2Reason::ProtocolError), "{e}");
    }

    #[tokio::test]
    async fn a_client_that_vanishes_or_reports_its_own_error_is_not_counted() {
        let mut b = start();
        b.extend(&frame(HEADERS, 0x5, 1, GET)[..5]); // half a frame header, then EOF
        let e = ended_with(b, true).await.expect("h2 reports the cut frame");
        assert_eq!(classify(&e), None, "{e}");
        let mut b = start();
        let mut goaway = 0u32.to_be_bytes().to_vec();
        goaway.extend_from_slice(&1u32.to_be_bytes()); // PROTOCOL_ERROR, the client's
        b.extend(frame(GOAWAY, 0, 0, &goaway));
        let e = ended_with(b, true).await.expect("h2 reports the client's GOAWAY");
        assert_eq!(classify(&e), None, "{e}");
    }

    #[test]
    fn pingoras_malformed_request_teardown_is_counted_other_errors_are_not() {
        let teardown =
            Error::explain(ErrorType::H2Error, "too many malformed downstream requests on connection");
        assert_eq!(classify(&teardown), Some(H2Reason::MalformedRequests));
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(classify(&Error::because(ErrorType::H2Error, "while accepting", io)), None);
        assert_eq!(classify(&Error::explain(ErrorType::HandshakeError, "while h2 handshaking")), None);
    }
}
