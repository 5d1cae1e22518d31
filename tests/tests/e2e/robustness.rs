//! Harder cases: slow clients, many concurrent streams, large events, request limits, chunked request
//! bodies, upstream base paths, passthrough routes, h2 multiplexing, and broken upstream heads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ssegate_tests::client::{Conn, End, H2Conn};
use ssegate_tests::mock::Gate;
use ssegate_tests::{
    assert_bytes, assert_sse_head, bounded, expect_json_error, get, request, show, sse, MockUpstream, Reply,
    Step,
};
use ssegate_tests::{Gateway, GatewaySpec, RouteSpec};

/// The gateway's resident memory in KiB (`VmRSS` of `/proc/<pid>/status`). Panics when it cannot be read:
/// a memory bound that silently reads 0 tests nothing.
fn rss_kib(pid: u32) -> u64 {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {path} ({e}): this test needs Linux /proc to check memory"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS line in {path}:\n{status}"))
}

/// `max_event_size` of the flooded route: the most of a partial upstream message the decoder may hold.
const FLOOD_MAX_EVENT: &str = "64KiB";

/// What one stream whose client stopped reading may keep in the gateway's memory, in KiB, derived from the
/// code (crates/gateway/src/stream.rs and pingora-core 0.9.1):
/// - the exchange awaits each client write (h1: pingora's `write_body` under `write_timeout`; h2:
///   `reserve_and_send` waits for flow-control capacity) and reads the upstream only between writes, so
///   nothing queues up while the client is stuck: `write_timeout` x upstream rate is *not* part of the bound;
/// - one upstream body read: at most `BODY_BUF_LIMIT` = 64 KiB (pingora `protocols/http/v1/common.rs`);
/// - the decoder's partial message: at most `max_event_size` = [`FLOOD_MAX_EVENT`] = 64 KiB;
/// - the SSE encoding of one read (`data: ` and a blank line per 128-byte line: x1.07) in `out`, and the
///   previous one in the write in flight: 2 x 70 KiB;
/// - kernel socket buffers are kernel memory, not RSS.
const STALLED_STREAM_KIB: u64 = 64 + 64 + 2 * 70;
/// On h2, the h2 send buffer may also hold up to the client's stream window (hyper's default 2 MiB, which
/// `H2Conn` keeps), sent or not.
const H2_STREAM_WINDOW_KIB: u64 = 2 * 1024;
/// Allowance for the allocator and runtime noise around one stream after a warm-up request (measured: well
/// under 1 MiB).
const NOISE_KIB: u64 = 3 * 1024;

/// A gateway with the flooded route `/r` (`write_timeout` 1 s) and a small one, `/w`, to warm up on before
/// the memory baseline is taken.
async fn flood_gateway(flood: &MockUpstream, small: &MockUpstream) -> Gateway {
    GatewaySpec::new()
        .server(|s| s.write_timeout("1s"))
        .route(RouteSpec::new("r").upstream(flood).max_event_size(FLOOD_MAX_EVENT))
        .route(RouteSpec::new("w").upstream(small))
        .start()
        .await
}

fn small_reply() -> Reply {
    Reply::stream("application/x-ndjson", vec![Step::send("{\"a\":1}\n"), Step::End])
}

/// ~96 MiB of NDJSON in 64 KiB writes, sent as fast as the gateway takes it; returns the mock and the
/// number of writes it will attempt.
async fn flooding_upstream() -> (MockUpstream, usize) {
    let line = format!("{{\"t\":\"{}\"}}\n", "x".repeat(118));
    let piece = Bytes::from(line.repeat(64 * 1024 / line.len()));
    let total = 1536;
    let steps: Vec<Step> = (0..total).map(|_| Step::Send(piece.clone())).chain([Step::End]).collect();
    (MockUpstream::serve(Reply::stream("application/x-ndjson", steps)).await, total)
}

