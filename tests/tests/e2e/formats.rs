//! Every format end to end through the real binary, with adversarial upstream chunking: a message split
//! across writes, many messages in one write, multibyte UTF-8 split across writes, CRLF, no final newline.
//! The client must receive exactly the expected SSE bytes, whether the upstream writes are spread out
//! (each one read separately), sent back to back, or sent one byte per write.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ssegate_tests::client::End;
use ssegate_tests::sse;
use ssegate_tests::{
    assert_bytes, assert_sse_head, bounded, get, GatewaySpec, MockUpstream, Reply, RouteSpec, Step,
};

/// Serves `chunks` as one chunked response: on `/slow` with 30 ms between writes, on `/fast` back to back,
/// on `/bytes` one byte per write (and HTTP chunk) with 1 ms between. Checks the SSE head, the exact body
/// and a clean end for each.
async fn check_format(content_type: &str, route: RouteSpec, chunks: &[&[u8]], expected: &[u8]) {
    let slow: Vec<Step> =
        chunks.iter().flat_map(|c| [Step::send(c), Step::Sleep(30)]).chain([Step::End]).collect();
    let fast: Vec<Step> = chunks.iter().map(Step::send).chain([Step::End]).collect();
    let bytes: Vec<Step> =
        chunks.concat().iter().flat_map(|b| [Step::send([*b]), Step::Sleep(1)]).chain([Step::End]).collect();
    let ct = content_type.to_string();
    let mock = MockUpstream::start(move |req| {
        let steps = match req.target.as_str() {
            "/slow" => slow.clone(),
            "/bytes" => bytes.clone(),
            _ => fast.clone(),
        };
        Reply::stream(&ct, steps)
    })
    .await;
    let gw = GatewaySpec::new().route(route.upstream(&mock)).start().await;
    for path in ["/r/slow", "/r/fast", "/r/bytes"] {
        let mut resp = get(gw.addr(), path).await;
        assert_sse_head(&resp);
        let body = resp.body_to_end().await;
        assert!(
            body == expected,
            "{path}: bytes differ\n observed: \"{}\"\n expected: \"{}\"",
            ssegate_tests::show(&body),
            ssegate_tests::show(expected)
        );
        assert_eq!(resp.end(), Some(&End::Clean), "{path}: the chunked body must be terminated");
    }
}

