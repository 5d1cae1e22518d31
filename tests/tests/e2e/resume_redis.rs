//! `resume = { store = "redis" }`: gateway processes sharing one real `redis-server` (started per test on a
//! free port, see `ssegate_tests::redis`). A stream started on A is resumed on B; A killed mid-stream ends
//! B's reader with `upstream_lost`; Redis killed mid-stream costs resume only; `rediss://` is verified.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ssegate_tests::metrics::Scrape;
use ssegate_tests::redis::RedisServer;
use ssegate_tests::sse::{self, Block};
use ssegate_tests::tls::TestCert;
use ssegate_tests::{
    bounded, get, request, Gateway, GatewaySpec, MockUpstream, Reply, Response, RouteSpec, Step, Toml,
};

use crate::streams::numbered;

fn data(n: usize) -> String {
    format!("{{\"n\":{n}}}")
}

/// A route `name` on `mock` that records its streams in Redis.
fn resumable(name: &str, mock: &MockUpstream) -> RouteSpec {
    RouteSpec::new(name)
        .upstream(mock)
        .heartbeat("0s")
        .set("resume", Toml::table([("store", "redis"), ("ttl", "1m")]))
}

fn spec(redis: &RedisServer) -> GatewaySpec {
    GatewaySpec::new().redis(&redis.url(), &[("key_prefix", "e2e:")]).args(["--log-format", "json"])
}

/// The events (blocks with data) of `resp` until `n` of them have come.
async fn events(resp: &mut Response, n: usize) -> Vec<Block> {
    let mut got = Vec::new();
    while got.len() < n {
        let raw = resp.next_event().await.unwrap_or_else(|| panic!("stream ended after {got:?}"));
        let block = sse::parse_block(std::str::from_utf8(&raw).unwrap());
        if block.data.is_some() {
            got.push(block);
        }
    }
    got
}

/// Asserts `blocks` are events `from..` of stream `stream`: data and ids `<stream>.<seq>`, in order.
#[track_caller]
fn assert_events(blocks: &[Block], stream: &str, from: usize) {
    for (i, b) in blocks.iter().enumerate() {
        let n = from + i;
        assert_eq!(b.data.as_deref(), Some(data(n).as_str()), "event {n}: {blocks:#?}");
        assert_eq!(b.id.as_deref(), Some(format!("{stream}.{n}").as_str()), "event {n}: {blocks:#?}");
    }
}

async fn resume(gw: &Gateway, path: &str, last_event_id: Option<&str>) -> Response {
    let mut headers = vec![("Accept", "text/event-stream")];
    if let Some(id) = last_event_id {
        headers.push(("Last-Event-ID", id));
    }
    request(gw.addr(), "GET", path, &headers, b"").await
}

#[tokio::test]
async fn a_stream_started_on_a_is_resumed_on_b_once_and_in_order() {
    bounded(async {
        let redis = RedisServer::start();
        let mock = MockUpstream::serve(numbered(12, 120)).await;
        let a = spec(&redis).route(resumable("r", &mock)).start().await;
        let b = spec(&redis).route(resumable("r", &mock)).start().await;

        let mut c1 = get(a.addr(), "/r").await;
        let stream = c1.header("ssegate-stream-id").expect("ssegate-stream-id").to_string();
        let first = events(&mut c1, 3).await;
        assert_events(&first, &stream, 1);
        drop(c1);

        // EventSource's reconnect, landing on B: the rest, then the end.
        let mut c2 = resume(&b, "/r", Some(&format!("{stream}.3"))).await;
        assert_eq!(c2.status, 200, "{:?}", c2.headers);
        let body = c2.body_to_end().await;
        let rest: Vec<Block> = sse::parse_all(&body).into_iter().filter(|b| b.data.is_some()).collect();
        assert_eq!(rest.len(), 9, "{rest:#?}");
        assert_events(&rest, &stream, 4);

        // A fetch client on B, from the start of the finished stream: every event, then the end.
        let mut c3 = resume(&b, &format!("/r/_streams/{stream}?after=0"), None).await;
        assert_eq!(c3.status, 200);
        let body = c3.body_to_end().await;
        let all: Vec<Block> = sse::parse_all(&body).into_iter().filter(|b| b.data.is_some()).collect();
        assert_eq!(all.len(), 12, "{all:#?}");
        assert_events(&all, &stream, 1);
        // And from its last id, on A: nothing more will come.
        let c4 = resume(&a, "/r", Some(&format!("{stream}.12"))).await;
        assert_eq!(c4.status, 204);

        assert_eq!(mock.requests().len(), 1, "the upstream was requested once");
        let keys = redis.keys();
        assert!(
            keys.contains(&format!("e2e:s:{stream}")) && keys.contains(&format!("e2e:m:{stream}")),
            "{keys:?}"
        );
        let s = Scrape::fetch(a.admin_addr()).await;
        assert_eq!(s.value("ssegate_resume_store_errors_total", &[("store", "redis")]), 0.0);
    })
    .await;
}