#[tokio::test]
async fn slow_client_is_dropped_and_memory_stays_bounded() {
    bounded(async {
        // ~96 MiB of NDJSON in 64 KiB writes, as fast as the gateway takes it; the client never reads.
        let (mock, total) = flooding_upstream().await;
        let small = MockUpstream::serve(small_reply()).await;
        let gw = flood_gateway(&mock, &small).await;
        for _ in 0..2 {
            get(gw.addr(), "/w").await.body_to_end().await;
        }
        let rss_before = rss_kib(gw.pid());
        let resp = get(gw.addr(), "/r").await; // head read; the body is never read
        assert_sse_head(&resp);
        let t0 = Instant::now();
        let mut peak = rss_before;
        while t0.elapsed() < Duration::from_secs(4) && mock.peer_closed() == 0 {
            peak = peak.max(rss_kib(gw.pid()));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let sends = mock.send_times();
        assert!(
            mock.peer_closed() >= 1,
            "the gateway still holds the upstream {:?} after the client stopped reading (write_timeout 1s); \
             the upstream wrote {} x 64 KiB, the last {:?} ago; gateway log:\n{}",
            t0.elapsed(),
            sends.len(),
            sends.last().map(|t| t.elapsed()),
            gw.stderr()
        );
        let sent = mock.send_times().len();
        assert!(sent < total, "the upstream could send everything ({sent} x 64 KiB): nothing pushed back");
        let bound = STALLED_STREAM_KIB + NOISE_KIB;
        eprintln!("RSS {rss_before} KiB -> peak {peak} KiB (+{} KiB, bound {bound} KiB)", peak - rss_before);
        assert!(
            peak <= rss_before + bound,
            "gateway RSS grew from {rss_before} KiB to {peak} KiB (+{} KiB) for one stalled stream; the bound \
             is {bound} KiB",
            peak - rss_before
        );
        drop(resp);
    })
    .await;
}

#[tokio::test]
async fn fifty_concurrent_streams_each_get_their_exact_bytes() {
    bounded(async {
        let mock = MockUpstream::start(|req| {
            let n: usize = req.target.trim_start_matches('/').parse().unwrap_or(0);
            let mut steps = Vec::new();
            for k in 0..20 {
                steps.push(Step::send(format!("{{\"s\":{n},\"k\":{k}}}\n")));
                steps.push(Step::Sleep(10));
            }
            steps.push(Step::End);
            Reply::stream("application/x-ndjson", steps)
        })
        .await;
        let gw =
            GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).heartbeat("50ms")).start().await;
        let addr = gw.addr();
        let mut set = tokio::task::JoinSet::new();
        for n in 0..50 {
            set.spawn(async move {
                let mut resp = get(addr, &format!("/r/{n}")).await;
                assert_sse_head(&resp);
                let body = resp.body_to_end().await;
                let body = String::from_utf8(body).unwrap().replace(": keepalive\n\n", "");
                let expected: String =
                    (0..20).map(|k| format!("data: {{\"s\":{n},\"k\":{k}}}\n\n")).collect();
                assert_eq!(body, expected, "stream {n}");
                assert_eq!(resp.end(), Some(&End::Clean), "stream {n}");
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
    })
    .await;
}

#[tokio::test]
async fn large_event_split_over_many_writes_arrives_whole() {
    bounded(async {
        let text = "\u{20ac}abc ".repeat(100_000); // 700 KB, multibyte everywhere
        let json = format!("{{\"big\":\"{text}\"}}\n");
        let bytes = json.as_bytes();
        let mut steps: Vec<Step> = bytes.chunks(65_537).map(Step::send).collect();
        steps.push(Step::send("{\"after\":1}\n"));
        steps.push(Step::End);
        let mock = MockUpstream::serve(Reply::stream("application/x-ndjson", steps)).await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock)).start().await;
        let mut resp = get(gw.addr(), "/r").await;
        let body = resp.body_to_end().await;
        let expected = format!("data: {}\n\ndata: {{\"after\":1}}\n\n", json.trim_end());
        assert!(
            body == expected.as_bytes(),
            "large event differs (got {} bytes, want {})",
            body.len(),
            expected.len()
        );
    })
    .await;
}