#[tokio::test]
async fn ndjson_auto() {
    bounded(check_format(
        "application/x-ndjson",
        RouteSpec::new("r"),
        &[
            b"{\"a\":1}\n{\"b\":",
            b"2}\n\n{\"c\":\"h\xE2",
            b"\x82\xAC\"}\r\n{\"d\": [1, 2,  3],  \"e\" : {\"f\":null}}\n",
            b"{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n",
            b"{\"s\":\"a  b\\n c\"}",
        ],
        b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: {\"c\":\"h\xE2\x82\xAC\"}\n\n\
data: {\"d\":[1,2,3],\"e\":{\"f\":null}}\n\n\
data: {\"n\":1}\n\ndata: {\"n\":2}\n\ndata: {\"n\":3}\n\n\
data: {\"s\":\"a  b\\n c\"}\n\n",
    ))
    .await;
}

#[tokio::test]
async fn ndjson_other_content_types_and_fixed_format() {
    bounded(async {
        for ct in ["application/jsonl", "application/x-jsonlines", "application/x-ndjson; charset=utf-8"] {
            check_format(
                ct,
                RouteSpec::new("r"),
                &[b"{\"a\": 1}\r\n{\"b\"", b":2}"],
                b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\n",
            )
            .await;
        }
        // A fixed format applies whatever the Content-Type says.
        check_format(
            "text/plain",
            RouteSpec::new("r").format("ndjson"),
            &[b"{\"a\": 1}\n", b"{\"b\":2}\n"],
            b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\n",
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn sse_reencoded() {
    bounded(check_format(
        "text/event-stream",
        RouteSpec::new("r"),
        &[
            b"\xEF\xBB\xBFdata:hel",
            b"lo\n\nevent: upd",
            b"ate\r\ndata: x\r\ndata:  y\r\n\r",
            b"\n: a comment\n\ndata: multi\xE2\x82",
            b"\xAC end\n\ndata: a\n\ndata: b\n\nunknown: field\ndata\n\n",
            b"id: 7\ndata: last\n\ndata: unfinished",
        ],
        b"data: hello\n\nevent: update\ndata: x\ndata:  y\n\ndata: multi\xE2\x82\xAC end\n\n\
data: a\n\ndata: b\n\ndata: \n\nid: 7\ndata: last\n\n",
    ))
    .await;
}

#[tokio::test]
async fn sse_cr_only_line_ends() {
    bounded(check_format(
        "text/event-stream; charset=utf-8",
        RouteSpec::new("r"),
        &[b"data: one\r\r", b"data: two\rdata: three\r", b"\r"],
        b"data: one\n\ndata: two\ndata: three\n\n",
    ))
    .await;
}

#[tokio::test]
async fn sse_forward_comments() {
    bounded(async {
        let mock = MockUpstream::serve(Reply::stream(
            "text/event-stream",
            vec![Step::send(": ping\n\ndata: x\n\n"), Step::End],
        ))
        .await;
        let gw = GatewaySpec::new()
            .route(RouteSpec::new("r").upstream(&mock).forward_comments(true))
            .start()
            .await;
        let mut resp = get(gw.addr(), "/r").await;
        assert_sse_head(&resp);
        let body = resp.body_to_end().await;
        let blocks = sse::parse(&body);
        assert!(
            blocks.iter().any(|b| b.comments.iter().any(|c| c.trim() == "ping")),
            "the upstream comment is forwarded: \"{}\"",
            ssegate_tests::show(&body)
        );
        assert!(body.ends_with(b"data: x\n\n"), "then the event: \"{}\"", ssegate_tests::show(&body));
    })
    .await;
}

#[tokio::test]
async fn json_stream_auto() {
    bounded(check_format(
        "application/stream+json",
        RouteSpec::new("r"),
        &[
            b"{\"a\": 1}{\"b\"",
            b":2}\n\n[1,\n 2]",
            b" {\"c\":\"\xE2\x82",
            b"\xAC\"}\r\n{\"d\":\"}{\"}{\"e\":[{\"f\":\"]\"}]}",
        ],
        b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [1,2]\n\ndata: {\"c\":\"\xE2\x82\xAC\"}\n\n\
data: {\"d\":\"}{\"}\n\ndata: {\"e\":[{\"f\":\"]\"}]}\n\n",
    ))
    .await;
}

#[tokio::test]
async fn json_seq_auto() {
    bounded(check_format(
        "application/json-seq",
        RouteSpec::new("r"),
        &[b"\x1E{\"a\":1}\n\x1E{\"b\"", b": 2}\n", b"\x1E[1, \"\xE2\x82", b"\xAC\"]\n\x1E{\"c\":3}\n\x1E{\"d\":4}\n"],
        b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [1,\"\xE2\x82\xAC\"]\n\ndata: {\"c\":3}\n\ndata: {\"d\":4}\n\n",
    ))
    .await;
}

#[tokio::test]
async fn json_array_gemini_style() {
    bounded(check_format(
        "application/json; charset=UTF-8",
        RouteSpec::new("r").format("json-array"),
        &[
            b"[{\n  \"candidates\": [\n    {\n      \"text\": \"Hel",
            b"lo \xE2\x82",
            b"\xAC\"\n    }\n  ]\n}\n,\r\n{\"n\": 2}",
            b",{\"n\":3},{\"n\":4}]",
        ],
        b"data: {\"candidates\":[{\"text\":\"Hello \xE2\x82\xAC\"}]}\n\ndata: {\"n\":2}\n\ndata: {\"n\":3}\n\n\
data: {\"n\":4}\n\n",
    ))
    .await;
}

#[tokio::test]
async fn lines_format() {
    bounded(check_format(
        "text/plain",
        RouteSpec::new("r").format("lines"),
        &[b"hello\nwor", b"ld\r", b"\nthird \xE2\x82", b"\xAC\nfour\nfive\n", b"last"],
        b"data: hello\n\ndata: world\n\ndata: third \xE2\x82\xAC\n\ndata: four\n\ndata: five\n\ndata: last\n\n",
    ))
    .await;
}

#[tokio::test]
async fn chunks_format_keeps_utf8_whole() {
    // One event per upstream chunk: only the spread-out variant has well-defined chunks.
    bounded(async {
        let mock = MockUpstream::serve(Reply::stream(
            "text/plain",
            vec![
                Step::send("abc"),
                Step::Sleep(60),
                Step::send(b"d\xE2\x82"),
                Step::Sleep(60),
                Step::send(b"\xACe"),
                Step::Sleep(60),
                Step::End,
            ],
        ))
        .await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).format("chunks")).start().await;
        let mut resp = get(gw.addr(), "/r").await;
        assert_sse_head(&resp);
        assert_bytes(&resp.body_to_end().await, b"data: abc\n\ndata: d\n\ndata: \xE2\x82\xACe\n\n");
        assert_eq!(resp.end(), Some(&End::Clean));
    })
    .await;
}

#[tokio::test]
async fn event_field_names_events() {
    bounded(check_format(
        "application/x-ndjson",
        RouteSpec::new("r").event_field("type"),
        &[b"{\"type\":\"delta\",\"v\":1}\n{\"v\":2}\n{\"type\":\"done\"}\n"],
        b"event: delta\ndata: {\"type\":\"delta\",\"v\":1}\n\ndata: {\"v\":2}\n\nevent: done\ndata: {\"type\":\"done\"}\n\n",
    ))
    .await;
}

#[tokio::test]
async fn non_streaming_json_on_auto_route_passes_through() {
    bounded(async {
        let body: &[u8] = b"{\n  \"id\": \"x\",\n  \"choices\": [ { \"text\": \"h\xC3\xA9\" } ]\n}\n";
        let mock = MockUpstream::serve(Reply::full(200, "application/json", body)).await;
        // Heartbeats (and so early commit) only after 5 s: the upstream's headers always come first.
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).heartbeat("5s")).start().await;
        let mut resp = ssegate_tests::request(gw.addr(), "GET", "/r/v1/thing", &[], b"").await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-type"), Some("application/json"));
        assert_bytes(&resp.body_to_end().await, body);
        assert_eq!(resp.end(), Some(&End::Clean));
    })
    .await;
}

#[tokio::test]
async fn non_streaming_json_on_fixed_format_routes_passes_through() {
    // `stream: false` chat calls, `/v1/models` or Ollama's `/api/tags` on an sse / ndjson / lines route:
    // the JSON answer reaches the client unchanged instead of being read as a stream.
    bounded(async {
        let body: &[u8] = b"{\n  \"object\": \"list\",\n  \"data\": [ { \"id\": \"m\xC3\xA9\" } ]\n}\n";
        for format in ["sse", "ndjson", "lines", "chunks", "json-seq"] {
            let mock = MockUpstream::serve(Reply::full(200, "application/json; charset=utf-8", body)).await;
            let gw = GatewaySpec::new()
                .route(RouteSpec::new("r").upstream(&mock).format(format).heartbeat("5s"))
                .start()
                .await;
            let mut resp = ssegate_tests::request(gw.addr(), "GET", "/r/v1/models", &[], b"").await;
            assert_eq!(resp.status, 200, "{format}");
            assert_eq!(resp.header("content-type"), Some("application/json; charset=utf-8"), "{format}");
            assert_bytes(&resp.body_to_end().await, body);
            assert_eq!(resp.end(), Some(&End::Clean), "{format}");
        }
    })
    .await;
}

#[tokio::test]
async fn unknown_stream_type_passes_through_untouched() {
    bounded(async {
        let mock = MockUpstream::serve(Reply::stream(
            "text/plain; charset=utf-8",
            vec![
                Step::send("data: not sse\r\n"),
                Step::Sleep(30),
                Step::send(b"\xE2\x82"),
                Step::send(b"\xAC"),
                Step::End,
            ],
        ))
        .await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock)).start().await;
        let mut resp = ssegate_tests::request(gw.addr(), "GET", "/r", &[], b"").await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-type"), Some("text/plain; charset=utf-8"));
        assert_bytes(&resp.body_to_end().await, b"data: not sse\r\n\xE2\x82\xAC");
        assert_eq!(resp.end(), Some(&End::Clean));
    })
    .await;
}

#[tokio::test]
async fn content_length_and_close_delimited_upstream_bodies_end_cleanly() {
    bounded(async {
        use ssegate_tests::mock::Framing;
        for framing in [Framing::ContentLength, Framing::CloseDelimited] {
            let mock = MockUpstream::serve(
                Reply::stream(
                    "text/event-stream",
                    vec![Step::send("data: a\n\nda"), Step::Sleep(30), Step::send("ta: b\n\n"), Step::End],
                )
                .with_framing(framing),
            )
            .await;
            let gw = GatewaySpec::new()
                .route(RouteSpec::new("r").upstream(&mock).done_event(None, "[DONE]"))
                .start()
                .await;
            let mut resp = get(gw.addr(), "/r").await;
            assert_sse_head(&resp);
            let body = resp.body_to_end().await;
            assert!(
                body == b"data: a\n\ndata: b\n\ndata: [DONE]\n\n",
                "{framing:?}: \"{}\"",
                ssegate_tests::show(&body)
            );
            assert_eq!(resp.end(), Some(&End::Clean), "{framing:?}");
        }
    })
    .await;
}
