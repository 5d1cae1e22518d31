//! Every provider fixture stream (the same ones the unit tests split at every byte,
//! `crates/gateway/src/provider/fixtures.rs`) sent by a mock upstream through the real binary, each on a
//! route with its `provider` preset and no `format`: the client gets the fixture's events as SSE, the
//! usage lands in `ssegate_tokens_total` and the access log, the end marker completes the stream; the same
//! streams cut right before the end marker end with `upstream_truncated`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ssegate_tests::metrics::Scrape;
use ssegate_tests::sse::{self, Block};
use ssegate_tests::{bounded, get, show, Gateway, GatewaySpec, MockUpstream, Reply, RouteSpec, Step};

use crate::provider_fixtures::{self as fixtures, Fixture, Wire};

/// The request path for a fixture's route: Gemini's JSON array answers a `streamGenerateContent` call
/// (the path is what lets `auto` tell it from a plain `generateContent` answer).
fn path(f: &Fixture) -> String {
    match f.wire {
        Wire::JsonArray => format!("/{}/v1beta/models/gemini-2.0-flash:streamGenerateContent", f.label),
        _ => format!("/{}", f.label),
    }
}

/// The body in three writes: a piece of the first message, the rest up to the middle of the end marker's
/// message, the rest (the splits land inside messages, and inside eventstream frames).
fn steps(body: &[u8], end_at: usize) -> Vec<Step> {
    let a = (end_at / 3).max(1).min(body.len());
    let b = (end_at + (body.len() - end_at) / 2).clamp(a, body.len());
    vec![
        Step::send(&body[..a]),
        Step::Sleep(10),
        Step::send(&body[a..b]),
        Step::Sleep(10),
        Step::send(&body[b..]),
        Step::End,
    ]
}

/// One route per fixture, each with a mock that sends `body(f)`.
async fn gateway(fs: &[Fixture], body: impl Fn(&Fixture) -> Vec<u8>) -> (Gateway, Vec<MockUpstream>) {
    let mut spec = GatewaySpec::new().args(["--log-format", "json"]);
    let mut mocks = Vec::new();
    for f in fs {
        let b = body(f);
        let steps = steps(&b, f.end_at.min(b.len()));
        let mock = MockUpstream::serve(Reply::stream(f.wire.content_type(), steps)).await;
        spec = spec.route(RouteSpec::new(f.label).upstream(&mock).set("provider", f.provider));
        mocks.push(mock);
    }
    (spec.start().await, mocks)
}

fn events(blocks: &[Block]) -> Vec<(Option<String>, String)> {
    blocks
        .iter()
        .filter(|b| !b.is_heartbeat())
        .map(|b| (b.event.clone(), b.data.clone().unwrap_or_default()))
        .collect()
}

fn tokens(s: &Scrape, route: &str, kind: &str) -> f64 {
    s.value("ssegate_tokens_total", &[("route", route), ("kind", kind)])
}

fn streams(s: &Scrape, route: &str, outcome: &str) -> f64 {
    s.value("ssegate_streams_total", &[("route", route), ("outcome", outcome)])
}

fn completing() -> Vec<Fixture> {
    fixtures::all().into_iter().filter(Fixture::has_end).collect()
}

/// The access-log line of `route` among `lines`.
fn line<'a>(lines: &'a [serde_json::Value], route: &str) -> &'a serde_json::Value {
    lines
        .iter()
        .find(|l| l["route"] == route)
        .unwrap_or_else(|| panic!("no access line for {route}: {lines:?}"))
}

#[tokio::test]
async fn every_provider_stream_completes_with_its_events_and_usage() {
    bounded(async {
        let fs = completing();
        let (gw, _mocks) = gateway(&fs, |f| f.stream.clone()).await;
        for f in &fs {
            let mut resp = get(gw.addr(), &path(f)).await;
            assert_eq!(resp.status, 200, "{}", f.label);
            let ct = resp.header("content-type").unwrap_or_default();
            assert!(ct.starts_with("text/event-stream"), "{}: {ct}", f.label);
            let body = resp.body_to_end().await;
            assert_eq!(events(&sse::parse_all(&body)), f.events, "{}: {}", f.label, show(&body));
        }
        let s = Scrape::until(gw.admin_addr(), |s| {
            // The outcome is counted first, the tokens a moment after.
            fs.iter().all(|f| {
                streams(s, f.label, "completed") == 1.0
                    && tokens(s, f.label, "output") == f.output_tokens.unwrap() as f64
            })
        })
        .await;
        let lines = gw.access_lines(fs.len()).await;
        for f in &fs {
            let r = f.label;
            assert_eq!(streams(&s, r, "completed"), 1.0, "{r}: {}", s.text);
            let want = (f.input_tokens.unwrap() as f64, f.output_tokens.unwrap() as f64);
            assert_eq!((tokens(&s, r, "input"), tokens(&s, r, "output")), want, "{r}");
            let l = line(&lines, r);
            assert_eq!(l["outcome"], "completed", "{l}");
            assert_eq!(
                (l["input_tokens"].as_u64(), l["output_tokens"].as_u64()),
                (f.input_tokens, f.output_tokens)
            );
            assert_eq!(l["model"].as_str(), f.model, "{l}");
        }
        assert_eq!(s.value("ssegate_decode_errors_total", &[]), 0.0);
    })
    .await;
}

/// The error a stream cut right before its end marker's message ends with: `upstream_truncated`, except
/// for Gemini's JSON array, whose open `[` the decoder itself reports at the EOF (`malformed JSON:
/// truncated`, a `decode` error) before the end marker is looked for.
fn error(f: &Fixture) -> &'static str {
    match f.wire {
        Wire::JsonArray => "decode",
        _ => "upstream_truncated",
    }
}

fn errors(s: &Scrape, f: &Fixture) -> f64 {
    s.value("ssegate_upstream_errors_total", &[("route", f.label), ("kind", error(f))])
}

#[tokio::test]
async fn every_provider_stream_cut_before_its_end_marker_is_truncated() {
    bounded(async {
        let fs = completing();
        let (gw, _mocks) = gateway(&fs, |f| f.stream[..f.end_at].to_vec()).await;
        for f in &fs {
            let mut resp = get(gw.addr(), &path(f)).await;
            let body = resp.body_to_end().await;
            let blocks: Vec<Block> =
                sse::parse_all(&body).into_iter().filter(|b| !b.is_heartbeat()).collect();
            let (last, before) = blocks.split_last().unwrap();
            assert_eq!(events(before), f.events[..f.events_before_end], "{}: {}", f.label, show(&body));
            sse::assert_error_event(last, error(f));
        }
        let outcome = |f: &Fixture| if error(f) == "decode" { "upstream_error" } else { "truncated" };
        // Counted one after another: the error when it is sent, the outcome when the request ends.
        let s = Scrape::until(gw.admin_addr(), |s| {
            fs.iter().all(|f| errors(s, f) == 1.0 && streams(s, f.label, outcome(f)) == 1.0)
        })
        .await;
        let lines = gw.access_lines(fs.len()).await;
        for f in &fs {
            let r = f.label;
            let outcome = outcome(f);
            assert_eq!(errors(&s, f), 1.0, "{r}: {}", s.text);
            assert_eq!(streams(&s, r, outcome), 1.0, "{r}: {}", s.text);
            let l = line(&lines, r);
            assert_eq!((l["outcome"].as_str(), l["error"].as_str()), (Some(outcome), Some(error(f))), "{l}");
        }
    })
    .await;
}