#[tokio::test]
async fn request_body_over_the_limit_is_413() {
    bounded(async {
        let mock = MockUpstream::serve(Reply::full(200, "application/json", "{}")).await;
        let gw = GatewaySpec::new()
            .server(|s| s.max_request_body("1KiB"))
            .route(RouteSpec::new("r").upstream(&mock))
            .start()
            .await;
        let body = vec![b'x'; 2048];
        let mut resp = request(gw.addr(), "POST", "/r", &[("Content-Type", "text/plain")], &body).await;
        expect_json_error(&mut resp, 413, "payload_too_large").await;
        assert_eq!(mock.requests().len(), 0);
        // At the limit it passes.
        let mut resp = request(gw.addr(), "POST", "/r", &[], &body[..1024]).await;
        assert_eq!(resp.status, 200);
        resp.body_to_end().await;
        assert_eq!(mock.requests()[0].body.len(), 1024);
    })
    .await;
}

#[tokio::test]
async fn chunked_request_body_reaches_the_upstream_byte_identical() {
    bounded(async {
        let mock =
            MockUpstream::serve(Reply::stream("application/x-ndjson", vec![Step::send("{}\n"), Step::End]))
                .await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock)).start().await;
        let raw = b"{\"a\": \xE2\x82\xAC, \r\n \"b\": [1,2]}";
        let mut chunked = Vec::new();
        for part in raw.chunks(7) {
            chunked.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
            chunked.extend_from_slice(part);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let conn = Conn::connect(gw.addr()).await;
        let mut resp = conn
            .send(
                "POST",
                "/r/x",
                &[("Transfer-Encoding", "chunked"), ("Content-Type", "application/json")],
                &chunked,
            )
            .await;
        assert_bytes(&resp.body_to_end().await, b"data: {}\n\n");
        assert_bytes(&mock.requests()[0].body, raw);
    })
    .await;
}

#[tokio::test]
async fn upstream_base_path_and_query() {
    bounded(async {
        let mock =
            MockUpstream::serve(Reply::stream("application/x-ndjson", vec![Step::send("{}\n"), Step::End]))
                .await;
        let gw = GatewaySpec::new()
            .route(RouteSpec::new("r").upstream(&format!("{}/base/v1", mock.url())))
            .start()
            .await;
        for path in ["/r/x/y?q=1&r=%2F", "/r/z"] {
            let mut resp = get(gw.addr(), path).await;
            resp.body_to_end().await;
        }
        let targets: Vec<_> = mock.requests().into_iter().map(|r| r.target).collect();
        assert_eq!(targets, vec!["/base/v1/x/y?q=1&r=%2F", "/base/v1/z"]);

        let mock2 =
            MockUpstream::serve(Reply::stream("application/x-ndjson", vec![Step::send("{}\n"), Step::End]))
                .await;
        let gw2 = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock2)).start().await;
        let mut resp = get(gw2.addr(), "/r?x=1").await;
        resp.body_to_end().await;
        assert_eq!(mock2.requests()[0].target, "/?x=1");
    })
    .await;
}

#[tokio::test]
async fn passthrough_route_leaves_sse_untouched() {
    bounded(async {
        let chunks: [&[u8]; 3] = [b"data:x\r\n\r\n: ping\n", b"\ndata: y", b"\n\n"];
        let steps: Vec<Step> = chunks.iter().map(Step::send).chain([Step::End]).collect();
        let mock = MockUpstream::serve(Reply::stream("text/event-stream", steps)).await;
        let gw =
            GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).format("passthrough")).start().await;
        let mut resp = get(gw.addr(), "/r").await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-type"), Some("text/event-stream"));
        assert_bytes(&resp.body_to_end().await, &chunks.concat());
    })
    .await;
}

#[tokio::test]
async fn json_array_route_passes_error_statuses_through() {
    bounded(async {
        let body = b"[{\"error\": {\"code\": 400, \"message\": \"bad\"}}]";
        let mock = MockUpstream::serve(Reply::full(400, "application/json", body)).await;
        let gw =
            GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).format("json-array")).start().await;
        let mut resp = get(gw.addr(), "/r").await;
        assert_eq!(resp.status, 400);
        assert_eq!(resp.header("content-type"), Some("application/json"));
        assert_bytes(&resp.body_to_end().await, body);
    })
    .await;
}