#[tokio::test]
async fn an_owner_killed_mid_stream_ends_readers_elsewhere_with_upstream_lost() {
    bounded(async {
        let redis = RedisServer::start();
        let reply = Reply::stream(
            "application/x-ndjson",
            vec![Step::send("{\"n\":1}\n"), Step::send("{\"n\":2}\n"), Step::Sleep(30_000), Step::End],
        );
        let mock = MockUpstream::serve(reply).await;
        let a = spec(&redis).route(resumable("r", &mock)).start().await;
        let b = spec(&redis).route(resumable("r", &mock)).start().await;

        let mut c1 = get(a.addr(), "/r").await;
        let stream = c1.header("ssegate-stream-id").unwrap().to_string();
        assert_events(&events(&mut c1, 2).await, &stream, 1);
        let mut reader = resume(&b, &format!("/r/_streams/{stream}"), None).await;
        assert_eq!(reader.status, 200);
        assert_events(&events(&mut reader, 2).await, &stream, 1);

        a.signal(ssegate_tests::Signal::Kill);
        // The lease (5 s) runs out; the reader, which has everything, is told the owner is gone.
        let body = reader.body_to_end().await;
        let blocks = sse::parse_all(&body);
        let last = blocks.last().unwrap_or_else(|| panic!("no error event: {}", ssegate_tests::show(&body)));
        assert_eq!(sse::assert_error_event(last, "upstream_lost"), 502, "{blocks:#?}");
        assert_eq!(last.id.as_deref(), Some(format!("{stream}.end").as_str()));
        assert!(
            blocks.iter().all(|b| b.data.is_none() || b.event.as_deref() == Some("error")),
            "{blocks:#?}"
        );
        drop(c1);
    })
    .await;
}

#[tokio::test]
async fn redis_killed_mid_stream_the_live_stream_completes_and_other_routes_never_notice() {
    bounded(async {
        let mut redis = RedisServer::start();
        let mock = MockUpstream::serve(numbered(10, 100)).await;
        let plain = MockUpstream::serve(numbered(3, 10)).await;
        let a = spec(&redis)
            .route(resumable("r", &mock))
            .route(RouteSpec::new("plain").upstream(&plain).heartbeat("0s"))
            .start()
            .await;

        let mut c1 = get(a.addr(), "/r").await;
        let stream = c1.header("ssegate-stream-id").unwrap().to_string();
        assert_events(&events(&mut c1, 2).await, &stream, 1);
        redis.kill();
        let body = c1.body_to_end().await;
        assert_eq!(c1.end(), Some(&ssegate_tests::client::End::Clean));
        let rest: Vec<Block> = sse::parse_all(&body).into_iter().filter(|b| b.data.is_some()).collect();
        assert_events(&rest, &stream, 3);
        assert_eq!(rest.len(), 8, "the live stream lost nothing: {rest:#?}");

        let s = Scrape::until(a.admin_addr(), |s| {
            s.value("ssegate_resume_store_errors_total", &[("store", "redis")]) > 0.0
        })
        .await;
        assert!(s.value("ssegate_resume_store_errors_total", &[("store", "redis")]) > 0.0, "{}", s.text);

        // While Redis is down: a route without resume is untouched, a resumable one still streams live, and a
        // resume is refused (the client reconnects later) rather than hanging.
        let mut p = get(a.addr(), "/plain").await;
        let body = p.body_to_end().await;
        assert_eq!(sse::parse_all(&body).iter().filter(|b| b.data.is_some()).count(), 3);
        assert!(p.header("ssegate-stream-id").is_none());
        let mut c2 = get(a.addr(), "/r").await;
        let body = c2.body_to_end().await;
        assert_eq!(sse::parse_all(&body).iter().filter(|b| b.data.is_some()).count(), 10);
        let c3 = resume(&a, "/r", Some(&format!("{stream}.2"))).await;
        assert_eq!(c3.status, 503, "{:?}", c3.headers);

        // Redis back (empty): new streams are resumable again.
        redis.restart();
        let mut c4 = get(a.addr(), "/r").await;
        let s4 = c4.header("ssegate-stream-id").unwrap().to_string();
        assert_events(&events(&mut c4, 1).await, &s4, 1);
        drop(c4);
        let mut c5 = resume(&a, "/r", Some(&format!("{s4}.1"))).await;
        assert_eq!(c5.status, 200);
        let body = c5.body_to_end().await;
        let rest: Vec<Block> = sse::parse_all(&body).into_iter().filter(|b| b.data.is_some()).collect();
        assert_events(&rest, &s4, 2);
        assert_eq!(rest.len(), 9);
    })
    .await;
}

