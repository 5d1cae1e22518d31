//! Streaming behaviour: no buffering, heartbeats, client disconnect, done_event and ids, forwarding of the
//! request (method, path, query, body, headers), gzip upstreams, route matching, keep-alive.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use ssegate_tests::client::{Conn, End};
use ssegate_tests::mock::{gzip_pieces, Gate};
use ssegate_tests::{
    assert_bytes, assert_sse_head, bounded, get, request, show, sse, GatewaySpec, MockUpstream, Reply,
    RouteSpec, Step,
};

const HEARTBEAT: &[u8] = b": keepalive\n\n";

#[tokio::test]
async fn no_buffering_event_k_arrives_before_upstream_sends_k_plus_1() {
    bounded(async {
        // Gated: the mock cannot send message k+1 before the client has read event k.
        let gate = Gate::new();
        let mut steps = Vec::new();
        for k in 1..=4 {
            steps.push(Step::send(format!("{{\"k\":{k}}}\n")));
            if k < 4 {
                steps.push(Step::Wait(gate.clone()));
            }
        }
        steps.push(Step::End);
        let mock = MockUpstream::serve(Reply::stream("application/x-ndjson", steps)).await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).heartbeat("0s")).start().await;
        let mut resp = get(gw.addr(), "/r").await;
        assert_sse_head(&resp);
        for k in 1..=4 {
            let ev = resp.next_block().await.unwrap_or_else(|| panic!("event {k} never arrived"));
            assert_bytes(&ev, format!("data: {{\"k\":{k}}}\n\n").as_bytes());
            gate.open();
        }
        assert_bytes(&resp.body_to_end().await, b"");
        assert_eq!(resp.end(), Some(&End::Clean));
    })
    .await;
}

#[tokio::test]
async fn no_buffering_with_pauses_by_timestamps() {
    bounded(async {
        // 300 ms pauses: each event must have arrived before the upstream wrote the next message.
        let steps = vec![
            Step::send("data: 1\n\n"),
            Step::Sleep(300),
            Step::send("data: 2\n\n"),
            Step::Sleep(300),
            Step::send("data: 3\n\n"),
            Step::End,
        ];
        let mock = MockUpstream::serve(Reply::stream("text/event-stream", steps)).await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).heartbeat("0s")).start().await;
        let mut resp = get(gw.addr(), "/r").await;
        let mut ends = Vec::new();
        for k in 1..=3 {
            let ev = resp.next_block().await.unwrap();
            assert_bytes(&ev, format!("data: {k}\n\n").as_bytes());
            ends.push(resp.body().len() - 1);
        }
        resp.body_to_end().await;
        let sent = mock.send_times();
        assert_eq!(sent.len(), 3);
        for k in 0..2 {
            let arrived = resp.arrival_of(ends[k]).unwrap();
            assert!(
                arrived < sent[k + 1],
                "event {} arrived {:?} after the upstream sent message {}",
                k + 1,
                arrived - sent[k + 1],
                k + 2
            );
        }
    })
    .await;
}

#[tokio::test]
async fn heartbeats_during_an_upstream_pause() {
    bounded(async {
        let steps = vec![Step::send("data: a\n\n"), Step::Sleep(900), Step::send("data: b\n\n"), Step::End];
        let mock = MockUpstream::serve(Reply::stream("text/event-stream", steps)).await;
        let gw =
            GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).heartbeat("200ms")).start().await;
        let mut resp = get(gw.addr(), "/r").await;
        assert_sse_head(&resp);
        let body = resp.body_to_end().await;
        let rest =
            body.strip_prefix(b"data: a\n\n".as_slice()).unwrap_or_else(|| panic!("got \"{}\"", show(&body)));
        let middle =
            rest.strip_suffix(b"data: b\n\n".as_slice()).unwrap_or_else(|| panic!("got \"{}\"", show(&body)));
        assert!(
            middle.len() % HEARTBEAT.len() == 0 && middle.chunks(HEARTBEAT.len()).all(|c| c == HEARTBEAT),
            "only heartbeats between the events: \"{}\"",
            show(middle)
        );
        let n = middle.len() / HEARTBEAT.len();
        assert!((2..=5).contains(&n), "about 4 heartbeats in a 900 ms pause at 200 ms, got {n}");
    })
    .await;
}

