//! Protocols and lifecycle: h2c with prior knowledge, TLS + h2 (ALPN) with an rcgen certificate, and
//! graceful shutdown on SIGTERM (drain, `retry:` + `event: error` of type shutdown, `/readyz` 503).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use ssegate_tests::client::End;
use ssegate_tests::mock::Gate;
use ssegate_tests::tls::TestCert;
use ssegate_tests::{
    assert_bytes, assert_sse_head, bounded, get, h2_tls_request, h2c_request, request, show, sse, Gateway,
    MockUpstream, Reply, Step, SIGTERM,
};
use ssegate_tests::{GatewaySpec, RouteSpec};

use crate::streams::{upgrade, Prober};

fn gated_ndjson(gate: &Gate) -> Reply {
    Reply::stream(
        "application/x-ndjson",
        vec![
            Step::send("{\"a\": 1}\n{\"b\""),
            Step::Sleep(30),
            Step::send(":2}\n"),
            Step::Wait(gate.clone()),
            Step::send("{\"c\":3}"),
            Step::End,
        ],
    )
}

/// A gateway with `routes` and a `[server.tls]` listener presenting `cert` next to the plaintext one.
async fn tls_gateway(cert: &TestCert, route: RouteSpec) -> Gateway {
    GatewaySpec::new().tls(cert).route(route).start().await
}

#[tokio::test]
async fn h2c_prior_knowledge_streaming() {
    bounded(async {
        let gate = Gate::new();
        let mock = MockUpstream::serve(gated_ndjson(&gate)).await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).heartbeat("0s")).start().await;
        let mut resp = h2c_request(gw.addr(), "POST", "/r/v1/x?q=1", b"{\"p\": 1}").await;
        assert_eq!(resp.version, "HTTP/2.0");
        assert_sse_head(&resp);
        assert_bytes(&resp.next_block().await.unwrap(), b"data: {\"a\":1}\n\n");
        assert_bytes(&resp.next_block().await.unwrap(), b"data: {\"b\":2}\n\n");
        gate.open();
        assert_bytes(&resp.body_to_end().await, b"data: {\"c\":3}\n\n");
        assert_eq!(resp.end(), Some(&End::Clean));
        let req = &mock.requests()[0];
        assert_eq!((req.method.as_str(), req.target.as_str()), ("POST", "/v1/x?q=1"));
        assert_bytes(&req.body, b"{\"p\": 1}");
        assert_eq!(req.header("host"), Some(mock.addr().to_string().as_str()));
    })
    .await;
}

#[tokio::test]
async fn h2c_client_disconnect_closes_the_upstream() {
    bounded(async {
        let gate = Gate::new(); // never opened
        let mock = MockUpstream::serve(Reply::stream(
            "application/x-ndjson",
            vec![Step::send("{\"a\":1}\n"), Step::Wait(gate)],
        ))
        .await;
        // No heartbeats, a silent upstream: only watching the client can notice the reset.
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).heartbeat("0s")).start().await;
        let mut resp = h2c_request(gw.addr(), "GET", "/r", b"").await;
        assert_bytes(&resp.next_event().await.unwrap(), b"data: {\"a\":1}\n\n");
        drop(resp);
        assert!(
            mock.wait_peer_closed(1, Duration::from_secs(2)).await,
            "the gateway did not close its upstream connection within 2 s of the h2 stream being reset"
        );
    })
    .await;
}

