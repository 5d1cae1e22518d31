//! Requests shorter than the 24-byte HTTP/2 preface on a plaintext listener (issue 17): ssegate tells h2c from
//! HTTP/1 at the first byte that differs from the preface (`crates/gateway/src/preface.rs`), so a whole
//! request of 18 bytes is answered at once, while h2c (the preface sent a byte at a time) still works.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ssegate_tests::client::H2Conn;
use ssegate_tests::{bounded, show, MockUpstream, Reply, Step};
use ssegate_tests::{GatewaySpec, RouteSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn ndjson() -> Reply {
    Reply::stream("application/x-ndjson", vec![Step::send("{\"a\":1}\n"), Step::End])
}

#[tokio::test]
async fn a_request_shorter_than_the_h2_preface_is_answered() {
    bounded(async {
        let mock = MockUpstream::serve(ndjson()).await;
        // request_header_timeout far beyond the test's bound: an answer cannot come from a timeout.
        let gw = GatewaySpec::new()
            .server(|s| s.request_header_timeout("60s"))
            .route(RouteSpec::new("r").prefix("/").upstream(&mock).heartbeat("5s"))
            .start()
            .await;
        for raw in
            [&b"GET / HTTP/1.0\r\n\r\n"[..], b"GET /x HTTP/1.0\r\n\r\n", b"GET / HTTP/1.1\r\nHost:a\r\n\r\n"]
        {
            let mut s = TcpStream::connect(gw.addr()).await.unwrap();
            s.write_all(raw).await.unwrap();
            let mut buf = Vec::new();
            // The client keeps its side open: only the gateway's answer (and close, for HTTP/1.0) ends this.
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                let mut chunk = [0u8; 4096];
                while !buf.windows(7).any(|w| w == b"data: {") {
                    let n = s.read(&mut chunk).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
            })
            .await;
            assert!(read.is_ok(), "{} ({} bytes): no answer: {}", show(raw), raw.len(), show(&buf));
            assert!(buf.starts_with(b"HTTP/1.1 200"), "{}: {}", show(raw), show(&buf));
            assert!(buf.windows(13).any(|w| w == b"data: {\"a\":1}"), "{}: {}", show(raw), show(&buf));
        }
        assert_eq!(mock.requests().len(), 3);
    })
    .await;
}

#[tokio::test]
async fn h2c_still_works_with_the_preface_trickled() {
    bounded(async {
        let mock = MockUpstream::serve(ndjson()).await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).heartbeat("5s")).start().await;
        // A client library sends the preface in one write; here it comes a byte at a time first.
        let mut s = TcpStream::connect(gw.addr()).await.unwrap();
        for b in b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" {
            s.write_all(&[*b]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        s.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap(); // SETTINGS
        let mut head = [0u8; 9];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut head)).await.unwrap().unwrap();
        assert_eq!(head[3], 4, "the server's first frame is SETTINGS: {}", show(&head));
        // And an ordinary h2c client is served.
        let h2 = H2Conn::h2c(gw.addr()).await;
        let mut resp = h2.request("GET", "/r", b"").await;
        assert_eq!(resp.status, 200);
        let body = resp.body_to_end().await;
        assert!(body.windows(13).any(|w| w == b"data: {\"a\":1}"), "{}", show(&body));
    })
    .await;
}
