//! Errors before and after the response is committed: pass-through of upstream error statuses, JSON error
//! responses (404, 502, 504), and typed `event: error` blocks after every complete event.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use ssegate_tests::client::End;
use ssegate_tests::mock::{dead_upstream_url, Gate};
use ssegate_tests::sse::{assert_error_event, assert_error_json};
use ssegate_tests::{
    assert_bytes, assert_sse_head, bounded, expect_json_error, get, request, show, sse, MockUpstream, Reply,
    Step,
};
use ssegate_tests::{GatewaySpec, RouteSpec};

/// Reads the rest of a committed stream; asserts it is `expected_events` (exact bytes, heartbeats removed),
/// then exactly one `event: error` of type `ty`, then a clean end of the body. Returns the error status.
async fn expect_events_then_error(
    resp: &mut ssegate_tests::Response,
    expected_events: &[u8],
    ty: &str,
) -> u64 {
    let rest = resp.body_to_end().await;
    let text = String::from_utf8_lossy(&rest).to_string();
    let without_heartbeats = text.replace(": keepalive\n\n", "");
    let err_at = without_heartbeats
        .find("event: error\n")
        .unwrap_or_else(|| panic!("no `event: error` in \"{}\"", show(&rest)));
    assert_bytes(&without_heartbeats.as_bytes()[..err_at], expected_events);
    let blocks = sse::parse(&without_heartbeats.as_bytes()[err_at..]);
    assert_eq!(blocks.len(), 1, "exactly one block after the events: \"{}\"", show(&rest));
    assert!(
        without_heartbeats.ends_with("\n\n"),
        "the error event is complete and last: \"{}\"",
        show(&rest)
    );
    let status = assert_error_event(&blocks[0], ty);
    assert_eq!(resp.end(), Some(&End::Clean), "after the error event the chunked body ends cleanly");
    status
}

#[tokio::test]
async fn upstream_429_with_json_body_passes_through_unchanged() {
    bounded(async {
        let body = b"{\"error\": {\"message\": \"Rate limit reached\", \"type\": \"requests\"}}";
        let mock = MockUpstream::serve(
            Reply::full(429, "application/json; charset=utf-8", body).with_header("Retry-After", "20"),
        )
        .await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).heartbeat("2s")).start().await;
        let mut resp =
            request(gw.addr(), "POST", "/r/v1/chat", &[("Content-Type", "application/json")], b"{}").await;
        assert_eq!(resp.status, 429);
        assert_eq!(resp.header("content-type"), Some("application/json; charset=utf-8"));
        assert_eq!(resp.header("retry-after"), Some("20"));
        assert_bytes(&resp.body_to_end().await, body);
        assert_eq!(resp.end(), Some(&End::Clean));
    })
    .await;
}

#[tokio::test]
async fn upstream_500_on_a_streaming_content_type_passes_through() {
    bounded(async {
        let mock = MockUpstream::serve(
            Reply::stream("application/x-ndjson", vec![Step::send("{\"error\":\"boom\"}\n"), Step::End])
                .with_status(500),
        )
        .await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).heartbeat("2s")).start().await;
        let mut resp = get(gw.addr(), "/r").await;
        assert_eq!(resp.status, 500);
        assert_eq!(resp.header("content-type"), Some("application/x-ndjson"));
        assert_bytes(&resp.body_to_end().await, b"{\"error\":\"boom\"}\n");
    })
    .await;
}

#[tokio::test]
async fn upstream_reset_mid_stream_gives_earlier_events_then_error() {
    bounded(async {
        let mock = MockUpstream::serve(Reply::stream(
            "application/x-ndjson",
            vec![Step::send("{\"a\":1}\n{\"b\":2}\n{\"c\""), Step::Sleep(50), Step::Reset],
        ))
        .await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock)).start().await;
        let mut resp = get(gw.addr(), "/r").await;
        assert_sse_head(&resp);
        expect_events_then_error(&mut resp, b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\n", "upstream_reset")
            .await;
    })
    .await;
}