#[tokio::test]
async fn h2c_upstream_reset_gives_error_event_and_clean_end() {
    bounded(async {
        let mock = MockUpstream::serve(Reply::stream(
            "application/x-ndjson",
            vec![Step::send("{\"a\":1}\n{\"b\""), Step::Sleep(50), Step::Reset],
        ))
        .await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock)).start().await;
        let mut resp = H2Conn::h2c(gw.addr()).await.request("GET", "/r", b"").await;
        assert_sse_head(&resp);
        let body = resp.body_to_end().await;
        let blocks = sse::parse_all(&body);
        assert_eq!(blocks.len(), 2, "\"{}\"", show(&body));
        assert!(body.starts_with(b"data: {\"a\":1}\n\nevent: error\n"), "\"{}\"", show(&body));
        sse::assert_error_event(&blocks[1], "upstream_reset");
        assert_eq!(resp.end(), Some(&End::Clean), "the h2 stream ends with END_STREAM, not a reset");
    })
    .await;
}

#[tokio::test]
async fn h2_streams_on_one_connection_are_independent() {
    bounded(async {
        let gate_b = Gate::new();
        let g = gate_b.clone();
        let mock = MockUpstream::start(move |req| {
            if req.target == "/a" {
                Reply::stream("text/event-stream", vec![Step::send("data: a\n\n"), Step::Wait(Gate::new())])
            } else {
                Reply::stream(
                    "text/event-stream",
                    vec![
                        Step::send("data: b1\n\n"),
                        Step::Wait(g.clone()),
                        Step::send("data: b2\n\n"),
                        Step::End,
                    ],
                )
            }
        })
        .await;
        // No heartbeats: a's upstream must be closed because a was reset, not because a write failed.
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).heartbeat("0s")).start().await;
        let conn = H2Conn::h2c(gw.addr()).await;
        let mut a = conn.request("GET", "/r/a", b"").await;
        let mut b = conn.request("GET", "/r/b", b"").await;
        assert_bytes(&a.next_event().await.unwrap(), b"data: a\n\n");
        assert_bytes(&b.next_event().await.unwrap(), b"data: b1\n\n");
        drop(a); // RST_STREAM for a only
        assert!(mock.wait_peer_closed(1, Duration::from_secs(2)).await, "a's upstream is closed");
        gate_b.open();
        let rest = String::from_utf8(b.body_to_end().await).unwrap().replace(": keepalive\n\n", "");
        assert_eq!(rest, "data: b2\n\n");
        assert_eq!(b.end(), Some(&End::Clean));
        // The connection still serves new streams.
        let mut c = conn.request("GET", "/r/a", b"").await;
        assert_bytes(&c.next_event().await.unwrap(), b"data: a\n\n");
    })
    .await;
}

#[tokio::test]
async fn after_a_client_disconnect_the_next_stream_is_clean() {
    bounded(async {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let mock = MockUpstream::start(move |_| {
            if c.fetch_add(1, Ordering::SeqCst) == 0 {
                // Half a message, then silence: the connection must not be reused.
                Reply::stream(
                    "application/x-ndjson",
                    vec![Step::send("{\"first\":1}\n{\"fir"), Step::Wait(Gate::new())],
                )
            } else {
                Reply::stream("application/x-ndjson", vec![Step::send("{\"second\":2}\n"), Step::End])
            }
        })
        .await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock)).start().await;
        let mut first = get(gw.addr(), "/r").await;
        assert_bytes(&first.next_event().await.unwrap(), b"data: {\"first\":1}\n\n");
        drop(first);
        assert!(mock.wait_peer_closed(1, Duration::from_secs(2)).await);
        let mut second = get(gw.addr(), "/r").await;
        assert_bytes(&second.body_to_end().await, b"data: {\"second\":2}\n\n");
        assert_eq!(mock.connections(), 2, "a new upstream connection for the second stream");
    })
    .await;
}