#[tokio::test]
async fn heartbeats_are_reset_by_events() {
    bounded(async {
        let mut steps = Vec::new();
        for k in 0..10 {
            steps.push(Step::send(format!("data: {k}\n\n")));
            steps.push(Step::Sleep(100));
        }
        steps.push(Step::End);
        let mock = MockUpstream::serve(Reply::stream("text/event-stream", steps)).await;
        let gw =
            GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).heartbeat("400ms")).start().await;
        let mut resp = get(gw.addr(), "/r").await;
        let body = resp.body_to_end().await;
        let expected: String = (0..10).map(|k| format!("data: {k}\n\n")).collect();
        assert_bytes(&body, expected.as_bytes());
    })
    .await;
}

#[tokio::test]
async fn heartbeats_before_slow_upstream_headers() {
    bounded(async {
        let reply = Reply::stream("application/x-ndjson", vec![Step::send("{\"a\":1}\n"), Step::End])
            .with_head_delay(Duration::from_millis(1000));
        let mock = MockUpstream::serve(reply).await;
        let gw =
            GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).heartbeat("200ms")).start().await;
        let t0 = Instant::now();
        let mut resp = get(gw.addr(), "/r").await;
        let head_after = t0.elapsed();
        assert_sse_head(&resp);
        assert!(head_after < Duration::from_millis(800), "the gateway commits early ({head_after:?})");
        assert_bytes(&resp.next_block().await.unwrap(), HEARTBEAT);
        let first_hb = t0.elapsed();
        assert!(
            first_hb < Duration::from_millis(800),
            "first heartbeat before upstream headers ({first_hb:?})"
        );
        let body = resp.body_to_end().await;
        let beats =
            body.strip_suffix(b"data: {\"a\":1}\n\n".as_slice()).unwrap_or_else(|| panic!("{}", show(&body)));
        assert!(
            beats.chunks(HEARTBEAT.len()).all(|c| c == HEARTBEAT),
            "heartbeats, then the event: {}",
            show(&body)
        );
        assert_eq!(resp.end(), Some(&End::Clean));
    })
    .await;
}

#[tokio::test]
async fn client_disconnect_closes_the_upstream_connection() {
    bounded(async {
        let gate = Gate::new(); // never opened: the upstream would stream forever
        let mock = MockUpstream::serve(Reply::stream(
            "application/x-ndjson",
            vec![Step::send("{\"a\":1}\n"), Step::Wait(gate)],
        ))
        .await;
        // No heartbeats and a silent upstream: nothing is written to the client after it leaves, so only
        // the gateway watching the client connection can notice.
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).heartbeat("0s")).start().await;
        let mut resp = get(gw.addr(), "/r").await;
        assert_bytes(&resp.next_event().await.unwrap(), b"data: {\"a\":1}\n\n");
        let t = Instant::now();
        drop(resp);
        assert!(
            mock.wait_peer_closed(1, Duration::from_secs(2)).await,
            "the gateway did not close its upstream connection within 2 s of the client leaving"
        );
        eprintln!("upstream closed {:?} after the client left", mock.peer_closed_at()[0] - t);
    })
    .await;
}

#[tokio::test]
async fn client_disconnect_during_slow_headers_closes_the_upstream() {
    bounded(async {
        let reply = Reply::stream("application/x-ndjson", vec![Step::send("{\"a\":1}\n"), Step::End])
            .with_head_delay(Duration::from_secs(10));
        let mock = MockUpstream::serve(reply).await;
        // The first heartbeat commits the response; the client leaves right after it. The next heartbeat
        // is 3 s away, so a close within 1.5 s comes from watching the client, not from a failed write.
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).heartbeat("3s")).start().await;
        let mut resp = get(gw.addr(), "/r").await;
        assert_bytes(&resp.next_block().await.unwrap(), HEARTBEAT);
        let t = Instant::now();
        drop(resp);
        assert!(
            mock.wait_peer_closed(1, Duration::from_millis(1500)).await,
            "the gateway did not close its upstream connection within 1.5 s of the client leaving \
             (heartbeats every 3 s)"
        );
        eprintln!("upstream closed {:?} after the client left", mock.peer_closed_at()[0] - t);
    })
    .await;
}

