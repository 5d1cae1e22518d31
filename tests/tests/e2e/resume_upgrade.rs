//! A graceful upgrade (`run -u` + SIGQUIT) under load on resumable routes (issue 17 item 2, issue 12).
//!
//! - `store = "redis"`, 1,000 streams: every stream's client is handed over when the old process starts
//!   shutting down (`retry:` and a clean close); it reconnects with `Last-Event-ID`, as `EventSource` does,
//!   lands on the new process and follows the stream from Redis, while the old process keeps recording the
//!   upstream. Each client ends with the complete event list (in order, no gap, no duplicate), each stream's
//!   upstream was requested once, and a prober opening new connections throughout saw none refused or failed.
//!   Streams that outlive `shutdown_drain` end with the recorded `event: error` of type `shutdown`, never a
//!   hang.
//! - `store = "memory"`: no hand-over (the new process has no copy): the stream ends with `retry:` and the
//!   recorded `shutdown` error; the reconnect gets `404 resume_unknown` (`EventSource` stops there), and no
//!   second generation is started.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use ssegate_tests::client::{End, H2Conn};
use ssegate_tests::mock::Gate;
use ssegate_tests::redis::RedisServer;
use ssegate_tests::sse;
use ssegate_tests::{bounded, GatewaySpec, MockUpstream, Reply, RouteSpec, Step, Toml};

use crate::streams::{
    contiguous, heavy, numbered, numbered_gated, upgrade, wait_count, EventSource, Prober, Seen, STREAMS,
};

/// Events of a stream that ends during the drain (100 ms apart: it outlives pingora's 5 s before the
/// shutdown broadcast, not the 6 s drain).
const SHORT: usize = 90;
/// Events of a stream that outlives the drain.
const LONG: usize = 250;

/// An `EventSource` on `GET path` (see [`EventSource`]).
async fn event_source(addr: std::net::SocketAddr, path: &str) -> Result<Seen, String> {
    EventSource::default().run(addr, path).await
}

fn route(mock: &MockUpstream, store: &str) -> RouteSpec {
    RouteSpec::new("r")
        .upstream(mock)
        .heartbeat("0s")
        .set("resume", Toml::table([("store", store), ("ttl", "1m")]))
}

