//! Resumable streams (`resume = { store = "memory" }`): ids `<stream>.<seq>`, resume on the same URL with
//! `Last-Event-ID` and on `<prefix>/_streams/<stream>`, fan-out, finished streams, the retained window's
//! gap, keys, unknown ids, `drain` and `detach` after the client left. The upstream is always requested
//! exactly once per stream: readers are served from the store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ssegate_tests::client::Response;
use ssegate_tests::metrics::Scrape;
use ssegate_tests::mock::Gate;
use ssegate_tests::{
    bounded, expect_json_error, get, request, Gateway, GatewaySpec, MockUpstream, Reply, RouteSpec, Step,
};

const RESUME: &str = "resume = { store = \"memory\" }";

/// `n` SSE events `e1`..`en` from the upstream (with upstream ids, which resume replaces), a gate after
/// the first `split`.
fn events(n: usize, split: usize, gate: &Gate) -> Reply {
    let mut steps = Vec::new();
    for i in 1..=n {
        if i == split + 1 {
            steps.push(Step::Wait(gate.clone()));
        }
        steps.push(Step::send(format!("id: up-{i}\ndata: e{i}\n\n")));
    }
    steps.push(Step::End);
    Reply::stream("text/event-stream", steps)
}

fn route(mock: &MockUpstream) -> RouteSpec {
    RouteSpec::new("r").upstream(mock).heartbeat("0s").raw(RESUME)
}

async fn start(route: RouteSpec) -> Gateway {
    GatewaySpec::new().route(route).args(["--log-format", "json"]).start().await
}

/// One parsed SSE event: (id, event name, data).
type Ev = (Option<String>, Option<String>, String);

fn parse(block: &[u8]) -> Ev {
    let text = std::str::from_utf8(block).unwrap();
    let (mut id, mut name, mut data) = (None, None, Vec::new());
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("id: ") {
            id = Some(v.to_string());
        } else if let Some(v) = line.strip_prefix("event: ") {
            name = Some(v.to_string());
        } else if let Some(v) = line.strip_prefix("data: ") {
            data.push(v);
        }
    }
    (id, name, data.join("\n"))
}

/// Every event to the end of the body (heartbeats skipped).
async fn rest(resp: &mut Response) -> Vec<Ev> {
    let body = String::from_utf8(resp.body_to_end().await).unwrap();
    body.split("\n\n")
        .filter(|b| !b.trim().is_empty() && !b.starts_with(':'))
        .map(|b| parse(b.as_bytes()))
        .collect()
}

async fn next(resp: &mut Response) -> Ev {
    parse(&resp.next_event().await.expect("an event"))
}

fn ev(stream: &str, seq: u64, data: &str) -> Ev {
    (Some(format!("{stream}.{seq}")), None, data.to_string())
}

