//! Self-tests of the harness: the mock upstream and the raw client against each other, no gateway.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use ssegate_tests::client::{Conn, End};
use ssegate_tests::mock::{Framing, Gate};
use ssegate_tests::{assert_bytes, bounded, get, request, MockUpstream, Reply, Step};

#[tokio::test]
async fn mock_chunked_script_reaches_raw_client_exactly() {
    bounded(async {
        let mock = MockUpstream::serve(Reply::stream(
            "application/x-ndjson",
            vec![Step::send("{\"a\":1}\n{\"b\""), Step::Sleep(50), Step::send(":2}\n"), Step::End],
        ))
        .await;
        let mut resp = get(mock.addr(), "/x?y=1").await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-type"), Some("application/x-ndjson"));
        assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
        assert_bytes(&resp.read_until(b"\n").await, b"{\"a\":1}\n");
        assert_bytes(&resp.body_to_end().await, b"{\"b\":2}\n");
        assert_eq!(resp.end(), Some(&End::Clean));
        assert!(resp.arrivals().len() >= 2, "two writes 50 ms apart arrive separately");
        let req = &mock.requests()[0];
        assert_eq!((req.method.as_str(), req.target.as_str()), ("GET", "/x?y=1"));
        assert_eq!(req.header("accept"), Some("text/event-stream"));

        // Keep-alive: a second request on the same connection.
        let conn = resp.into_conn().expect("connection reusable after a clean end");
        let mut resp2 = conn.send("POST", "/p", &[("Content-Type", "application/json")], b"{\"q\": 1}").await;
        assert_bytes(&resp2.body_to_end().await, b"{\"a\":1}\n{\"b\":2}\n");
        assert_eq!(mock.connections(), 1);
        assert_eq!(mock.requests()[1].body, b"{\"q\": 1}");
    })
    .await;
}

#[tokio::test]
async fn mock_sees_client_close_and_gates_work() {
    bounded(async {
        let gate = Gate::new();
        let mock = MockUpstream::serve(Reply::stream(
            "text/event-stream",
            vec![Step::send("data: 1\n\n"), Step::Wait(gate.clone()), Step::send("data: 2\n\n")],
        ))
        .await;
        let mut resp = get(mock.addr(), "/").await;
        assert_bytes(&resp.next_event().await.unwrap(), b"data: 1\n\n");
        let quiet = resp.read_for(Duration::from_millis(100)).await;
        assert!(quiet.is_empty(), "nothing before the gate opens");
        gate.open();
        assert_bytes(&resp.next_event().await.unwrap(), b"data: 2\n\n");
        assert_eq!(mock.peer_closed(), 0);
        let dropped_at = Instant::now();
        drop(resp);
        assert!(mock.wait_peer_closed(1, Duration::from_secs(2)).await, "mock saw the close");
        assert!(mock.peer_closed_at()[0] - dropped_at < Duration::from_secs(1));
    })
    .await;
}

#[tokio::test]
async fn mock_reset_and_close_truncate_the_body() {
    bounded(async {
        for (step, rst) in [(Step::Reset, true), (Step::Close, false)] {
            let mock = MockUpstream::serve(Reply::stream("text/plain", vec![Step::send("abc"), step])).await;
            let mut resp = get(mock.addr(), "/").await;
            let body = resp.body_to_end().await;
            assert_bytes(&body, b"abc");
            match resp.end() {
                Some(End::Error(_)) => {}
                Some(End::Eof) => assert!(!rst, "an RST should surface as a read error"),
                other => panic!("unexpected end {other:?}"),
            }
        }
    })
    .await;
}

#[tokio::test]
async fn mock_content_length_and_head_delay() {
    bounded(async {
        let mock = MockUpstream::serve(
            Reply::full(429, "application/json", "{\"error\":\"slow down\"}")
                .with_header("Retry-After", "3")
                .with_head_delay(Duration::from_millis(100)),
        )
        .await;
        let t0 = Instant::now();
        let mut resp = request(mock.addr(), "GET", "/", &[], b"").await;
        assert!(t0.elapsed() >= Duration::from_millis(100));
        assert_eq!(resp.status, 429);
        assert_eq!(resp.header("retry-after"), Some("3"));
        assert_eq!(resp.header("content-length"), Some("21"));
        assert_bytes(&resp.body_to_end().await, b"{\"error\":\"slow down\"}");
        assert_eq!(resp.end(), Some(&End::Clean));

        let mock = MockUpstream::serve(
            Reply::stream("text/plain", vec![Step::send("x"), Step::send("y"), Step::End])
                .with_framing(Framing::CloseDelimited),
        )
        .await;
        let mut resp = Conn::connect(mock.addr()).await.send("GET", "/", &[], b"").await;
        assert_bytes(&resp.body_to_end().await, b"xy");
        assert_eq!(resp.end(), Some(&End::Eof));
    })
    .await;
}

#[tokio::test]
async fn tls_mock_serves_the_raw_client() {
    bounded(async {
        let cert = ssegate_tests::tls::TestCert::generate();
        let mock = MockUpstream::serve_tls(
            &cert,
            Reply::stream(
                "text/event-stream",
                vec![Step::send("data: 1\n\n"), Step::Sleep(20), Step::send("data: 2\n\n"), Step::End],
            ),
        )
        .await;
        assert!(mock.url().starts_with("https://127.0.0.1:"));
        let conn = Conn::tls(mock.addr(), &cert.cert_der).await;
        let mut resp = conn.send("GET", "/t", &[], b"").await;
        assert_bytes(&resp.next_block().await.unwrap(), b"data: 1\n\n");
        assert_bytes(&resp.body_to_end().await, b"data: 2\n\n");
        assert_eq!(resp.end(), Some(&End::Clean));
        assert_eq!(mock.sni(), vec![Some("localhost".to_string())]);
        assert_eq!(mock.requests()[0].target, "/t");
        drop(resp);
        assert!(mock.wait_peer_closed(1, Duration::from_secs(2)).await);
    })
    .await;
}