#[tokio::test]
async fn broken_upstream_heads_are_502_json() {
    bounded(async {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let mock = MockUpstream::start(move |_| match c.fetch_add(1, Ordering::SeqCst) {
            0 => Reply::raw(vec![Step::Reset]),
            1 => Reply::raw(vec![Step::Close]),
            _ => Reply::raw(vec![Step::send("NOT HTTP AT ALL\r\n\r\n"), Step::Close]),
        })
        .await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).heartbeat("5s")).start().await;
        for case in ["reset before head", "close before head", "garbage head"] {
            let mut resp = get(gw.addr(), "/r").await;
            assert_eq!(resp.status, 502, "{case}: {:?}", resp.headers);
            let body = resp.body_to_end().await;
            let v: serde_json::Value = serde_json::from_slice(&body)
                .unwrap_or_else(|e| panic!("{case}: not JSON ({e}): {}", show(&body)));
            let ty = v["error"]["type"].as_str().unwrap_or_default().to_string();
            assert!(ty.starts_with("upstream_"), "{case}: error type {ty:?}");
            assert_eq!(v["error"]["status"], 502, "{case}");
        }
    })
    .await;
}

#[tokio::test]
async fn expect_100_continue_post_like_curl() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    bounded(async {
        let mock =
            MockUpstream::serve(Reply::stream("application/x-ndjson", vec![Step::send("{}\n"), Step::End]))
                .await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock)).start().await;
        let body = vec![b'a'; 3000];
        let mut s = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
        let head = format!(
            "POST /r/x HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
             Expect: 100-continue\r\nAccept: text/event-stream\r\n\r\n",
            gw.addr(),
            body.len()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        // curl waits up to 1 s for `100 Continue`, then sends the body anyway.
        let mut got = Vec::new();
        let mut tmp = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, s.read(&mut tmp)).await {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&tmp[..n]);
            if got.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        assert!(
            got.is_empty() || got.starts_with(b"HTTP/1.1 100"),
            "only `100 Continue` (or nothing) before the body: \"{}\"",
            show(&got)
        );
        s.write_all(&body).await.unwrap();
        let t = Instant::now();
        loop {
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut tmp)).await.unwrap().unwrap();
            got.extend_from_slice(&tmp[..n]);
            if n == 0 || got.ends_with(b"0\r\n\r\n") || t.elapsed() > Duration::from_secs(5) {
                break;
            }
        }
        let text = String::from_utf8_lossy(&got);
        assert!(text.contains("200 OK") || text.contains("HTTP/1.1 200"), "\"{}\"", show(&got));
        assert!(text.contains("data: {}\n\n"), "\"{}\"", show(&got));
        assert_eq!(mock.requests()[0].body, body, "the body reached the upstream");
    })
    .await;
}

#[tokio::test]
async fn http10_client_gets_no_chunked_encoding() {
    bounded(async {
        let mock = MockUpstream::serve(Reply::stream(
            "application/x-ndjson",
            vec![Step::send("{\"a\":1}\n"), Step::Sleep(30), Step::send("{\"b\":2}\n"), Step::End],
        ))
        .await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock)).start().await;
        let raw = format!("GET /r HTTP/1.0\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n", gw.addr());
        let mut resp = Conn::connect(gw.addr()).await.send_raw(raw.as_bytes(), false).await;
        assert_eq!(resp.status, 200);
        assert_bytes(&resp.body_to_end().await, b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\n");
        // RFC 9112 6.1: a server MUST NOT send Transfer-Encoding to an HTTP/1.0 request (the body is
        // delimited by closing the connection instead).
        assert_eq!(resp.header("transfer-encoding"), None, "head: \"{}\"", show(&resp.raw_head));
    })
    .await;
}

