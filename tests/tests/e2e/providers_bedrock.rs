//! Bedrock through the real binary, beyond the fixture streams (`providers_fixtures.rs`): a corrupt
//! eventstream frame is a decode error under the route's `on_decode_error`, and an `exception` frame
//! reaches the client as `event: error`, counts as an in-band provider error and ends the stream (no
//! `upstream_truncated` after it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ssegate_frame::testing::{aws_event, aws_frame, AwsHeader};
use ssegate_tests::metrics::Scrape;
use ssegate_tests::sse::{self, Block};
use ssegate_tests::{bounded, get, show, GatewaySpec, MockUpstream, Reply, RouteSpec, Step};

use crate::provider_fixtures::{self as fixtures, Fixture};

const EVENTSTREAM: &str = "application/vnd.amazon.eventstream";

/// The byte ranges of the frames of an eventstream body (from each prelude's total length).
fn frames(body: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let len = u32::from_be_bytes(body[at..at + 4].try_into().unwrap()) as usize;
        out.push(at..at + len);
        at += len;
    }
    out
}

fn claude() -> Fixture {
    fixtures::all().into_iter().find(|f| f.label == "bedrock_claude").unwrap()
}

fn events(blocks: &[Block]) -> Vec<(Option<String>, String)> {
    blocks
        .iter()
        .filter(|b| !b.is_heartbeat())
        .map(|b| (b.event.clone(), b.data.clone().unwrap_or_default()))
        .collect()
}

/// A bedrock route `name` whose mock sends `body` in two writes (split inside the second frame).
async fn route(name: &str, body: Vec<u8>) -> (RouteSpec, MockUpstream) {
    let (a, b) = body.split_at(body.len() / 3);
    let steps = vec![Step::send(a), Step::Sleep(10), Step::send(b), Step::End];
    let mock = MockUpstream::serve(Reply::stream(EVENTSTREAM, steps)).await;
    (RouteSpec::new(name).upstream(&mock).set("provider", "bedrock"), mock)
}

#[tokio::test]
async fn corrupt_frames_are_decode_errors_under_the_route_policy() {
    bounded(async {
        let f = claude();
        let fr = frames(&f.stream);
        assert_eq!(fr.len(), f.events.len());
        // The second frame's payload altered: its message CRC no longer matches.
        let mut bad_message = f.stream.clone();
        bad_message[fr[1].end - 10] ^= 0x20;
        // The second frame's total length altered: its prelude CRC no longer matches.
        let mut bad_prelude = f.stream.clone();
        bad_prelude[fr[1].start + 3] ^= 0x01;

        let (skip, _m1) = route("skip", bad_message.clone()).await;
        let (close, _m2) = route("close", bad_message).await;
        let (prelude, _m3) = route("prelude", bad_prelude).await;
        let gw =
            GatewaySpec::new().route(skip).route(close.on_decode_error("close")).route(prelude).start().await;

        // skip (the default): the frame is dropped, the rest arrives, the end marker completes the stream.
        let body = get(gw.addr(), "/skip").await.body_to_end().await;
        let mut want = f.events.clone();
        want.remove(1);
        assert_eq!(events(&sse::parse_all(&body)), want, "{}", show(&body));

        // close: the first event, then `event: error` of type decode.
        let body = get(gw.addr(), "/close").await.body_to_end().await;
        let blocks: Vec<Block> = sse::parse_all(&body).into_iter().filter(|b| !b.is_heartbeat()).collect();
        assert_eq!(events(&blocks[..1]), f.events[..1], "{}", show(&body));
        assert_eq!(blocks.len(), 2, "{}", show(&body));
        sse::assert_error_event(&blocks[1], "decode");

        // A bad prelude cannot be skipped (its lengths are not to be trusted): decoding ends with an error.
        let body = get(gw.addr(), "/prelude").await.body_to_end().await;
        let blocks: Vec<Block> = sse::parse_all(&body).into_iter().filter(|b| !b.is_heartbeat()).collect();
        assert_eq!(events(&blocks[..1]), f.events[..1], "{}", show(&body));
        assert_eq!(blocks.len(), 2, "{}", show(&body));
        sse::assert_error_event(&blocks[1], "decode");

        let crc = |s: &Scrape, r: &str| {
            s.value("ssegate_decode_errors_total", &[("route", r), ("kind", "crc_mismatch")])
        };
        let s = Scrape::until(gw.admin_addr(), |s| {
            ["skip", "close", "prelude"].iter().all(|r| crc(s, r) == 1.0)
                && s.value("ssegate_streams_total", &[("route", "skip"), ("outcome", "completed")]) == 1.0
                && s.value("ssegate_tokens_total", &[("route", "skip"), ("kind", "output")]) == 7.0
        })
        .await;
        for r in ["skip", "close", "prelude"] {
            assert_eq!(crc(&s, r), 1.0, "{r}: {}", s.text);
        }
        assert_eq!(s.value("ssegate_streams_total", &[("route", "skip"), ("outcome", "completed")]), 1.0);
        // The usage is in the last frame, which arrived on the skip route.
        let t = |k| s.value("ssegate_tokens_total", &[("route", "skip"), ("kind", k)]);
        assert_eq!((t("input"), t("output")), (11.0, 7.0));
    })
    .await;
}

#[tokio::test]
async fn exception_frame_is_an_error_event_and_a_provider_error() {
    bounded(async {
        let start = aws_event("messageStart", br#"{"role":"assistant"}"#);
        let exception = aws_frame(
            &[
                (":exception-type", AwsHeader::string("throttlingException")),
                (":content-type", AwsHeader::string("application/json")),
                (":message-type", AwsHeader::string("exception")),
            ],
            br#"{"message":"Too many requests, please wait before trying again."}"#,
        );
        let (r, _mock) = route("b", [start, exception].concat()).await;
        let gw = GatewaySpec::new().route(r).start().await;
        let body = get(gw.addr(), "/b").await.body_to_end().await;
        let blocks: Vec<Block> = sse::parse_all(&body).into_iter().filter(|b| !b.is_heartbeat()).collect();
        assert_eq!(blocks.len(), 2, "{}", show(&body));
        assert_eq!(events(&blocks[..1]), [(Some("messageStart".to_owned()), r#"{"role":"assistant"}"#.to_owned())]);
        assert_eq!(blocks[1].event.as_deref(), Some("error"));
        assert_eq!(
            blocks[1].json(),
            serde_json::json!({"error": {"type": "throttlingException", "message": "Too many requests, please wait before trying again."}})
        );
        let s = Scrape::until(gw.admin_addr(), |s| s.value("ssegate_provider_errors_total", &[("route", "b")]) == 1.0).await;
        assert_eq!(s.value("ssegate_provider_errors_total", &[("route", "b")]), 1.0, "{}", s.text);
        assert_eq!(s.value("ssegate_decode_errors_total", &[]), 0.0);
    })
    .await;
}
