//! Provider presets (issue 15): an Anthropic-shaped stream through the gateway; its usage in the metrics
//! and the access log; a stream cut before `message_stop` ends with `upstream_truncated`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ssegate_tests::metrics::Scrape;
use ssegate_tests::{bounded, get, show, sse, MockUpstream, Reply, Step};
use ssegate_tests::{GatewaySpec, RouteSpec};

const EVENTS: &str = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-test-1\",\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":15}}\n\n";
const STOP: &str = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

fn tokens(s: &Scrape, kind: &str) -> f64 {
    s.value("ssegate_tokens_total", &[("route", "r"), ("kind", kind)])
}

#[tokio::test]
async fn anthropic_usage_reaches_metrics_and_the_access_log() {
    bounded(async {
        let steps = vec![Step::send(EVENTS), Step::Sleep(20), Step::send(STOP), Step::End];
        let mock = MockUpstream::serve(Reply::stream("text/event-stream", steps)).await;
        let gw = GatewaySpec::new()
            .route(RouteSpec::new("r").upstream(&mock).set("provider", "anthropic"))
            .args(["--log-format", "json"])
            .start()
            .await;
        // Pre-created at 0 for a route with a provider.
        let s = Scrape::fetch(gw.admin_addr()).await;
        assert!(s.has("ssegate_tokens_total", &[("route", "r"), ("kind", "input")]), "{}", s.text);
        assert_eq!(tokens(&s, "output"), 0.0);

        let mut resp = get(gw.addr(), "/r").await;
        let body = resp.body_to_end().await;
        let text = String::from_utf8_lossy(&body).replace(": keepalive\n\n", "");
        assert_eq!(text, format!("{EVENTS}{STOP}"), "{}", show(&body));

        let s = Scrape::until(gw.admin_addr(), |s| tokens(s, "output") == 15.0).await;
        assert_eq!((tokens(&s, "input"), tokens(&s, "output")), (25.0, 15.0));
        let lines = gw.access_lines(1).await;
        let line = &lines[0];
        assert_eq!(line["outcome"], "completed", "{line}");
        assert_eq!((line["input_tokens"].as_u64(), line["output_tokens"].as_u64()), (Some(25), Some(15)));
        assert_eq!(line["model"], "claude-test-1");
    })
    .await;
}

#[tokio::test]
async fn anthropic_stream_cut_before_message_stop_is_truncated() {
    bounded(async {
        let steps = vec![Step::send(EVENTS), Step::End];
        let mock = MockUpstream::serve(Reply::stream("text/event-stream", steps)).await;
        let gw = GatewaySpec::new()
            .route(RouteSpec::new("r").upstream(&mock).set("provider", "anthropic"))
            .args(["--log-format", "json"])
            .start()
            .await;
        let mut resp = get(gw.addr(), "/r").await;
        let body = resp.body_to_end().await;
        let text = String::from_utf8_lossy(&body).replace(": keepalive\n\n", "");
        assert!(text.starts_with(EVENTS), "{}", show(&body));
        let blocks = sse::parse(&text.as_bytes()[EVENTS.len()..]);
        assert_eq!(blocks.len(), 1, "one error event after the events: {}", show(&body));
        let rest = &text[EVENTS.len()..];
        assert!(
            rest.starts_with("event: error\ndata: {\"error\":{\"type\":\"upstream_truncated\""),
            "{rest}"
        );

        let s = Scrape::until(gw.admin_addr(), |s| {
            // Counted one after another (the error when it is sent, the rest when the request ends).
            s.value("ssegate_upstream_errors_total", &[("route", "r"), ("kind", "upstream_truncated")]) == 1.0
                && s.value("ssegate_streams_total", &[("route", "r"), ("outcome", "truncated")]) == 1.0
                && tokens(s, "output") == 15.0
        })
        .await;
        assert_eq!(s.value("ssegate_streams_total", &[("route", "r"), ("outcome", "truncated")]), 1.0);
        // The tokens the truncated stream reported are still counted.
        assert_eq!((tokens(&s, "input"), tokens(&s, "output")), (25.0, 15.0));
        let lines = gw.access_lines(1).await;
        assert_eq!(lines[0]["outcome"], "truncated");
        assert_eq!(lines[0]["error"], "upstream_truncated");

        // expect_end = false: the same stream completes.
        let mock =
            MockUpstream::serve(Reply::stream("text/event-stream", vec![Step::send(EVENTS), Step::End]))
                .await;
        let gw = GatewaySpec::new()
            .route(RouteSpec::new("r").upstream(&mock).set("provider", "anthropic").set("expect_end", false))
            .start()
            .await;
        let mut resp = get(gw.addr(), "/r").await;
        let body = resp.body_to_end().await;
        assert_eq!(String::from_utf8_lossy(&body).replace(": keepalive\n\n", ""), EVENTS);
    })
    .await;
}

#[tokio::test]
async fn anthropic_in_band_error_is_delivered_and_counted() {
    bounded(async {
        let err = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        let steps = vec![Step::send(EVENTS), Step::send(err), Step::End];
        let mock = MockUpstream::serve(Reply::stream("text/event-stream", steps)).await;
        let gw = GatewaySpec::new()
            .route(RouteSpec::new("r").upstream(&mock).set("provider", "anthropic").set("expect_end", false))
            .start()
            .await;
        let mut resp = get(gw.addr(), "/r").await;
        let body = resp.body_to_end().await;
        assert_eq!(String::from_utf8_lossy(&body).replace(": keepalive\n\n", ""), format!("{EVENTS}{err}"));
        Scrape::until(gw.admin_addr(), |s| s.value("ssegate_provider_errors_total", &[("route", "r")]) == 1.0)
            .await;
    })
    .await;
}

#[tokio::test]
async fn openai_without_done_is_truncated_and_ollama_done_completes_with_usage() {
    bounded(async {
        let chunk = "data: {\"model\":\"gpt-x\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n";
        let mock = MockUpstream::serve(Reply::stream("text/event-stream", vec![Step::send(chunk), Step::End])).await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).set("provider", "openai")).start().await;
        let mut resp = get(gw.addr(), "/r").await;
        let body = resp.body_to_end().await;
        let text = String::from_utf8_lossy(&body).replace(": keepalive\n\n", "");
        assert!(text.starts_with(chunk), "{}", show(&body));
        assert!(text[chunk.len()..].starts_with("event: error\ndata: {\"error\":{\"type\":\"upstream_truncated\""));

        let lines = "{\"model\":\"llama3.2\",\"message\":{\"content\":\"Hi\"},\"done\":false}\n\
                     {\"model\":\"llama3.2\",\"message\":{\"content\":\"\"},\"done\":true,\"prompt_eval_count\":26,\"eval_count\":259}\n";
        let mock =
            MockUpstream::serve(Reply::stream("application/x-ndjson", vec![Step::send(lines), Step::End])).await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).set("provider", "ollama")).start().await;
        let mut resp = get(gw.addr(), "/r").await;
        let body = resp.body_to_end().await;
        assert!(!String::from_utf8_lossy(&body).contains("event: error"), "{}", show(&body));
        let s = Scrape::until(gw.admin_addr(), |s| {
            tokens(s, "output") == 259.0
                && s.value("ssegate_streams_total", &[("route", "r"), ("outcome", "completed")]) == 1.0
        })
        .await;
        assert_eq!(tokens(&s, "input"), 26.0);
        assert_eq!(s.value("ssegate_streams_total", &[("route", "r"), ("outcome", "completed")]), 1.0);
    })
    .await;
}