#[tokio::test]
async fn h2_client_that_stops_reading_is_dropped() {
    bounded(async {
        let (mock, total) = flooding_upstream().await;
        let small = MockUpstream::serve(small_reply()).await;
        let gw = flood_gateway(&mock, &small).await;
        let conn = H2Conn::h2c(gw.addr()).await;
        for _ in 0..2 {
            conn.request("GET", "/w", b"").await.body_to_end().await;
        }
        let rss_before = rss_kib(gw.pid());
        let resp = conn.request("GET", "/r", b"").await; // the body is never polled: the window fills up
        assert_sse_head(&resp);
        let t0 = Instant::now();
        let mut peak = rss_before;
        while t0.elapsed() < Duration::from_secs(4) && mock.peer_closed() == 0 {
            peak = peak.max(rss_kib(gw.pid()));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let closed = mock.peer_closed() >= 1;
        let sent = mock.send_times().len();
        assert!(
            closed,
            "the gateway still holds the upstream {:?} after the h2 client stopped reading (write_timeout 1s); \
             the upstream wrote {sent} x 64 KiB; gateway log:\n{}",
            t0.elapsed(),
            gw.stderr()
        );
        assert!(sent < total, "nothing pushed back: the upstream wrote everything");
        let bound = STALLED_STREAM_KIB + H2_STREAM_WINDOW_KIB + NOISE_KIB;
        eprintln!("RSS {rss_before} KiB -> peak {peak} KiB (+{} KiB, bound {bound} KiB)", peak - rss_before);
        assert!(
            peak <= rss_before + bound,
            "gateway RSS grew from {rss_before} KiB to {peak} KiB (+{} KiB) for one stalled h2 stream; the \
             bound is {bound} KiB",
            peak - rss_before
        );
        drop(resp);
    })
    .await;
}

#[tokio::test]
async fn idle_timeout_is_reset_by_upstream_data() {
    bounded(async {
        let mut steps = Vec::new();
        for k in 0..8 {
            steps.push(Step::send(format!("{{\"k\":{k}}}\n")));
            steps.push(Step::Sleep(150));
        }
        steps.push(Step::End);
        let mock = MockUpstream::serve(Reply::stream("application/x-ndjson", steps)).await;
        let gw = GatewaySpec::new()
            .route(RouteSpec::new("r").upstream(&mock).idle_timeout("400ms").header_timeout("400ms"))
            .start()
            .await;
        let mut resp = get(gw.addr(), "/r").await;
        let body = resp.body_to_end().await;
        let expected: String = (0..8).map(|k| format!("data: {{\"k\":{k}}}\n\n")).collect();
        assert_bytes(&body, expected.as_bytes());
        assert_eq!(resp.end(), Some(&End::Clean));
    })
    .await;
}

#[tokio::test]
async fn max_duration_while_waiting_for_slow_headers() {
    bounded(async {
        let mock = MockUpstream::serve(
            Reply::stream("application/x-ndjson", vec![Step::End]).with_head_delay(Duration::from_secs(10)),
        )
        .await;
        let gw = GatewaySpec::new()
            .route(RouteSpec::new("r").upstream(&mock).max_duration("600ms").heartbeat("100ms"))
            .start()
            .await;
        let t0 = Instant::now();
        let mut resp = get(gw.addr(), "/r").await;
        assert_sse_head(&resp);
        let body = resp.body_to_end().await;
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "ended after {:?} (max_duration 600 ms)",
            t0.elapsed()
        );
        let blocks: Vec<_> = sse::parse_all(&body).into_iter().filter(|b| !b.is_heartbeat()).collect();
        assert_eq!(blocks.len(), 1, "\"{}\"", show(&body));
        sse::assert_error_event(&blocks[0], "max_duration");
        assert_eq!(resp.end(), Some(&End::Clean));
        assert!(mock.wait_peer_closed(1, Duration::from_secs(2)).await, "the upstream connection is closed");
    })
    .await;
}

#[tokio::test]
async fn a_refused_request_whose_body_never_ends_is_answered_and_closed() {
    // 404 (and 400, preflights) read at most 64 KiB / 1 s of a request body before answering: a client that
    // announces a body and trickles nothing cannot hold the connection at an unrouted path.
    bounded(async {
        let mock = MockUpstream::serve(Reply::full(200, "application/json", "{}")).await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock)).start().await;
        let started = Instant::now();
        let conn = Conn::connect(gw.addr()).await;
        let raw = b"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n0123456789";
        let mut resp = conn.send_raw(raw, false).await;
        assert_eq!(resp.status, 404);
        resp.body_to_end().await;
        assert_eq!(resp.end(), Some(&End::Clean), "the answer is complete, then the connection closes");
        assert_eq!(resp.header("connection"), Some("close"), "headers: {:?}", resp.headers);
        assert!(started.elapsed() < Duration::from_secs(3), "answered after {:?}", started.elapsed());
        assert!(mock.requests().is_empty());
    })
    .await;
}
