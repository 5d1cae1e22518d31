//! A graceful upgrade (`run -u` + SIGQUIT) under load on resumable routes (issue 17 item 2, issue 12).
//!
//! - `store = "redis"`: every stream's client is handed over when the old process starts shutting down
//!   (`retry:` and a clean close); it reconnects with `Last-Event-ID`, as `EventSource` does, lands on the new
//!   process and follows the stream from Redis, while the old process keeps recording the upstream. Each
//!   client ends with the complete event list (in order, no gap, no duplicate), each stream's upstream was
//!   requested once, and no connection was refused. Streams that outlive `shutdown_drain` end with the
//!   recorded `event: error` of type `shutdown`, never a hang.
//! - `store = "memory"`: no hand-over (the new process has no copy): the stream ends with `retry:` and the
//!   recorded `shutdown` error; the reconnect gets `404 resume_unknown` (`EventSource` stops there), and no
//!   second generation is started.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ssegate_tests::client::{Conn, End, H2Conn, Response};
use ssegate_tests::redis::RedisServer;
use ssegate_tests::sse::{self, Block};
use ssegate_tests::{
    bounded, show, Gateway, GatewaySpec, MockUpstream, Reply, RouteSpec, Signal, Step, Toml,
};

/// Streams in flight during the upgrade.
const STREAMS: usize = 100;
/// Events of a stream that ends during the drain (100 ms apart: it outlives pingora's 5 s before the
/// shutdown broadcast, not the drain).
const SHORT: usize = 90;
/// Events of a stream that outlives the drain (every tenth stream).
const LONG: usize = 250;

/// NDJSON upstream: `{"n":1}` … `{"n":count}`, `gap_ms` apart, then a clean end.
fn numbered(count: usize, gap_ms: u64) -> Reply {
    let mut steps = Vec::new();
    for n in 1..=count {
        if n > 1 {
            steps.push(Step::Sleep(gap_ms));
        }
        steps.push(Step::send(format!("{{\"n\":{n}}}\n")));
    }
    steps.push(Step::End);
    Reply::stream("application/x-ndjson", steps)
}

/// A mock whose `/s<i>` streams `LONG` events for every tenth `i`, `SHORT` for the others.
async fn mock() -> MockUpstream {
    MockUpstream::start(|req| {
        let i: usize = req.target.trim_start_matches("/s").parse().unwrap_or(0);
        numbered(if i % 10 == 9 { LONG } else { SHORT }, 100)
    })
    .await
}

fn route(mock: &MockUpstream, store: &str) -> RouteSpec {
    RouteSpec::new("r")
        .upstream(mock)
        .heartbeat("0s")
        .set("resume", Toml::table([("store", store), ("ttl", "1m")]))
}

/// What one `EventSource`-like client saw over all its connections.
#[derive(Debug, Default)]
struct Seen {
    /// Every block with data, in arrival order, over all connections.
    events: Vec<Block>,
    /// The status of each response.
    statuses: Vec<u16>,
    /// How each 200 response's body ended.
    ends: Vec<Option<End>>,
    /// The body of the last response that was not 200 or 204.
    refused_body: Option<String>,
}

/// An `EventSource`: `GET path`, reads events until the body ends, then waits the last `retry:` (3 s by
/// default) and reconnects with `Last-Event-ID` (the last id seen); stops on a status other than 200, like a
/// browser. A connection that cannot be made is an error (it would be a refused connection).
async fn event_source(addr: SocketAddr, path: &str) -> Result<Seen, String> {
    EventSource::default().run(addr, path).await
}

/// The state of one [`event_source`] across its connections.
#[derive(Debug, Default)]
struct EventSource {
    seen: Seen,
    last_id: Option<String>,
    retry: Option<Duration>,
}

impl EventSource {
    /// Reads one response; whether to reconnect (it was a 200).
    async fn read(&mut self, mut resp: Response) -> bool {
        self.seen.statuses.push(resp.status);
        if resp.status != 200 {
            self.seen.refused_body = Some(show(&resp.body_to_end().await));
            return false;
        }
        while let Some(raw) = resp.next_event().await {
            let block = sse::parse_block(std::str::from_utf8(&raw).unwrap());
            if let Some(ms) = block.retry.as_deref().and_then(|r| r.parse().ok()) {
                self.retry = Some(Duration::from_millis(ms));
            }
            if let Some(id) = &block.id {
                self.last_id = Some(id.clone());
            }
            if block.data.is_some() {
                self.seen.events.push(block);
            }
        }
        self.seen.ends.push(resp.end().cloned());
        true
    }

    /// Connects (again, after the first response was read by [`EventSource::read`]) until a non-200 answer.
    async fn run(mut self, addr: SocketAddr, path: &str) -> Result<Seen, String> {
        for _ in 0..6 {
            if !self.seen.statuses.is_empty() {
                tokio::time::sleep(self.retry.unwrap_or(Duration::from_secs(3))).await;
            }
            let conn = Conn::try_connect(addr)
                .await
                .map_err(|e| format!("connect #{}: {e}", self.seen.statuses.len()))?;
            let mut headers = vec![("Accept", "text/event-stream")];
            if let Some(id) = &self.last_id {
                headers.push(("Last-Event-ID", id.as_str()));
            }
            if !self.read(conn.send("GET", path, &headers, b"").await).await {
                return Ok(self.seen);
            }
        }
        Err(format!("still reconnecting after 6 connections: {:?}", self.seen))
    }
}