#[tokio::test]
async fn upstream_close_without_chunked_terminator_is_a_reset() {
    bounded(async {
        let mock = MockUpstream::serve(Reply::stream(
            "text/event-stream",
            vec![Step::send("data: a\n\ndata: b\n\nda"), Step::Sleep(50), Step::Close],
        ))
        .await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock)).start().await;
        let mut resp = get(gw.addr(), "/r").await;
        assert_sse_head(&resp);
        expect_events_then_error(&mut resp, b"data: a\n\ndata: b\n\n", "upstream_reset").await;
    })
    .await;
}

#[tokio::test]
async fn idle_timeout_gives_upstream_idle() {
    bounded(async {
        let gate = Gate::new(); // never opened
        let mock = MockUpstream::serve(Reply::stream(
            "application/x-ndjson",
            vec![Step::send("{\"a\":1}\n"), Step::Wait(gate)],
        ))
        .await;
        let gw = GatewaySpec::new()
            .route(RouteSpec::new("r").upstream(&mock).idle_timeout("500ms").heartbeat("200ms"))
            .start()
            .await;
        let t0 = Instant::now();
        let mut resp = get(gw.addr(), "/r").await;
        assert_sse_head(&resp);
        expect_events_then_error(&mut resp, b"data: {\"a\":1}\n\n", "upstream_idle").await;
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(450) && took < Duration::from_millis(1500),
            "idle after {took:?}"
        );
        assert!(
            mock.wait_peer_closed(1, Duration::from_secs(2)).await,
            "the idle upstream connection is closed"
        );
    })
    .await;
}

#[tokio::test]
async fn max_duration_ends_the_stream() {
    bounded(async {
        let mut steps = Vec::new();
        for _ in 0..100 {
            steps.push(Step::send("data: tick\n\n"));
            steps.push(Step::Sleep(100));
        }
        steps.push(Step::End);
        let mock = MockUpstream::serve(Reply::stream("text/event-stream", steps)).await;
        let gw =
            GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).max_duration("700ms")).start().await;
        let t0 = Instant::now();
        let mut resp = get(gw.addr(), "/r").await;
        let rest = resp.body_to_end().await;
        let took = t0.elapsed();
        assert!(took < Duration::from_secs(2), "max_duration (700 ms) ended the stream after {took:?}");
        let blocks = sse::parse_all(&rest);
        let (last, events) = blocks.split_last().unwrap_or_else(|| panic!("no blocks: \"{}\"", show(&rest)));
        assert!(events.len() >= 3, "ticks before the end: \"{}\"", show(&rest));
        assert!(events.iter().all(|b| b.data.as_deref() == Some("tick")), "\"{}\"", show(&rest));
        assert_error_event(last, "max_duration");
        assert_eq!(resp.end(), Some(&End::Clean));
    })
    .await;
}

#[tokio::test]
async fn unknown_route_is_404_json() {
    bounded(async {
        let mock = MockUpstream::serve(Reply::full(200, "application/json", "{}")).await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock)).start().await;
        for path in ["/nope", "/rx", "/"] {
            let mut resp = get(gw.addr(), path).await;
            expect_json_error(&mut resp, 404, "not_found").await;
        }
        assert_eq!(mock.requests().len(), 0, "nothing reaches the upstream");
    })
    .await;
}

#[tokio::test]
async fn dead_upstream_is_502_json_without_the_upstream_address() {
    bounded(async {
        let url = dead_upstream_url();
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&url).heartbeat("5s")).start().await;
        let mut resp = get(gw.addr(), "/r").await;
        assert_eq!(resp.status, 502);
        let body = resp.body_to_end().await;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_error_json(&v, "upstream_connect");
        assert_eq!(v["error"]["message"], "the upstream refused the connection");
        // The detail (address, pingora's error chain) is for the operator's log only.
        let port = url.rsplit(':').next().unwrap();
        assert!(gw.stderr().contains(&format!("127.0.0.1:{port}")), "log: {}", gw.stderr());
    })
    .await;
}

