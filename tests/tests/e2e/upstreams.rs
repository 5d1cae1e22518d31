//! Upstream connections: https upstreams (a TLS mock with an rcgen certificate trusted through `ca_file`),
//! SNI from the upstream host, untrusted certificates, and connection pooling.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ssegate_tests::client::End;
use ssegate_tests::metrics::Scrape;
use ssegate_tests::tls::TestCert;
use ssegate_tests::{
    assert_bytes, assert_sse_head, bounded, expect_json_error, get, Gateway, MockUpstream, Reply, Step,
};
use ssegate_tests::{GatewaySpec, RouteSpec};

fn ndjson() -> Reply {
    Reply::stream(
        "application/x-ndjson",
        vec![Step::send("{\"a\": 1}\n{\"b\""), Step::Sleep(20), Step::send(":2}\n"), Step::End],
    )
}

const EXPECTED: &[u8] = b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\n";

async fn tls_gateway(cert: &TestCert, upstream: &str) -> Gateway {
    GatewaySpec::new()
        .file("ca.pem", cert.cert_pem.as_bytes())
        .route(RouteSpec::new("r").upstream(upstream).ca_file_in_dir("ca.pem"))
        .start()
        .await
}

#[tokio::test]
async fn https_upstream_trusted_through_ca_file() {
    bounded(async {
        let cert = TestCert::generate();
        let mock = MockUpstream::serve_tls(&cert, ndjson()).await;
        let gw = tls_gateway(&cert, &mock.url()).await;
        let mut resp = get(gw.addr(), "/r/v1/s?x=1").await;
        assert_sse_head(&resp);
        assert_bytes(&resp.body_to_end().await, EXPECTED);
        assert_eq!(resp.end(), Some(&End::Clean));
        let req = &mock.requests()[0];
        assert_eq!(req.target, "/v1/s?x=1");
        assert_eq!(req.header("host"), Some(mock.addr().to_string().as_str()));
    })
    .await;
}

#[tokio::test]
async fn https_upstream_sni_comes_from_the_host() {
    bounded(async {
        let cert = TestCert::generate();
        let mock = MockUpstream::serve_tls(&cert, ndjson()).await;
        let upstream = format!("https://localhost:{}", mock.addr().port());
        let gw = tls_gateway(&cert, &upstream).await;
        let mut resp = get(gw.addr(), "/r").await;
        assert_sse_head(&resp);
        assert_bytes(&resp.body_to_end().await, EXPECTED);
        assert_eq!(mock.sni(), vec![Some("localhost".to_string())]);
        let host = format!("localhost:{}", mock.addr().port());
        assert_eq!(mock.requests()[0].header("host"), Some(host.as_str()));
    })
    .await;
}

#[tokio::test]
async fn https_upstream_with_an_untrusted_certificate_is_502() {
    bounded(async {
        let cert = TestCert::generate();
        let mock = MockUpstream::serve_tls(&cert, ndjson()).await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).heartbeat("5s")).start().await; // no ca_file
        let mut resp = get(gw.addr(), "/r").await;
        expect_json_error(&mut resp, 502, "upstream_connect").await;
        assert!(mock.requests().is_empty(), "no request over an untrusted connection");
    })
    .await;
}

#[tokio::test]
async fn https_upstream_connections_are_pooled() {
    bounded(async {
        let cert = TestCert::generate();
        let mock = MockUpstream::serve_tls(&cert, ndjson()).await;
        let gw = tls_gateway(&cert, &mock.url()).await;
        for _ in 0..3 {
            let mut resp = get(gw.addr(), "/r").await;
            assert_bytes(&resp.body_to_end().await, EXPECTED);
        }
        assert_eq!(mock.requests().len(), 3);
        assert_eq!(
            mock.connections(),
            1,
            "three sequential streams should reuse one upstream TLS connection"
        );
    })
    .await;
}

#[tokio::test]
async fn http_upstream_connections_are_pooled() {
    bounded(async {
        let mock = MockUpstream::serve(ndjson()).await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock)).start().await;
        for _ in 0..3 {
            let mut resp = get(gw.addr(), "/r").await;
            assert_bytes(&resp.body_to_end().await, EXPECTED);
        }
        assert_eq!(mock.requests().len(), 3);
        assert_eq!(mock.connections(), 1, "three sequential streams should reuse one upstream connection");
    })
    .await;
}

#[tokio::test]
async fn an_upstream_connection_the_upstream_answered_connection_close_on_is_not_pooled() {
    // The stream keeps only part of the upstream's response head (pingora-core patch, `trim_heads`): the
    // `Connection` header must still be there when the finished connection is offered to the pool.
    bounded(async {
        let mock = MockUpstream::start(|_| {
            Reply::full(200, "application/x-ndjson", "{\"a\": 1}\n").with_header("connection", "close")
        })
        .await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock)).start().await;
        for i in 0..3 {
            let mut resp = get(gw.addr(), "/r").await;
            assert_bytes(&resp.body_to_end().await, b"data: {\"a\":1}\n\n");
            assert_eq!(resp.end(), Some(&End::Clean), "request {i}");
        }
        assert_eq!(mock.requests().len(), 3);
        assert_eq!(mock.connections(), 3, "a connection the upstream said it closes is never reused");
    })
    .await;
}

#[tokio::test]
async fn a_pooled_connection_found_closed_is_retried_once_on_a_new_one() {
    // The race every keep-alive proxy meets: the upstream closes an idle connection just as the gateway reuses
    // it. Here the mock keeps the first connection open while idle (so the pool cannot notice), then closes it
    // on reading the second request without answering a byte; the gateway must send that request again.
    bounded(async {
        let n = std::sync::atomic::AtomicUsize::new(0);
        let mock = MockUpstream::start(move |_| match n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            1 => Reply::raw(vec![Step::Close]),
            _ => Reply::full(200, "application/x-ndjson", "{\"a\": 1}\n"),
        })
        .await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock)).start().await;
        for i in 0..2 {
            let mut resp = get(gw.addr(), "/r").await;
            assert_eq!(resp.status, 200, "request {i}");
            assert_bytes(&resp.body_to_end().await, b"data: {\"a\":1}\n\n");
            assert_eq!(resp.end(), Some(&End::Clean), "request {i}");
            // The gateway returns the connection to its pool just after the client saw the end: give it time,
            // so that the second request really reuses it.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        assert_eq!(mock.requests().len(), 3, "the second request is sent twice");
        assert_eq!(mock.connections(), 2, "the retry goes on a new connection");
        let retries = |s: &Scrape| s.value("ssegate_upstream_retries_total", &[("route", "r")]);
        assert_eq!(retries(&Scrape::until(gw.admin_addr(), |s| retries(s) == 1.0).await), 1.0);
    })
    .await;
}