/// Checks that `events` are `{"n":1}`…`{"n":k}` with ids `<stream>.<n>` of one stream, in order, once each;
/// returns `k` and whatever follows them.
#[track_caller]
fn contiguous(i: usize, events: &[Block]) -> (usize, &[Block]) {
    let stream = events
        .first()
        .and_then(|b| b.id.as_deref())
        .and_then(|id| id.split_once('.'))
        .map(|(s, _)| s.to_string())
        .unwrap_or_else(|| panic!("stream {i}: no first event with an id: {events:?}"));
    let mut k = 0;
    for b in events {
        if b.event.is_some() {
            break;
        }
        let n = k + 1;
        assert_eq!(
            b.data.as_deref(),
            Some(format!("{{\"n\":{n}}}").as_str()),
            "stream {i}, event {n}: {events:#?}"
        );
        assert_eq!(b.id.as_deref(), Some(format!("{stream}.{n}").as_str()), "stream {i}, event {n}");
        k = n;
    }
    (k, &events[k..])
}

/// Starts the upgrade of `old` and sends it SIGQUIT once the new process listens for the hand-over.
async fn upgrade(old: &Gateway) -> Gateway {
    let mut new = old.spawn_upgrade();
    let sock = old.dir().join("upgrade.sock");
    let t = Instant::now();
    while !sock.exists() {
        assert!(t.elapsed() < Duration::from_secs(5), "the new process never opened {}", sock.display());
        if let Some(s) = new.wait_exit(Duration::from_millis(10)).await {
            panic!("the upgrading process exited ({s}):\n{}", new.stderr());
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    old.signal(Signal::Quit);
    new
}

/// The upstream requests by target: each `/s<i>` must have been requested exactly once.
#[track_caller]
fn requested_once(mock: &MockUpstream, n: usize) {
    let mut by_target: HashMap<String, usize> = HashMap::new();
    for r in mock.requests() {
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

#[tokio::test]
async fn an_upgrade_hands_redis_resumable_streams_over_with_nothing_lost() {
    bounded(async {
        let redis = RedisServer::start();
        let mock = mock().await;
        // Pingora broadcasts the shutdown 5 s after SIGQUIT; SHORT streams (9 s) end within the 6 s drain
        // after it, LONG ones (25 s) do not.
        let mut old = GatewaySpec::new()
            .redis(&redis.url(), &[("key_prefix", "up:")])
            .server(|s| s.shutdown_drain("6s").shutdown_retry("200ms"))
            .route(route(&mock, "redis"))
            .args(["--log-format", "json"])
            .start()
            .await;
        let addr = old.addr();
        let clients: Vec<_> = (0..STREAMS)
            .map(|i| tokio::spawn(async move { (i, event_source(addr, &format!("/r/s{i}")).await) }))
            .collect();
        assert!(mock.wait_requests(STREAMS, Duration::from_secs(10)).await, "streams not all open");
        let mut new = upgrade(&old).await;

        let (mut handed, mut shut) = (0, 0);
        for c in clients {
            let (i, seen) = c.await.unwrap();
            let seen = seen.unwrap_or_else(|e| panic!("stream {i}: {e}"));
            // The last reconnect finds the stream ended: 204, and the client stops.
            assert_eq!(seen.statuses.last(), Some(&204), "stream {i}: {seen:?}");
            assert!(
                seen.statuses[..seen.statuses.len() - 1].iter().all(|s| *s == 200),
                "stream {i}: {seen:?}"
            );
            assert!(
                seen.ends.iter().all(|e| e == &Some(End::Clean)),
                "stream {i}: a body cut short: {seen:?}"
            );
            let (k, rest) = contiguous(i, &seen.events);
            if i % 10 == 9 {
                // Recorded on the old process until the drain passed, then its recorded ending.
                assert!(k < LONG, "stream {i}: all {k} events before the drain passed");
                assert_eq!(rest.len(), 1, "stream {i}: after event {k}: {rest:?}");
                sse::assert_error_event(&rest[0], "shutdown");
                shut += 1;
            } else {
                assert_eq!(k, SHORT, "stream {i}: {k} of {SHORT} events");
                assert!(rest.is_empty(), "stream {i}: after the last event: {rest:?}");
            }
            // Two 200s: the old process, then the new one following from Redis.
            if seen.statuses.len() > 2 {
                handed += 1;
            }
        }
        requested_once(&mock, STREAMS);
        assert!(handed >= STREAMS / 2, "only {handed} of {STREAMS} streams were handed over");

        assert!(old.wait_exit(Duration::from_secs(15)).await.is_some(), "the old process did not exit");
        let lines = old.access_lines(STREAMS).await;
        let handovers = lines
            .iter()
            .filter(|l| {
                l["disconnect"] == "handover" && l["outcome"] == "shutdown" && l.get("error").is_none()
            })
            .count();
        assert_eq!(handovers, handed, "access log of the old process: {lines:#?}");
        eprintln!(
            "upgrade with redis resume: {STREAMS} streams, {handed} handed over, {shut} ended by the drain"
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