#[tokio::test]
async fn header_timeout_before_commit_is_504_json() {
    bounded(async {
        let mock = MockUpstream::serve(
            Reply::stream("application/x-ndjson", vec![Step::End]).with_head_delay(Duration::from_secs(10)),
        )
        .await;
        let gw = GatewaySpec::new()
            .route(RouteSpec::new("r").upstream(&mock).header_timeout("300ms").heartbeat("5s"))
            .start()
            .await;
        let t0 = Instant::now();
        let mut resp = get(gw.addr(), "/r").await;
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "504 after {:?} (header_timeout 300 ms)",
            t0.elapsed()
        );
        expect_json_error(&mut resp, 504, "upstream_timeout").await;
    })
    .await;
}

#[tokio::test]
async fn header_timeout_after_commit_is_an_error_event() {
    bounded(async {
        let mock = MockUpstream::serve(
            Reply::stream("application/x-ndjson", vec![Step::End]).with_head_delay(Duration::from_secs(10)),
        )
        .await;
        let gw = GatewaySpec::new()
            .route(RouteSpec::new("r").upstream(&mock).header_timeout("600ms").heartbeat("100ms"))
            .start()
            .await;
        let mut resp = get(gw.addr(), "/r").await;
        assert_sse_head(&resp);
        expect_events_then_error(&mut resp, b"", "upstream_timeout").await;
    })
    .await;
}

#[tokio::test]
async fn upstream_error_status_after_commit_is_an_error_event() {
    bounded(async {
        let mock = MockUpstream::serve(
            Reply::full(500, "application/json", "{\"error\":\"overloaded\"}")
                .with_head_delay(Duration::from_millis(600)),
        )
        .await;
        let gw =
            GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).heartbeat("100ms")).start().await;
        let mut resp = get(gw.addr(), "/r").await;
        assert_sse_head(&resp);
        let status = expect_events_then_error(&mut resp, b"", "upstream_status").await;
        assert_eq!(status, 500, "the error event carries the upstream's status");
    })
    .await;
}

#[tokio::test]
async fn decode_error_close_policy() {
    bounded(async {
        let mock = MockUpstream::serve(Reply::stream(
            "application/x-ndjson",
            vec![Step::send("{\"a\":1}\n{bad json\n{\"c\":3}\n"), Step::End],
        ))
        .await;
        let gw = GatewaySpec::new()
            .route(RouteSpec::new("r").upstream(&mock).on_decode_error("close"))
            .start()
            .await;
        let mut resp = get(gw.addr(), "/r").await;
        expect_events_then_error(&mut resp, b"data: {\"a\":1}\n\n", "decode").await;
    })
    .await;
}

#[tokio::test]
async fn decode_error_skip_policy() {
    bounded(async {
        let mock = MockUpstream::serve(Reply::stream(
            "application/x-ndjson",
            vec![Step::send("{\"a\":1}\n{bad json\n{\"c\":3}\n"), Step::End],
        ))
        .await;
        let gw = GatewaySpec::new()
            .route(RouteSpec::new("r").upstream(&mock).on_decode_error("skip"))
            .start()
            .await;
        let mut resp = get(gw.addr(), "/r").await;
        assert_bytes(&resp.body_to_end().await, b"data: {\"a\":1}\n\ndata: {\"c\":3}\n\n");
        assert_eq!(resp.end(), Some(&End::Clean));
    })
    .await;
}

#[tokio::test]
async fn oversized_event_is_skipped() {
    bounded(async {
        let big = format!("{{\"big\":\"{}\"}}\n", "x".repeat(3000));
        let mock = MockUpstream::serve(Reply::stream(
            "application/x-ndjson",
            vec![Step::send("{\"a\":1}\n"), Step::send(&big), Step::send("{\"c\":3}\n"), Step::End],
        ))
        .await;
        let gw = GatewaySpec::new()
            .route(RouteSpec::new("r").upstream(&mock).max_event_size("1KiB"))
            .start()
            .await;
        let mut resp = get(gw.addr(), "/r").await;
        assert_bytes(&resp.body_to_end().await, b"data: {\"a\":1}\n\ndata: {\"c\":3}\n\n");
    })
    .await;
}