fn stream_id(resp: &Response) -> String {
    let id = resp.header("ssegate-stream-id").expect("ssegate-stream-id").to_string();
    assert_eq!(id.len(), 32, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    id
}

async fn resume_with(gw: &Gateway, path: &str, last: &str, extra: &[(&str, &str)]) -> Response {
    let mut headers = vec![("Accept", "text/event-stream"), ("Last-Event-ID", last)];
    headers.extend_from_slice(extra);
    request(gw.addr(), "GET", path, &headers, b"").await
}

fn resume_result(s: &Scrape, result: &str) -> f64 {
    s.value("ssegate_resume_requests_total", &[("route", "r"), ("result", result)])
}

#[tokio::test]
async fn last_event_id_on_the_same_url_replays_then_follows_and_the_upstream_is_requested_once() {
    bounded(async {
        let gate = Gate::new();
        let mock = MockUpstream::serve(events(5, 2, &gate)).await;
        let gw = start(route(&mock).done_event(Some("done"), "[DONE]")).await;
        let mut first = get(gw.addr(), "/r").await;
        let s = stream_id(&first);
        assert_eq!(next(&mut first).await, ev(&s, 1, "e1"), "our ids replace the upstream's");
        assert_eq!(next(&mut first).await, ev(&s, 2, "e2"));
        drop(first);

        // Reconnect (as EventSource does) while the upstream is still producing: detach kept it going.
        let mut again = resume_with(&gw, "/r", &format!("{s}.1"), &[]).await;
        assert_eq!(again.status, 200);
        assert_eq!(stream_id(&again), s);
        assert_eq!(next(&mut again).await, ev(&s, 2, "e2"), "replayed from the store");
        gate.open();
        let tail = rest(&mut again).await;
        let mut want: Vec<Ev> = (3..=5).map(|i| ev(&s, i, &format!("e{i}"))).collect();
        want.push((Some(format!("{s}.6")), Some("done".into()), "[DONE]".into()));
        assert_eq!(tail, want, "the live tail, then the done event with its own id");
        assert_eq!(mock.requests().len(), 1, "readers never touch the upstream");

        // EventSource reconnects after the close with the last id: 204 ends it.
        let mut end = resume_with(&gw, "/r", &format!("{s}.6"), &[]).await;
        assert_eq!(end.status, 204, "{:?}", end.headers);
        assert!(end.body_to_end().await.is_empty());
        // A finished stream replays to its end (done included) from any id.
        let mut all = resume_with(&gw, "/r", &format!("{s}.0"), &[]).await;
        assert_eq!(rest(&mut all).await.len(), 6);
        assert_eq!(mock.requests().len(), 1);

        let lines = gw.access_lines(4).await;
        let resumed: Vec<_> = lines.iter().filter_map(|l| l["resumed_from"].as_u64()).collect();
        assert_eq!(resumed, [1, 6, 0], "{lines:#?}");
        let owner = lines.iter().find(|l| l["format"] == "sse").unwrap();
        assert_eq!(owner["disconnect"], "completed", "detach read the upstream to its end: {owner}");
        let sc = Scrape::fetch(gw.admin_addr()).await;
        assert_eq!(resume_result(&sc, "hit"), 3.0, "{}", sc.text);
        assert!(sc.value("ssegate_resume_replayed_events_total", &[("route", "r")]) >= 11.0, "{}", sc.text);
    })
    .await;
}

#[tokio::test]
async fn streams_endpoint_with_last_event_id_or_after_and_fan_out_to_two_readers() {
    bounded(async {
        let gate = Gate::new();
        let mock = MockUpstream::serve(events(6, 3, &gate)).await;
        let gw = start(route(&mock)).await;
        let mut owner = get(gw.addr(), "/r").await;
        let s = stream_id(&owner);
        for i in 1..=3 {
            assert_eq!(next(&mut owner).await, ev(&s, i, &format!("e{i}")));
        }
        let path = format!("/r/_streams/{s}");
        let mut a = resume_with(&gw, &path, &format!("{s}.2"), &[]).await;
        let mut b = request(gw.addr(), "POST", &format!("{path}?after=1"), &[], b"ignored").await;
        let mut c = get(gw.addr(), &path).await; // no id: from the start
        for r in [&a, &b, &c] {
            assert_eq!(r.status, 200);
            assert_eq!(stream_id(r), s);
        }
        assert_eq!(next(&mut a).await, ev(&s, 3, "e3"));
        assert_eq!(next(&mut b).await, ev(&s, 2, "e2"));
        assert_eq!(next(&mut b).await, ev(&s, 3, "e3"));
        gate.open();
        let want: Vec<Ev> = (4..=6).map(|i| ev(&s, i, &format!("e{i}"))).collect();
        assert_eq!(rest(&mut a).await, want);
        assert_eq!(rest(&mut b).await, want);
        assert_eq!(rest(&mut owner).await, want, "the original client is served directly");
        assert_eq!(rest(&mut c).await.len(), 6);
        assert_eq!(mock.requests().len(), 1);

        // `?after=` must be a seq; another stream's id in Last-Event-ID is not this stream's.
        let mut bad = get(gw.addr(), &format!("{path}?after=x")).await;
        expect_json_error(&mut bad, 400, "bad_request").await;
    })
    .await;
}

#[tokio::test]
async fn a_reader_behind_the_retained_window_gets_resume_gap_with_a_terminal_id() {
    bounded(async {
        let big = "x".repeat(400);
        let mut steps: Vec<Step> = (1..=8).map(|i| Step::send(format!("data: {i}{big}\n\n"))).collect();
        steps.push(Step::End);
        let mock = MockUpstream::serve(Reply::stream("text/event-stream", steps)).await;
        let r = RouteSpec::new("r").upstream(&mock).heartbeat("0s").raw(
            "resume = { store = \"memory\", max_bytes = \"1KiB\" }", // two 401-byte events
        );
        let gw = start(r).await;
        let mut owner = get(gw.addr(), "/r").await;
        let s = stream_id(&owner);
        assert_eq!(rest(&mut owner).await.len(), 8);

        let mut gap = resume_with(&gw, "/r", &format!("{s}.2"), &[]).await;
        assert_eq!(gap.status, 200);
        let evs = rest(&mut gap).await;
        assert_eq!(evs.len(), 1, "{evs:?}");
        let (id, name, data) = &evs[0];
        assert_eq!((id.as_deref(), name.as_deref()), (Some(format!("{s}.end").as_str()), Some("error")));
        let v: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["error"]["type"], "resume_gap", "{v}");
        // EventSource comes back with the terminal id: 204, it stops.
        let mut end = resume_with(&gw, "/r", &format!("{s}.end"), &[]).await;
        assert_eq!(end.status, 204);
        end.body_to_end().await;
        // Within the window, the replay works.
        let mut ok = resume_with(&gw, "/r", &format!("{s}.6"), &[]).await;
        assert_eq!(
            rest(&mut ok).await.iter().map(|e| e.0.clone().unwrap()).collect::<Vec<_>>(),
            [format!("{s}.7"), format!("{s}.8")]
        );
        let sc = Scrape::fetch(gw.admin_addr()).await;
        assert_eq!(resume_result(&sc, "gap"), 1.0, "{}", sc.text);
        assert_eq!(mock.requests().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_resume_needs_the_key_that_started_the_stream() {
    bounded(async {
        let mock = MockUpstream::serve(events(2, 2, &Gate::new())).await;
        let gw = GatewaySpec::new()
            .route(route(&mock).auth_keys_env(&["SSEGATE_TEST_RESUME_KEYS"]))
            .env("SSEGATE_TEST_RESUME_KEYS", "key-one,key-two")
            .args(["--log-format", "json"])
            .start()
            .await;
        let one = [("Accept", "text/event-stream"), ("Authorization", "Bearer key-one")];
        let mut owner = request(gw.addr(), "GET", "/r", &one, b"").await;
        let s = stream_id(&owner);
        assert_eq!(rest(&mut owner).await.len(), 2);
        let last = format!("{s}.1");
        let path = format!("/r/_streams/{s}");

        let mut none = resume_with(&gw, "/r", &last, &[]).await;
        expect_json_error(&mut none, 401, "unauthorized").await;
        let mut other = resume_with(&gw, "/r", &last, &[("x-api-key", "key-two")]).await;
        expect_json_error(&mut other, 403, "forbidden").await;
        let mut other = resume_with(&gw, &path, &last, &[("Authorization", "Bearer key-two")]).await;
        expect_json_error(&mut other, 403, "forbidden").await;
        let mut same = resume_with(&gw, &path, &last, &[("x-api-key", "key-one")]).await;
        assert_eq!(
            rest(&mut same).await,
            [ev(&s, 2, "e2")],
            "the same key in the other header is the same key"
        );
        let sc = Scrape::fetch(gw.admin_addr()).await;
        assert_eq!(resume_result(&sc, "forbidden"), 3.0, "{}", sc.text);
        assert_eq!(resume_result(&sc, "hit"), 1.0, "{}", sc.text);
        assert_eq!(mock.requests().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn unknown_ids_are_a_json_404_and_never_reach_the_upstream() {
    bounded(async {
        let mock = MockUpstream::serve(events(1, 1, &Gate::new())).await;
        let gw = start(route(&mock)).await;
        let unknown = "0123456789abcdef0123456789abcdef";
        for (path, last) in [
            ("/r", format!("{unknown}.3")),
            ("/r", "42".to_string()),
            ("/r", "up-7".to_string()),
            ("/r/x", format!("{unknown}.end")),
        ] {
            let mut r = resume_with(&gw, path, &last, &[]).await;
            expect_json_error(&mut r, 404, "resume_unknown").await;
        }
        for path in [format!("/r/_streams/{unknown}"), "/r/_streams/nope".into()] {
            let mut r = get(gw.addr(), &path).await;
            expect_json_error(&mut r, 404, "resume_unknown").await;
        }
        assert_eq!(mock.requests().len(), 0, "a resume never starts a second generation");
        let sc = Scrape::fetch(gw.admin_addr()).await;
        assert_eq!(resume_result(&sc, "miss"), 6.0, "{}", sc.text);
        // An empty Last-Event-ID is no resume: a new stream.
        let mut fresh = resume_with(&gw, "/r", "", &[]).await;
        assert_eq!(rest(&mut fresh).await.len(), 1);
        assert_eq!(mock.requests().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn drain_on_a_resumable_route_reads_to_the_end_and_records_for_readers() {
    bounded(async {
        let gate = Gate::new();
        let mock = MockUpstream::serve(events(4, 1, &gate)).await;
        let gw = start(route(&mock).set("on_disconnect", "drain").set("detach_timeout", "100ms")).await;
        let mut owner = get(gw.addr(), "/r").await;
        let s = stream_id(&owner);
        assert_eq!(next(&mut owner).await, ev(&s, 1, "e1"));
        drop(owner);
        Scrape::until(gw.admin_addr(), |s| s.value("ssegate_streams_draining", &[("route", "r")]) == 1.0)
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await; // > detach_timeout: drain does not care
        gate.open();
        let lines = gw.access_lines(1).await;
        assert_eq!(lines[0]["disconnect"], "completed", "{lines:?}");
        assert_eq!(lines[0]["drained_events"], 3, "{lines:?}");
        assert_eq!(mock.peer_closed(), 0, "read to its end");
        let mut r = resume_with(&gw, "/r", &format!("{s}.1"), &[]).await;
        assert_eq!(rest(&mut r).await, (2..=4).map(|i| ev(&s, i, &format!("e{i}"))).collect::<Vec<_>>());
    })
    .await;
}

#[tokio::test]
async fn detach_aborts_the_upstream_once_no_reader_was_attached_for_detach_timeout() {
    bounded(async {
        let gate = Gate::new(); // never opened: the upstream never ends by itself
        let mock = MockUpstream::serve(events(3, 2, &gate)).await;
        let gw =
            start(route(&mock).set("detach_timeout", "600ms").max_duration("60s").idle_timeout("60s")).await;
        let mut owner = get(gw.addr(), "/r").await;
        let s = stream_id(&owner);
        assert_eq!(next(&mut owner).await, ev(&s, 1, "e1"));
        drop(owner);
        // A reader attached longer than detach_timeout keeps the upstream open.
        let mut reader = resume_with(&gw, &format!("/r/_streams/{s}"), &format!("{s}.1"), &[]).await;
        assert_eq!(next(&mut reader).await, ev(&s, 2, "e2"));
        let sc =
            Scrape::until(gw.admin_addr(), |s| s.value("ssegate_streams_detached", &[("route", "r")]) == 1.0)
                .await;
        assert_eq!(sc.value("ssegate_streams_detached", &[("route", "r")]), 1.0, "{}", sc.text);
        assert!(
            !mock.wait_peer_closed(1, Duration::from_millis(1500)).await,
            "closed while a reader was attached"
        );
        drop(reader);
        assert!(
            mock.wait_peer_closed(1, Duration::from_secs(5)).await,
            "detach_timeout did not abort the upstream"
        );
        let lines = gw.access_lines(2).await;
        let owner = lines.iter().find(|l| l["format"] == "sse").unwrap();
        assert_eq!(owner["disconnect"], "detach_timeout", "{owner}");
        assert_eq!(owner["outcome"], "client_closed", "{owner}");
        // A later reader replays what was recorded, then learns the producer is gone (terminal id).
        let mut late = resume_with(&gw, "/r", &format!("{s}.0"), &[]).await;
        let evs = rest(&mut late).await;
        assert_eq!(evs[..2], [ev(&s, 1, "e1"), ev(&s, 2, "e2")]);
        assert_eq!(evs[2].0.as_deref(), Some(format!("{s}.end").as_str()));
        assert!(evs[2].2.contains("\"upstream_lost\""), "{evs:?}");
        assert_eq!(evs.len(), 3);
        let sc = Scrape::fetch(gw.admin_addr()).await;
        assert_eq!(sc.value("ssegate_streams_detached", &[("route", "r")]), 0.0, "{}", sc.text);
        assert_eq!(mock.requests().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn routes_without_resume_are_unchanged() {
    bounded(async {
        let mock = MockUpstream::serve(events(2, 2, &Gate::new())).await;
        let gw = start(RouteSpec::new("r").upstream(&mock).heartbeat("0s")).await;
        let mut a = resume_with(&gw, "/r", "0123456789abcdef0123456789abcdef.1", &[]).await;
        assert_eq!(a.header("ssegate-stream-id"), None);
        let evs = rest(&mut a).await;
        assert_eq!(evs[0], (Some("up-1".into()), None, "e1".into()), "upstream ids pass, no resume ids");
        let req = &mock.requests()[0];
        assert_eq!(req.header("last-event-id"), Some("0123456789abcdef0123456789abcdef.1"), "forwarded");
        let mut b = get(gw.addr(), "/r/_streams/0123456789abcdef0123456789abcdef").await;
        rest(&mut b).await;
        assert_eq!(mock.requests()[1].target, "/_streams/0123456789abcdef0123456789abcdef", "just a path");
        let sc = Scrape::fetch(gw.admin_addr()).await;
        assert!(!sc.has("ssegate_resume_requests_total", &[("route", "r")]), "{}", sc.text);
    })
    .await;
}

#[tokio::test]
async fn a_failure_is_recorded_as_the_last_event_with_its_id_and_a_reconnect_after_it_gets_204() {
    bounded(async {
        let gate = Gate::new();
        let mock = MockUpstream::serve(Reply::stream(
            "text/event-stream",
            vec![Step::send("data: a\n\n"), Step::Wait(gate.clone()), Step::send("data: b\n\n"), Step::Reset],
        ))
        .await;
        let gw = start(route(&mock)).await;
        let mut owner = get(gw.addr(), "/r").await;
        let s = stream_id(&owner);
        assert_eq!(next(&mut owner).await, ev(&s, 1, "a"));
        drop(owner); // detached: the reset happens with nobody connected
                     // Only once the gateway has seen the client leave (else it may still write `b` to the closed socket and
                     // end as an ordinary upstream failure: a loaded CI machine did).
        Scrape::until(gw.admin_addr(), |s| s.value("ssegate_streams_detached", &[("route", "r")]) == 1.0)
            .await;
        let mut reader = resume_with(&gw, &format!("/r/_streams/{s}"), &format!("{s}.1"), &[]).await;
        gate.open();
        let evs = rest(&mut reader).await;
        assert_eq!(evs[0], ev(&s, 2, "b"));
        assert_eq!(
            (evs[1].0.as_deref(), evs[1].1.as_deref()),
            (Some(format!("{s}.3").as_str()), Some("error"))
        );
        assert!(evs[1].2.contains("\"upstream_reset\""), "{evs:?}");
        assert_eq!(evs.len(), 2);
        let mut end = resume_with(&gw, "/r", &format!("{s}.3"), &[]).await;
        assert_eq!(end.status, 204);
        end.body_to_end().await;
        let lines = gw.access_lines(3).await;
        let owner = lines.iter().find(|l| l["format"] == "sse").unwrap();
        assert_eq!(owner["disconnect"], "failed", "{owner}");
    })
    .await;
}

#[tokio::test]
async fn a_stream_past_its_ttl_is_410_resume_expired() {
    bounded(async {
        let mock = MockUpstream::serve(events(2, 2, &Gate::new())).await;
        let r = RouteSpec::new("r")
            .upstream(&mock)
            .heartbeat("0s")
            .raw("resume = { store = \"memory\", ttl = \"1s\" }");
        let gw = start(r).await;
        let mut owner = get(gw.addr(), "/r").await;
        let s = stream_id(&owner);
        assert_eq!(rest(&mut owner).await.len(), 2);
        let mut ok = resume_with(&gw, "/r", &format!("{s}.1"), &[]).await;
        assert_eq!(rest(&mut ok).await, [ev(&s, 2, "e2")]);
        tokio::time::sleep(Duration::from_millis(1300)).await;
        let mut gone = resume_with(&gw, "/r", &format!("{s}.1"), &[]).await;
        expect_json_error(&mut gone, 410, "resume_expired").await;
        let sc = Scrape::fetch(gw.admin_addr()).await;
        assert_eq!(resume_result(&sc, "expired"), 1.0, "{}", sc.text);
        assert_eq!(
            sc.value("ssegate_resume_retained_bytes", &[]),
            0.0,
            "expired events are freed: {}",
            sc.text
        );
        assert_eq!(mock.requests().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_following_reader_gets_heartbeats_and_the_output_its_accept_chooses() {
    bounded(async {
        let gate = Gate::new();
        let mock = MockUpstream::serve(events(2, 1, &gate)).await;
        let r = RouteSpec::new("r")
            .upstream(&mock)
            .heartbeat("100ms")
            .raw(RESUME)
            .raw("outputs = [\"sse\", \"ndjson\"]");
        let gw = start(r).await;
        let mut owner = get(gw.addr(), "/r").await;
        let s = stream_id(&owner);
        assert_eq!(next(&mut owner).await, ev(&s, 1, "e1"));
        let mut sse = resume_with(&gw, &format!("/r/_streams/{s}"), &format!("{s}.0"), &[]).await;
        assert_eq!(next(&mut sse).await, ev(&s, 1, "e1"));
        let quiet = String::from_utf8(sse.read_for(Duration::from_millis(500)).await).unwrap();
        assert!(quiet.contains(": keepalive\n\n"), "a following reader gets heartbeats: {quiet:?}");
        let ndjson = [("Accept", "application/x-ndjson")];
        let mut nd = request(gw.addr(), "GET", &format!("/r/_streams/{s}"), &ndjson, b"").await;
        assert_eq!(nd.header("content-type"), Some("application/x-ndjson"));
        assert_eq!(nd.header("vary"), Some("Accept"));
        let line = nd.read_until(b"\n").await;
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            (v["data"].as_str(), v["id"].as_str()),
            (Some("e1"), Some(format!("{s}.1").as_str())),
            "{v}"
        );
        gate.open();
        let rest_nd = String::from_utf8(nd.body_to_end().await).unwrap();
        let last: serde_json::Value = serde_json::from_str(rest_nd.trim()).unwrap();
        assert_eq!(last["id"], format!("{s}.2"), "{rest_nd:?}");
        assert_eq!(rest(&mut sse).await, [ev(&s, 2, "e2")]);
        assert_eq!(mock.requests().len(), 1);
    })
    .await;
}