/// The upstream requests by target: each `/s<i>` must have been requested exactly once (the probes' `/ok`
/// aside).
#[track_caller]
fn requested_once(mock: &MockUpstream, n: usize) {
    let mut by_target: HashMap<String, usize> = HashMap::new();
    for r in mock.requests().into_iter().filter(|r| r.target != "/ok") {
        *by_target.entry(r.target.clone()).or_default() += 1;
    }
    for i in 0..n {
        assert_eq!(
            by_target.get(&format!("/s{i}")),
            Some(&1),
            "upstream requests of stream {i}: {by_target:?}"
        );
    }
    assert_eq!(by_target.len(), n, "{by_target:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_hands_redis_resumable_streams_over_with_nothing_lost() {
    // Nine streams in ten: 8 events 250 ms apart, then held at a gate that opens once every client was
    // handed over, then 8 more and the end — recorded by the old process during its drain while the client
    // follows on the new one. Every tenth: an event every 250 ms that never ends, until the 8 s drain passes.
    const FIRST: usize = 8;
    const N: usize = 16;
    let is_long = |i: usize| i % 10 == 9;
    heavy(async {
        let redis = RedisServer::start();
        let tail = Gate::new();
        let gate = tail.clone();
        let mock = MockUpstream::start(move |req| {
            let Some(i) = req.target.strip_prefix("/s").and_then(|i| i.parse().ok()) else {
                return Reply::stream("application/x-ndjson", vec![Step::send("{\"ok\":1}\n"), Step::End]);
            };
            if is_long(i) {
                numbered_gated(LONG, &Gate::new(), LONG + 1, 250)
            } else {
                numbered_gated(FIRST, &gate, N, 250)
            }
        })
        .await;
        let mut old = GatewaySpec::new()
            .redis(&redis.url(), &[("key_prefix", "up:")])
            .server(|s| s.shutdown_drain("8s").shutdown_retry("200ms"))
            .route(route(&mock, "redis"))
            .route(RouteSpec::new("p").upstream(&mock).heartbeat("0s"))
            .args(["--log-format", "json"])
            .start()
            .await;
        let addr = old.addr();
        let first_ends = Arc::new(AtomicUsize::new(0));
        let clients: Vec<_> = (0..STREAMS)
            .map(|i| {
                let es = EventSource::counting(first_ends.clone());
                tokio::spawn(async move { (i, es.run(addr, &format!("/r/s{i}")).await) })
            })
            .collect();
        assert!(mock.wait_requests(STREAMS, Duration::from_secs(30)).await, "streams not all open");
        let prober = Prober::start(addr, "/p/ok", b"data: {\"ok\":1}\n\n");
        let mut new = upgrade(&old).await;
        // Pingora starts the shutdown 5 s after SIGQUIT: every client is handed over then.
        wait_count(&first_ends, STREAMS, Duration::from_secs(30), "first connections ended").await;
        tail.open_many(STREAMS);

        let (mut shut, mut reconnects) = (0, 0);
        for c in clients {
            let (i, seen) = c.await.unwrap();
            let seen = seen.unwrap_or_else(|e| panic!("stream {i}: {e}"));
            // The old process, then the new one following from Redis (a follower that loses Redis for a
            // moment is closed and reconnects with its last id: one more 200); the last reconnect finds the
            // stream ended: 204, and the client stops.
            let (last, followed) = seen.statuses.split_last().unwrap();
            assert!(*last == 204 && followed.len() >= 2 && followed.iter().all(|s| *s == 200), "stream {i}: {seen:?}");
            reconnects += followed.len() - 2;
            assert!(
                seen.ends.iter().all(|e| e == &Some(End::Clean)),
                "stream {i}: a body cut short: {seen:?}"
            );
            let (k, rest) = contiguous(i, &seen.events);
            if is_long(i) {
                // Recorded on the old process until the drain passed, then its recorded ending.
                assert!(k < LONG, "stream {i}: all {k} events before the drain passed");
                assert_eq!(rest.len(), 1, "stream {i}: after event {k}: {rest:?}");
                sse::assert_error_event(&rest[0], "shutdown");
                shut += 1;
            } else {
                assert_eq!(k, N, "stream {i}: {k} of {N} events");
                assert!(rest.is_empty(), "stream {i}: after the last event: {rest:?}");
            }
        }
        requested_once(&mock, STREAMS);
        assert_eq!(shut, STREAMS / 10);

        assert!(old.wait_exit(Duration::from_secs(15)).await.is_some(), "the old process did not exit");
        let probes = prober.stop().await;
        assert!(probes.refused.is_empty(), "{} probes refused: {:?}", probes.refused.len(), probes.refused);
        assert!(probes.failed.is_empty(), "{} probes failed: {:?}", probes.failed.len(), probes.failed);
        assert!(probes.ok >= 20, "only {} probes during the hand-over", probes.ok);
        let lines = old.access_lines(STREAMS).await;
        let handovers = lines
            .iter()
            .filter(|l| {
                l["disconnect"] == "handover" && l["outcome"] == "shutdown" && l.get("error").is_none()
            })
            .count();
        assert_eq!(handovers, STREAMS, "access log of the old process: {} lines", lines.len());
        eprintln!(
            "upgrade with redis resume: {STREAMS} streams handed over, {shut} ended by the drain, {reconnects} \
             reconnects after a store timeout; {} probes ok, 0 refused, 0 failed",
            probes.ok
        );
        new.assert_no_panic();
        old.assert_no_panic();
    })
    .await;
}

#[tokio::test]
async fn streams_on_one_http2_connection_are_handed_over_each_with_a_clean_end() {
    bounded(async {
        const N: usize = 6;
        let redis = RedisServer::start();
        let mock = MockUpstream::start(|_| numbered(SHORT, 100)).await;
        let mut old = GatewaySpec::new()
            .redis(&redis.url(), &[("key_prefix", "up2:")])
            .server(|s| s.shutdown_drain("6s").shutdown_retry("200ms"))
            .route(route(&mock, "redis"))
            .start()
            .await;
        let addr = old.addr();
        // All first requests on one h2c connection; the reconnects are EventSource's (HTTP/1.1).
        let h2 = std::sync::Arc::new(H2Conn::h2c(addr).await);
        let clients: Vec<_> = (0..N)
            .map(|i| {
                let h2 = h2.clone();
                tokio::spawn(async move {
                    let path = format!("/r/s{i}");
                    let mut es = EventSource::default();
                    let first = h2.request("GET", &path, b"").await;
                    assert_eq!(first.version, "HTTP/2.0");
                    es.read(first).await;
                    (i, es.run(addr, &path).await)
                })
            })
            .collect();
        assert!(mock.wait_requests(N, Duration::from_secs(10)).await, "streams not all open");
        let mut new = upgrade(&old).await;
        for c in clients {
            let (i, seen) = c.await.unwrap();
            let seen = seen.unwrap_or_else(|e| panic!("stream {i}: {e}"));
            assert_eq!(seen.statuses, [200, 200, 204], "stream {i}: handed over, followed, ended: {seen:?}");
            // END_STREAM, not a reset: the hand-over is a clean end of the h2 stream.
            assert!(seen.ends.iter().all(|e| e == &Some(End::Clean)), "stream {i}: {seen:?}");
            let (k, rest) = contiguous(i, &seen.events);
            assert_eq!(k, SHORT, "stream {i}");
            assert!(rest.is_empty(), "stream {i}: {rest:?}");
        }
        requested_once(&mock, N);
        assert!(old.wait_exit(Duration::from_secs(15)).await.is_some(), "the old process did not exit");
        new.assert_no_panic();
    })
    .await;
}

#[tokio::test]
async fn an_upgrade_ends_memory_resumable_streams_with_shutdown_and_the_reconnect_gets_404() {
    bounded(async {
        const N: usize = 10;
        let mock = MockUpstream::start(|_| numbered(LONG, 100)).await;
        let mut old = GatewaySpec::new()
            .server(|s| s.shutdown_drain("1s").shutdown_retry("200ms"))
            .route(route(&mock, "memory"))
            .start()
            .await;
        let addr = old.addr();
        let clients: Vec<_> = (0..N)
            .map(|i| tokio::spawn(async move { (i, event_source(addr, &format!("/r/s{i}")).await) }))
            .collect();
        assert!(mock.wait_requests(N, Duration::from_secs(10)).await, "streams not all open");
        let mut new = upgrade(&old).await;
        for c in clients {
            let (i, seen) = c.await.unwrap();
            let seen = seen.unwrap_or_else(|e| panic!("stream {i}: {e}"));
            assert_eq!(seen.statuses, [200, 404], "stream {i}: {seen:?}");
            let body = seen.refused_body.as_deref().unwrap_or_default();
            assert!(body.contains("resume_unknown"), "stream {i}: {body}");
            let (k, rest) = contiguous(i, &seen.events);
            assert!(k > 0 && k < LONG, "stream {i}: {k} events");
            assert_eq!(rest.len(), 1, "stream {i}: after event {k}: {rest:?}");
            sse::assert_error_event(&rest[0], "shutdown");
        }
        // No second generation: the reconnect did not reach the upstream.
        assert_eq!(mock.requests().len(), N);
        assert!(old.wait_exit(Duration::from_secs(10)).await.is_some(), "the old process did not exit");
        new.assert_no_panic();
    })
    .await;
}