#[tokio::test]
async fn tls_h2_streaming_with_a_generated_certificate() {
    bounded(async {
        let cert = TestCert::generate();
        let gate = Gate::new();
        let mock = MockUpstream::serve(gated_ndjson(&gate)).await;
        let gw = tls_gateway(&cert, RouteSpec::new("r").upstream(&mock).heartbeat("0s")).await;
        let mut resp = h2_tls_request(gw.tls_addr().unwrap(), &cert.cert_der, "GET", "/r/s", b"").await;
        assert_eq!(resp.version, "HTTP/2.0");
        assert_sse_head(&resp);
        assert_bytes(&resp.next_block().await.unwrap(), b"data: {\"a\":1}\n\n");
        assert_bytes(&resp.next_block().await.unwrap(), b"data: {\"b\":2}\n\n");
        gate.open();
        assert_bytes(&resp.body_to_end().await, b"data: {\"c\":3}\n\n");
        assert_eq!(resp.end(), Some(&End::Clean));
        assert_eq!(mock.requests()[0].target, "/s");
        // The plaintext listener keeps working next to the TLS one.
        gate.open();
        let mut plain = get(gw.addr(), "/r").await;
        assert_sse_head(&plain);
        assert_bytes(
            &plain.body_to_end().await,
            b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: {\"c\":3}\n\n",
        );
    })
    .await;
}

/// `GET /readyz` on the admin listener; 0 when it refuses the connection (not listening yet or any more).
async fn readyz(gw: &Gateway) -> u16 {
    if tokio::net::TcpStream::connect(gw.admin_addr()).await.is_err() {
        return 0;
    }
    let mut resp = request(gw.admin_addr(), "GET", "/readyz", &[], b"").await;
    resp.body_to_end().await;
    resp.status
}

#[tokio::test]
async fn sigterm_drains_then_closes_open_streams_with_retry_and_shutdown_error() {
    bounded(async {
        let finish_gate = Gate::new();
        let never = Gate::new();
        let (fg, ng) = (finish_gate.clone(), never.clone());
        let mock = MockUpstream::start(move |req| {
            if req.target.starts_with("/finish") {
                Reply::stream(
                    "text/event-stream",
                    vec![
                        Step::send("data: a1\n\n"),
                        Step::Wait(fg.clone()),
                        Step::send("data: a2\n\n"),
                        Step::End,
                    ],
                )
            } else {
                Reply::stream("text/event-stream", vec![Step::send("data: b1\n\n"), Step::Wait(ng.clone())])
            }
        })
        .await;
        let mut gw = GatewaySpec::new()
            .server(|s| s.shutdown_drain("1s").shutdown_retry("1500ms"))
            .route(RouteSpec::new("r").upstream(&mock).heartbeat("200ms"))
            .start()
            .await;

        // Ready before the shutdown (it may take a moment for the self-probe).
        let t = Instant::now();
        while readyz(&gw).await != 200 {
            assert!(t.elapsed() < Duration::from_secs(5), "/readyz never answered 200");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let mut finishing = get(gw.addr(), "/r/finish").await;
        let mut forever = get(gw.addr(), "/r/forever").await;
        assert_bytes(&finishing.next_event().await.unwrap(), b"data: a1\n\n");
        assert_bytes(&forever.next_event().await.unwrap(), b"data: b1\n\n");

        let t0 = Instant::now();
        gw.signal(SIGTERM);
        let mut saw_503 = false;
        while t0.elapsed() < Duration::from_millis(900) {
            if readyz(&gw).await == 503 {
                saw_503 = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(saw_503, "/readyz did not answer 503 while draining");

        // A stream that finishes within the drain period ends normally.
        finish_gate.open();
        let rest = finishing.body_to_end().await;
        let rest = String::from_utf8_lossy(&rest).replace(": keepalive\n\n", "");
        assert_eq!(rest, "data: a2\n\n", "the draining stream finishes normally");
        assert_eq!(finishing.end(), Some(&End::Clean));

        // A stream still open after the drain gets retry + error(shutdown), then a clean end.
        let rest = forever.body_to_end().await;
        let took = t0.elapsed();
        let text = String::from_utf8_lossy(&rest).replace(": keepalive\n\n", "");
        assert!(
            text.starts_with("retry: 1500\n\n") || text.starts_with("retry: 1500\n"),
            "retry first: \"{}\"",
            show(&rest)
        );
        let blocks: Vec<_> =
            sse::parse_all(text.as_bytes()).into_iter().filter(|b| !b.is_heartbeat()).collect();
        let err = blocks.last().unwrap_or_else(|| panic!("no blocks: \"{}\"", show(&rest)));
        sse::assert_error_event(err, "shutdown");
        assert_eq!(forever.end(), Some(&End::Clean));
        assert!(
            took >= Duration::from_millis(800) && took < Duration::from_secs(3),
            "closed {took:?} after SIGTERM with a 1 s drain"
        );
        let status = gw.wait_exit(Duration::from_secs(10)).await;
        assert!(status.is_some(), "the gateway did not exit after the drain");
        assert!(mock.wait_peer_closed(2, Duration::from_secs(2)).await, "both upstream connections closed");
    })
    .await;
}

#[tokio::test]
async fn tls_listener_also_serves_http1_by_alpn() {
    bounded(async {
        let cert = TestCert::generate();
        let mock = MockUpstream::serve(Reply::stream(
            "application/x-ndjson",
            vec![Step::send("{\"a\": 1}\n"), Step::End],
        ))
        .await;
        let gw = tls_gateway(&cert, RouteSpec::new("r").upstream(&mock)).await;
        let conn = ssegate_tests::client::Conn::tls(gw.tls_addr().unwrap(), &cert.cert_der).await;
        let mut resp = conn.send("GET", "/r", &[("Accept", "text/event-stream")], b"").await;
        assert_eq!(resp.version, "HTTP/1.1");
        assert_sse_head(&resp);
        assert_bytes(&resp.body_to_end().await, b"data: {\"a\":1}\n\n");
        assert_eq!(resp.end(), Some(&End::Clean));
    })
    .await;
}

#[tokio::test]
async fn sigterm_without_open_streams_exits_promptly() {
    bounded(async {
        let mock = MockUpstream::serve(Reply::full(200, "application/json", "{}")).await;
        let mut gw = GatewaySpec::new()
            .server(|s| s.shutdown_drain("1s"))
            .route(RouteSpec::new("r").upstream(&mock))
            .start()
            .await;
        let mut resp = get(gw.addr(), "/r").await;
        resp.body_to_end().await;
        let t0 = Instant::now();
        gw.signal(SIGTERM);
        let status = gw.wait_exit(Duration::from_secs(10)).await;
        assert!(status.is_some(), "no exit within 10 s of SIGTERM");
        eprintln!("exited {:?} after SIGTERM with {:?}", t0.elapsed(), status);
        assert!(t0.elapsed() < Duration::from_secs(5), "exit took {:?} with nothing to drain", t0.elapsed());
    })
    .await;
}

#[tokio::test]
async fn graceful_upgrade_hands_over_listeners_and_closes_old_streams() {
    bounded(async {
        let mock = MockUpstream::start(|req| {
            if req.target.starts_with("/forever") {
                Reply::stream("text/event-stream", vec![Step::send("data: b1\n\n"), Step::Wait(Gate::new())])
            } else {
                Reply::stream("text/event-stream", vec![Step::send("data: ok\n\n"), Step::End])
            }
        })
        .await;
        let mut old = GatewaySpec::new()
            .server(|s| s.shutdown_drain("1s"))
            .route(RouteSpec::new("r").upstream(&mock).heartbeat("200ms"))
            .start()
            .await;
        let addr = old.addr();
        let mut forever = get(addr, "/r/forever").await;
        assert_bytes(&forever.next_event().await.unwrap(), b"data: b1\n\n");

        // Probe the address during the whole hand-over (including the old listener closing ~5 s after
        // SIGQUIT) until the old process has exited: every request must be served.
        let prober = Prober::start(addr, "/r/ok", b"data: ok\n\n");
        let new = upgrade(&old).await;
        let t0 = Instant::now();
        let rest = forever.body_to_end().await;
        let took = t0.elapsed();
        let text = String::from_utf8_lossy(&rest).replace(": keepalive\n\n", "");
        assert!(text.starts_with("retry: "), "the old stream gets retry first: \"{}\"", show(&rest));
        let blocks: Vec<_> =
            sse::parse_all(text.as_bytes()).into_iter().filter(|b| !b.is_heartbeat()).collect();
        sse::assert_error_event(blocks.last().unwrap(), "shutdown");
        assert_eq!(forever.end(), Some(&End::Clean));
        // pingora waits 5 s (CLOSE_TIMEOUT) after handing the sockets over before it starts the graceful
        // shutdown; the 1 s drain runs after that.
        assert!(
            took < Duration::from_secs(9),
            "old stream closed {took:?} after SIGQUIT (5 s hand-over + 1 s drain)"
        );
        assert!(old.wait_exit(Duration::from_secs(10)).await.is_some(), "the old process did not exit");

        let probes = prober.stop().await;
        assert!(probes.refused.is_empty() && probes.failed.is_empty(), "during the upgrade: {probes:?}");
        assert!(probes.ok > 0);
        let mut resp = get(addr, "/r/ok").await;
        assert_bytes(&resp.body_to_end().await, b"data: ok\n\n");
        let t = Instant::now();
        while readyz(&new).await != 200 {
            assert!(t.elapsed() < Duration::from_secs(5), "the new process's /readyz never answered 200");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn h2c_heartbeats_before_headers_and_during_pauses() {
    bounded(async {
        let reply = Reply::stream(
            "application/x-ndjson",
            vec![Step::send("{\"a\":1}\n"), Step::Sleep(500), Step::send("{\"b\":2}\n"), Step::End],
        )
        .with_head_delay(Duration::from_millis(500));
        let mock = MockUpstream::serve(reply).await;
        let gw =
            GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).heartbeat("100ms")).start().await;
        let t0 = Instant::now();
        let mut resp = h2c_request(gw.addr(), "GET", "/r", b"").await;
        assert!(t0.elapsed() < Duration::from_millis(450), "early commit on h2 ({:?})", t0.elapsed());
        assert_sse_head(&resp);
        assert_bytes(&resp.next_block().await.unwrap(), b": keepalive\n\n");
        let body = resp.body_to_end().await;
        let text = String::from_utf8_lossy(&body).to_string();
        let parts: Vec<&str> = text.split("data: {\"a\":1}\n\n").collect();
        assert_eq!(parts.len(), 2, "\"{}\"", show(&body));
        let (before, after) = (parts[0], parts[1]);
        assert!(before.split(": keepalive\n\n").all(str::is_empty), "\"{}\"", show(&body));
        let pause =
            after.strip_suffix("data: {\"b\":2}\n\n").unwrap_or_else(|| panic!("\"{}\"", show(&body)));
        let beats = pause.matches(": keepalive\n\n").count();
        assert!(pause.split(": keepalive\n\n").all(str::is_empty) && beats >= 2, "\"{}\"", show(&body));
        assert_eq!(resp.end(), Some(&End::Clean));
    })
    .await;
}

#[tokio::test]
async fn every_listen_address_serves() {
    bounded(async {
        let mock = MockUpstream::serve(Reply::stream(
            "application/x-ndjson",
            vec![Step::send("{\"a\":1}\n"), Step::End],
        ))
        .await;
        let gw = GatewaySpec::new().listeners(2).route(RouteSpec::new("r").upstream(&mock)).start().await;
        assert_eq!(gw.listen_addrs().len(), 2);
        for &addr in gw.listen_addrs() {
            let mut resp = get(addr, "/r").await;
            assert_sse_head(&resp);
            assert_bytes(&resp.body_to_end().await, b"data: {\"a\":1}\n\n");
            let mut resp = h2c_request(addr, "GET", "/r", b"").await;
            assert_bytes(&resp.body_to_end().await, b"data: {\"a\":1}\n\n");
        }
    })
    .await;
}