/// The gateway polls its watch of the client only when the client's socket reported something
/// (`exchange/client_watch.rs`): after many body-loop turns in which it skipped it, a client that closes,
/// or sends bytes without closing, is still noticed at once (no heartbeats, a silent upstream: nothing is
/// written that could fail instead).
#[tokio::test]
async fn a_client_that_closes_or_sends_bytes_after_many_events_is_noticed_at_once() {
    bounded(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        const EVENTS: usize = 40;
        for sends_bytes in [false, true] {
            let mut steps: Vec<Step> =
                (0..EVENTS).flat_map(|i| [Step::send(format!("{{\"i\":{i}}}\n")), Step::Sleep(5)]).collect();
            steps.push(Step::Wait(Gate::new()));
            let mock = MockUpstream::serve(Reply::stream("application/x-ndjson", steps)).await;
            let gw =
                GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).heartbeat("0s")).start().await;
            let mut client = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
            client.write_all(b"GET /r HTTP/1.1\r\nhost: t\r\n\r\n").await.unwrap();
            let last = format!("data: {{\"i\":{}}}\n\n", EVENTS - 1).into_bytes();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.windows(last.len()).any(|w| w == last) {
                let n = client.read(&mut buf).await.unwrap();
                assert!(n > 0, "the stream ended early: {}", show(&got));
                got.extend_from_slice(&buf[..n]);
            }
            let t = Instant::now();
            if sends_bytes {
                client.write_all(b"x").await.unwrap();
            } else {
                drop(client);
            }
            assert!(
                mock.wait_peer_closed(1, Duration::from_millis(1500)).await,
                "sends_bytes {sends_bytes}: the upstream was not closed within 1.5 s"
            );
            eprintln!("sends_bytes {sends_bytes}: upstream closed {:?} after", mock.peer_closed_at()[0] - t);
        }
    })
    .await;
}

#[tokio::test]
async fn done_event_after_clean_end() {
    bounded(async {
        let mock = MockUpstream::serve(Reply::stream(
            "application/x-ndjson",
            vec![Step::send("{\"a\":1}\n{\"b\":2}"), Step::End],
        ))
        .await;
        let gw = GatewaySpec::new()
            .route(RouteSpec::new("r").upstream(&mock).done_event(Some("end"), "[DONE]"))
            .start()
            .await;
        let mut resp = get(gw.addr(), "/r").await;
        assert_bytes(
            &resp.body_to_end().await,
            b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\nevent: end\ndata: [DONE]\n\n",
        );
        assert_eq!(resp.end(), Some(&End::Clean));
    })
    .await;
}

#[tokio::test]
async fn ids_number_events_and_done_event_comes_last() {
    bounded(async {
        let mock = MockUpstream::serve(Reply::stream(
            "text/event-stream",
            vec![Step::send("id: up-1\ndata: a\n\ndata: b\n\n"), Step::send("data: c\n\n"), Step::End],
        ))
        .await;
        let gw = GatewaySpec::new()
            .route(RouteSpec::new("r").upstream(&mock).ids(true).done_event(Some("end"), "[DONE]"))
            .start()
            .await;
        let mut resp = get(gw.addr(), "/r").await;
        assert_bytes(&resp.next_event().await.unwrap(), b"id: 1\ndata: a\n\n");
        assert_bytes(&resp.next_event().await.unwrap(), b"id: 2\ndata: b\n\n");
        assert_bytes(&resp.next_event().await.unwrap(), b"id: 3\ndata: c\n\n");
        let rest = resp.body_to_end().await;
        let blocks = sse::parse_all(&rest);
        assert_eq!(blocks.len(), 1, "only the done event follows: \"{}\"", show(&rest));
        assert_eq!(blocks[0].event.as_deref(), Some("end"));
        assert_eq!(blocks[0].data.as_deref(), Some("[DONE]"));
        assert!(
            blocks[0].id.is_none() || blocks[0].id.as_deref() == Some("4"),
            "a done event id, if any, continues the numbering: {:?}",
            blocks[0]
        );
        assert_eq!(resp.end(), Some(&End::Clean));
    })
    .await;
}