#[tokio::test]
async fn no_done_event_after_an_error() {
    bounded(async {
        let mock = MockUpstream::serve(Reply::stream(
            "application/x-ndjson",
            vec![Step::send("{\"a\":1}\n"), Step::Sleep(30), Step::Reset],
        ))
        .await;
        let gw = GatewaySpec::new()
            .route(RouteSpec::new("r").upstream(&mock).done_event(Some("end"), "[DONE]"))
            .start()
            .await;
        let mut resp = get(gw.addr(), "/r").await;
        expect_events_then_error(&mut resp, b"data: {\"a\":1}\n\n", "upstream_reset").await;
    })
    .await;
}

#[tokio::test]
async fn error_json_has_the_documented_field_order() {
    // The documented shape is {"error":{"type":..,"message":..,"status":..,"request_id":..}} (type, message,
    // status first; request_id appended when it came). JSON parsers do not care about
    // key order, but logs, docs and byte-comparing clients do: this test checks the shape apart from the
    // semantic tests above.
    bounded(async {
        let gw = GatewaySpec::new()
            .route(RouteSpec::new("r").upstream(&dead_upstream_url()).heartbeat("5s"))
            .start()
            .await;
        let mut resp = get(gw.addr(), "/r").await;
        let body = resp.body_to_end().await;
        assert!(
            body.starts_with(b"{\"error\":{\"type\":\"upstream_connect\",\"message\":\""),
            "502 body: {}",
            show(&body)
        );
        let id = resp.header("x-request-id").unwrap_or_else(|| panic!("no x-request-id"));
        let tail = format!("\",\"status\":502,\"request_id\":\"{id}\"}}}}");
        assert!(body.ends_with(tail.as_bytes()), "502 body: {}", show(&body));

        let mock = MockUpstream::serve(Reply::stream(
            "application/x-ndjson",
            vec![Step::send("{\"a\":1}\n"), Step::Sleep(30), Step::Reset],
        ))
        .await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock)).start().await;
        let mut resp = get(gw.addr(), "/r").await;
        let body = resp.body_to_end().await;
        let ev =
            body.strip_prefix(b"data: {\"a\":1}\n\n".as_slice()).unwrap_or_else(|| panic!("{}", show(&body)));
        assert!(
            ev.starts_with(b"event: error\ndata: {\"error\":{\"type\":\"upstream_reset\",\"message\":\""),
            "error event: {}",
            show(ev)
        );
        let id = resp.header("x-request-id").unwrap_or_else(|| panic!("no x-request-id"));
        let tail = format!("\",\"status\":502,\"request_id\":\"{id}\"}}}}\n\n");
        assert!(ev.ends_with(tail.as_bytes()), "error event: {}", show(ev));
    })
    .await;
}

#[tokio::test]
async fn invalid_utf8_line_is_skipped_or_closes() {
    bounded(async {
        let mock = MockUpstream::serve(Reply::stream(
            "text/plain",
            vec![Step::send(b"good\n\xFF\xFEbad\nafter\n"), Step::End],
        ))
        .await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).format("lines")).start().await;
        let mut resp = get(gw.addr(), "/r").await;
        assert_bytes(&resp.body_to_end().await, b"data: good\n\ndata: after\n\n");

        let gw = GatewaySpec::new()
            .route(RouteSpec::new("r").upstream(&mock).format("lines").on_decode_error("close"))
            .start()
            .await;
        let mut resp = get(gw.addr(), "/r").await;
        expect_events_then_error(&mut resp, b"data: good\n\n", "decode").await;
    })
    .await;
}

#[tokio::test]
async fn unrecoverable_json_array_error_closes_even_with_skip() {
    bounded(async {
        let mock = MockUpstream::serve(Reply::stream(
            "application/json",
            vec![Step::send("[{\"a\":1},\n{\"b\":2}"), Step::send(" garbage ]{\"c\":3}]"), Step::End],
        ))
        .await;
        let gw =
            GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).format("json-array")).start().await;
        let mut resp = get(gw.addr(), "/r").await;
        expect_events_then_error(&mut resp, b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\n", "decode").await;
    })
    .await;
}