/// A reader arriving while Redis hangs for longer than one command may take (2 s): the open is tried again
/// instead of answered `503` at once (which would end a browser's EventSource for good), and once Redis
/// answers the reader gets the rest of the stream.
#[tokio::test]
async fn a_reader_arriving_while_redis_hangs_for_a_moment_is_served_once_it_answers() {
    bounded(async {
        let redis = RedisServer::start();
        let mock = MockUpstream::serve(numbered(6, 20)).await;
        let a = spec(&redis).route(resumable("r", &mock)).start().await;
        let b = spec(&redis).route(resumable("r", &mock)).start().await;

        let mut c1 = get(a.addr(), "/r").await;
        let stream = c1.header("ssegate-stream-id").unwrap().to_string();
        assert_events(&events(&mut c1, 3).await, &stream, 1);
        c1.body_to_end().await;
        // The ending is in Redis (A's writer settles within a tick).
        let mut done = resume(&b, "/r", Some(&format!("{stream}.6"))).await;
        for _ in 0..50 {
            if done.status == 204 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            done = resume(&b, "/r", Some(&format!("{stream}.6"))).await;
        }
        assert_eq!(done.status, 204, "the stream's end never reached Redis");

        redis.pause();
        let reader = tokio::spawn({
            let addr = b.addr();
            let id = format!("{stream}.3");
            async move {
                request(addr, "GET", "/r", &[("Accept", "text/event-stream"), ("Last-Event-ID", &id)], b"")
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(2600)).await;
        redis.unpause();
        let mut c2 = reader.await.unwrap();
        assert_eq!(c2.status, 200, "{:?}", c2.headers);
        let body = c2.body_to_end().await;
        let rest: Vec<Block> = sse::parse_all(&body).into_iter().filter(|b| b.data.is_some()).collect();
        assert_eq!(rest.len(), 3, "{rest:#?}");
        assert_events(&rest, &stream, 4);
        // The call that timed out was counted.
        let s = Scrape::fetch(b.admin_addr()).await;
        assert!(s.value("ssegate_resume_store_errors_total", &[("store", "redis")]) >= 1.0, "{}", s.text);
        assert_eq!(mock.requests().len(), 1, "the upstream was requested once");
    })
    .await;
}

#[tokio::test]
async fn rediss_verifies_the_server_certificate() {
    bounded(async {
        let cert = TestCert::generate();
        let redis = RedisServer::start_tls(&cert);
        let mock = MockUpstream::serve(numbered(4, 100)).await;
        // The test CA replaces the system's roots, for this process only.
        let spec = GatewaySpec::new();
        let ca = spec.dir().join("redis-ca.pem");
        let gw = spec
            .file("redis-ca.pem", cert.cert_pem.as_bytes())
            .env("SSL_CERT_FILE", ca.to_str().unwrap())
            .redis(&redis.tls_url(), &[])
            .route(resumable("r", &mock))
            .start()
            .await;
        let mut c1 = get(gw.addr(), "/r").await;
        let stream = c1.header("ssegate-stream-id").unwrap().to_string();
        assert_events(&events(&mut c1, 1).await, &stream, 1);
        drop(c1);
        let mut c2 = resume(&gw, "/r", Some(&format!("{stream}.1"))).await;
        let body = c2.body_to_end().await;
        let rest: Vec<Block> = sse::parse_all(&body).into_iter().filter(|b| b.data.is_some()).collect();
        assert_events(&rest, &stream, 2);
        assert_eq!(rest.len(), 3);
        let s = Scrape::fetch(gw.admin_addr()).await;
        assert_eq!(s.value("ssegate_resume_store_errors_total", &[("store", "redis")]), 0.0);

        // Without the test CA the certificate is refused: streams go on live, unresumable, and it is counted.
        let untrusting =
            GatewaySpec::new().redis(&redis.tls_url(), &[]).route(resumable("r", &mock)).start().await;
        let mut c3 = get(untrusting.addr(), "/r").await;
        let s3 = c3.header("ssegate-stream-id").unwrap().to_string();
        let body = c3.body_to_end().await;
        assert_eq!(sse::parse_all(&body).iter().filter(|b| b.data.is_some()).count(), 4);
        let s = Scrape::until(untrusting.admin_addr(), |s| {
            s.value("ssegate_resume_store_errors_total", &[("store", "redis")]) > 0.0
        })
        .await;
        assert!(s.value("ssegate_resume_store_errors_total", &[("store", "redis")]) > 0.0, "{}", s.text);
        let c4 = resume(&untrusting, "/r", Some(&format!("{s3}.1"))).await;
        assert_eq!(c4.status, 503);
        assert!(untrusting.stderr().contains("certificate"), "{}", untrusting.stderr());
    })
    .await;
}

#[tokio::test]
async fn a_reader_on_another_instance_keeps_a_detached_stream_alive_and_its_leaving_ends_it() {
    bounded(async {
        let redis = RedisServer::start();
        // 80 events 250 ms apart (20 s): after the reader leaves (~6 s in), A needs up to a presence check
        // (1 s) and its detach_timeout (3 s) to abort — far from the upstream's own end even on a loaded machine.
        let mock = MockUpstream::serve(numbered(80, 250)).await;
        let route = |mock: &MockUpstream| resumable("r", mock).set("detach_timeout", "3s");
        let a = spec(&redis).route(route(&mock)).start().await;
        let b = spec(&redis).route(route(&mock)).start().await;

        let mut c1 = get(a.addr(), "/r").await;
        let stream = c1.header("ssegate-stream-id").unwrap().to_string();
        assert_events(&events(&mut c1, 1).await, &stream, 1);
        drop(c1);
        // Nobody reads on A; a reader on B follows well past A's detach_timeout.
        let mut reader = resume(&b, &format!("/r/_streams/{stream}?after=1"), None).await;
        assert_eq!(reader.status, 200);
        let got = events(&mut reader, 24).await; // events 2..=25: about 6 s
        assert_events(&got, &stream, 2);
        assert_eq!(mock.peer_closed(), 0, "A kept the upstream while B's reader followed");
        // The reader leaves: A aborts the upstream after its detach_timeout, long before event 80.
        drop(reader);
        assert!(mock.wait_peer_closed(1, Duration::from_secs(10)).await, "A never aborted the upstream");
        assert!(mock.send_times().len() < 80, "aborted before the end: {}", mock.send_times().len());
        assert_eq!(mock.requests().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn on_another_instance_only_the_key_that_started_the_stream_resumes_it() {
    bounded(async {
        let redis = RedisServer::start();
        let mock = MockUpstream::serve(numbered(3, 50)).await;
        let gw = || {
            spec(&redis)
                .route(resumable("r", &mock).auth_keys_env(&["SSEGATE_TEST_REDIS_KEYS"]))
                .env("SSEGATE_TEST_REDIS_KEYS", "key-one,key-two")
        };
        let (a, b) = (gw().start().await, gw().start().await);
        let one = [("Accept", "text/event-stream"), ("Authorization", "Bearer key-one")];
        let mut c1 = request(a.addr(), "GET", "/r", &one, b"").await;
        let stream = c1.header("ssegate-stream-id").unwrap().to_string();
        assert_eq!(sse::parse_all(&c1.body_to_end().await).iter().filter(|b| b.data.is_some()).count(), 3);
        let path = format!("/r/_streams/{stream}");

        let two = [("Accept", "text/event-stream"), ("Authorization", "Bearer key-two")];
        let mut other_key = request(b.addr(), "GET", &path, &two, b"").await;
        ssegate_tests::expect_json_error(&mut other_key, 403, "forbidden").await;
        let mut no_key = request(b.addr(), "GET", &path, &[("Accept", "text/event-stream")], b"").await;
        assert_eq!(no_key.status, 401);
        no_key.body_to_end().await;
        let mut same_key = request(b.addr(), "GET", &path, &one, b"").await;
        assert_eq!(same_key.status, 200);
        let all: Vec<Block> =
            sse::parse_all(&same_key.body_to_end().await).into_iter().filter(|b| b.data.is_some()).collect();
        assert_events(&all, &stream, 1);
        assert_eq!(all.len(), 3);
        // The key itself is nowhere in Redis; its SHA-256 is.
        let key = redis.command(&["HGET", &format!("e2e:m:{stream}"), "key"]).text();
        assert_eq!(key.len(), 64, "{key}");
        assert!(!key.contains("key-one"));
        assert_eq!(mock.requests().len(), 1);
    })
    .await;
}