#[tokio::test]
async fn post_body_and_request_line_reach_the_upstream() {
    bounded(async {
        let mock = MockUpstream::serve(Reply::stream("application/x-ndjson", vec![Step::send("{}\n"), Step::End])).await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock)).start().await;
        let body: &[u8] = b"{\n  \"model\": \"m\",\n  \"messages\": [{\"role\":\"user\",\"content\":\"h\xC3\xA9  llo\"}],\n  \"stream\": true\n}";
        let mut resp = request(
            gw.addr(),
            "POST",
            "/r/v1/chat/completions?x=1&y=%20z",
            &[
                ("Content-Type", "application/json"),
                ("Authorization", "Bearer secret"),
                ("X-Custom", "v1"),
                ("Accept", "text/event-stream"),
                ("Accept-Encoding", "gzip, br"),
            ],
            body,
        )
        .await;
        assert_sse_head(&resp);
        assert_bytes(&resp.body_to_end().await, b"data: {}\n\n");
        let req = &mock.requests()[0];
        assert_eq!(req.method, "POST");
        assert_eq!(req.target, "/v1/chat/completions?x=1&y=%20z");
        assert_bytes(&req.body, body);
        assert_eq!(req.header("host"), Some(mock.addr().to_string().as_str()), "Host rewritten: {:?}", req.headers);
        assert_eq!(req.header("content-type"), Some("application/json"));
        assert_eq!(req.header("authorization"), Some("Bearer secret"));
        assert_eq!(req.header("x-custom"), Some("v1"));
        assert_eq!(
            req.header_all("accept-encoding"),
            vec!["identity"],
            "converting routes ask for identity: {:?}",
            req.headers
        );
    })
    .await;
}

#[tokio::test]
async fn hop_by_hop_headers_are_not_forwarded() {
    bounded(async {
        let mock =
            MockUpstream::serve(Reply::stream("application/x-ndjson", vec![Step::send("{}\n"), Step::End]))
                .await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock)).start().await;
        let mut resp = request(
            gw.addr(),
            "GET",
            "/r/x",
            &[
                ("Connection", "keep-alive, X-Hop"),
                ("Keep-Alive", "timeout=5"),
                ("X-Hop", "1"),
                ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
                ("TE", "trailers"),
                ("X-End-To-End", "yes"),
            ],
            b"",
        )
        .await;
        resp.body_to_end().await;
        let req = &mock.requests()[0];
        for h in ["keep-alive", "x-hop", "proxy-authorization", "te"] {
            assert_eq!(req.header(h), None, "hop-by-hop header {h} was forwarded: {:?}", req.headers);
        }
        assert!(
            req.header_all("connection").iter().all(|v| !v.to_ascii_lowercase().contains("x-hop")),
            "the client's Connection header was forwarded: {:?}",
            req.headers
        );
        assert_eq!(req.header("x-end-to-end"), Some("yes"));
    })
    .await;
}

#[tokio::test]
async fn gzip_upstream_is_decoded() {
    bounded(async {
        let pieces = gzip_pieces(&[b"{\"a\": 1}\n{\"b\"", b":2}\n", b"{\"c\":\"\xE2\x82\xAC\"}\n"]);
        let steps: Vec<Step> =
            pieces.into_iter().flat_map(|p| [Step::Send(p), Step::Sleep(30)]).chain([Step::End]).collect();
        let mock = MockUpstream::serve(
            Reply::stream("application/x-ndjson", steps).with_header("Content-Encoding", "gzip"),
        )
        .await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock)).start().await;
        let mut resp = get(gw.addr(), "/r").await;
        assert_sse_head(&resp);
        assert_bytes(
            &resp.body_to_end().await,
            b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: {\"c\":\"\xE2\x82\xAC\"}\n\n",
        );
        assert_eq!(resp.end(), Some(&End::Clean));
    })
    .await;
}

