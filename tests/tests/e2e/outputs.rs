//! NDJSON output: a client whose `Accept` prefers `application/x-ndjson` on a route whose `outputs` list
//! `ndjson` gets one JSON value per line, flushed per message, with `Vary: Accept`; everything else still
//! gets SSE.

use ssegate_tests::client::End;
use ssegate_tests::gateway::Toml;
use ssegate_tests::{
    assert_bytes, assert_sse_head, bounded, get, request, GatewaySpec, MockUpstream, Reply, RouteSpec, Step,
};

const NDJSON: &str = "application/x-ndjson";

fn upstream_ndjson(
    steps: Vec<Step>,
) -> impl Fn(&ssegate_tests::RecordedRequest) -> Reply + Send + Sync + 'static {
    move |_| Reply::stream(NDJSON, steps.clone())
}

fn both() -> Toml {
    Toml::strs(["sse", "ndjson"])
}

async fn ask_ndjson(addr: std::net::SocketAddr, path: &str) -> ssegate_tests::Response {
    request(addr, "GET", path, &[("Accept", "application/x-ndjson")], b"").await
}

#[tokio::test]
async fn ndjson_when_asked_and_listed_sse_otherwise() {
    bounded(async {
        let steps = vec![Step::send("{\"a\": 1}\n{\"b\""), Step::Sleep(20), Step::send(":2}\n"), Step::End];
        let mock = MockUpstream::start(upstream_ndjson(steps)).await;
        let gw = GatewaySpec::new()
            .route(
                RouteSpec::new("r").upstream(&mock).set("outputs", both()).done_event(Some("end"), "[DONE]"),
            )
            .route(RouteSpec::new("s").upstream(&mock))
            .start()
            .await;

        let mut resp = ask_ndjson(gw.addr(), "/r/x").await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-type"), Some(NDJSON), "{:?}", resp.headers);
        assert_eq!(resp.header("vary"), Some("Accept"), "{:?}", resp.headers);
        assert_eq!(resp.header("cache-control"), Some("no-cache, no-transform"));
        let body = resp.body_to_end().await;
        assert_bytes(&body, b"{\"a\":1}\n{\"b\":2}\n{\"event\":\"end\",\"data\":\"[DONE]\"}\n");
        assert_eq!(resp.end(), Some(&End::Clean));
        for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            serde_json::from_slice::<serde_json::Value>(line).expect("every line is JSON");
        }

        // The same route without an Accept for NDJSON: SSE, still `Vary: Accept`.
        let mut resp = get(gw.addr(), "/r/x").await;
        assert_sse_head(&resp);
        assert_eq!(resp.header("vary"), Some("Accept"), "{:?}", resp.headers);
        assert_bytes(
            &resp.body_to_end().await,
            b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\nevent: end\ndata: [DONE]\n\n",
        );

        // A route that does not list ndjson: SSE whatever the client asks, no Vary.
        let mut resp = ask_ndjson(gw.addr(), "/s/x").await;
        assert_sse_head(&resp);
        assert_eq!(resp.header("vary"), None, "{:?}", resp.headers);
        assert_bytes(&resp.body_to_end().await, b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\n");
    })
    .await;
}

#[tokio::test]
async fn an_upstream_failure_is_a_json_error_line_after_the_events() {
    bounded(async {
        let steps = vec![Step::send("{\"a\":1}\n"), Step::Sleep(50), Step::Reset];
        let mock = MockUpstream::start(upstream_ndjson(steps)).await;
        let gw = GatewaySpec::new()
            .route(RouteSpec::new("r").upstream(&mock).set("outputs", both()))
            .start()
            .await;
        let mut resp = ask_ndjson(gw.addr(), "/r/x").await;
        assert_eq!(resp.header("content-type"), Some(NDJSON));
        let body = resp.body_to_end().await;
        let text = String::from_utf8(body).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text:?}");
        assert_eq!(lines[0], "{\"a\":1}");
        let err: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(err["error"]["type"], "upstream_reset", "{text}");
        assert_eq!(err["error"]["status"], 502, "{text}");
        assert!(text.ends_with('\n'), "{text:?}");
    })
    .await;
}

#[tokio::test]
async fn named_events_are_objects_and_heartbeats_are_empty_lines_only_when_configured() {
    bounded(async {
        let sse = "event: delta\ndata: {\"t\":\"x\"}\n\ndata: plain text\n\n";
        let steps = vec![Step::Sleep(450), Step::send(sse), Step::End];
        let mock = MockUpstream::start(move |_| Reply::stream("text/event-stream", steps.clone())).await;
        let route = |name: &str, beats: bool| {
            RouteSpec::new(name)
                .upstream(&mock)
                .set("outputs", both())
                .heartbeat("100ms")
                .set("ndjson_heartbeats", beats)
        };
        let gw = GatewaySpec::new().route(route("quiet", false)).route(route("beats", true)).start().await;
        let expected = "{\"event\":\"delta\",\"data\":{\"t\":\"x\"}}\n{\"data\":\"plain text\"}\n";

        let mut resp = ask_ndjson(gw.addr(), "/quiet/x").await;
        assert_eq!(resp.header("content-type"), Some(NDJSON));
        assert_bytes(&resp.body_to_end().await, expected.as_bytes());

        let mut resp = ask_ndjson(gw.addr(), "/beats/x").await;
        assert_eq!(resp.header("content-type"), Some(NDJSON));
        let body = String::from_utf8(resp.body_to_end().await).unwrap();
        let blanks = body.len() - body.trim_start_matches('\n').len();
        assert!(blanks >= 2, "heartbeat lines before the events: {body:?}");
        assert_eq!(body.trim_start_matches('\n'), expected);
    })
    .await;
}