#[tokio::test]
async fn corrupt_gzip_upstream_is_a_counted_decode_error() {
    bounded(async {
        let mut pieces = gzip_pieces(&[b"{\"a\": 1}\n"]);
        // Valid first message, then bytes that are no deflate stream at all.
        pieces.truncate(1);
        let steps = vec![
            Step::Send(pieces.remove(0)),
            Step::Sleep(30),
            Step::send(b"\xFF\xFF\xFF\xFFgarbage"),
            Step::End,
        ];
        let mock = MockUpstream::serve(
            Reply::stream("application/x-ndjson", steps).with_header("Content-Encoding", "gzip"),
        )
        .await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock)).start().await;
        let mut resp = get(gw.addr(), "/r").await;
        assert_sse_head(&resp);
        let body = resp.body_to_end().await;
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with("data: {\"a\":1}\n\n"), "{text}");
        assert!(text.contains("event: error\n") && text.contains("\"type\":\"decode\""), "{text}");
        let labels = [("route", "r"), ("kind", "decode")];
        let scrape = ssegate_tests::metrics::Scrape::until(gw.admin_addr(), |s| {
            s.value("ssegate_upstream_errors_total", &labels) >= 1.0
        })
        .await;
        assert_eq!(scrape.value("ssegate_upstream_errors_total", &labels), 1.0);
    })
    .await;
}

#[tokio::test]
async fn longest_prefix_wins_and_prefix_is_stripped() {
    bounded(async {
        let reply = Reply::stream("application/x-ndjson", vec![Step::send("{}\n"), Step::End]);
        let short = MockUpstream::serve(reply.clone()).await;
        let long = MockUpstream::serve(reply.clone()).await;
        let keep = MockUpstream::serve(reply).await;
        let gw = GatewaySpec::new()
            .route(RouteSpec::new("short").prefix("/api").upstream(&short))
            .route(RouteSpec::new("long").prefix("/api/deep").upstream(&long))
            .route(RouteSpec::new("keep").upstream(&keep).strip_prefix(false))
            .start()
            .await;
        for path in ["/api/deep/x?q=1", "/api", "/api/deeper", "/keep/k", "/api/deep"] {
            let mut resp = get(gw.addr(), path).await;
            assert_eq!(resp.status, 200, "{path}");
            resp.body_to_end().await;
        }
        let targets = |m: &MockUpstream| m.requests().iter().map(|r| r.target.clone()).collect::<Vec<_>>();
        assert_eq!(targets(&long), vec!["/x?q=1", "/"]);
        assert_eq!(targets(&short), vec!["/", "/deeper"]);
        assert_eq!(targets(&keep), vec!["/keep/k"]);
    })
    .await;
}

#[tokio::test]
async fn keep_alive_after_a_clean_end() {
    bounded(async {
        let mock = MockUpstream::serve(Reply::stream(
            "application/x-ndjson",
            vec![Step::send("{\"a\":1}\n"), Step::End],
        ))
        .await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock)).start().await;
        let mut resp = Conn::connect(gw.addr()).await.send("GET", "/r/1", &[], b"").await;
        assert_bytes(&resp.body_to_end().await, b"data: {\"a\":1}\n\n");
        assert_eq!(resp.end(), Some(&End::Clean));
        let conn = resp.into_conn().unwrap();
        let mut resp = conn.send("GET", "/r/2", &[], b"").await;
        assert_sse_head(&resp);
        assert_bytes(&resp.body_to_end().await, b"data: {\"a\":1}\n\n");
        assert_eq!(mock.requests().len(), 2);
    })
    .await;
}
