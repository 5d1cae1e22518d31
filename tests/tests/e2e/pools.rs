//! Upstream pools: failover before the first event (refused, 5xx, silent backends), passive ejection,
//! backups, all backends down, consistent hashing, per-backend credentials.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use ssegate_tests::client::End;
use ssegate_tests::metrics::Scrape;
use ssegate_tests::pool::{refusing_url, BackendSpec};
use ssegate_tests::{
    assert_bytes, assert_sse_head, bounded, expect_json_error, get, request, show, MockUpstream, Reply, Step,
    Toml,
};
use ssegate_tests::{GatewaySpec, RouteSpec};

const EVENTS: &[u8] = b"data: one\n\ndata: two\n\n";

fn sse_reply() -> Reply {
    Reply::stream(
        "text/event-stream",
        vec![Step::send("data: one\n\n"), Step::Sleep(5), Step::send("data: two\n\n"), Step::End],
    )
}

/// The body without heartbeat comments.
fn without_heartbeats(body: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(body).replace(": keepalive\n\n", "").into_bytes()
}

fn retry(attempts: i64, on: &[&str], first_event: Option<&str>) -> Toml {
    let mut t = vec![("attempts".to_string(), Toml::Int(attempts)), ("on".to_string(), Toml::strs(on))];
    if let Some(f) = first_event {
        t.push(("first_event_timeout".to_string(), Toml::from(f)));
    }
    Toml::Table(t)
}

fn passive(max_fails: i64, fail_timeout: &str) -> Toml {
    Toml::table([("max_fails", Toml::Int(max_fails)), ("fail_timeout", Toml::from(fail_timeout))])
}

#[tokio::test]
async fn refused_and_503_backends_fail_over_to_the_healthy_one() {
    bounded(async {
        let busy = MockUpstream::serve(Reply::full(503, "application/json", "{\"error\":\"busy\"}")).await;
        let good = MockUpstream::serve(sse_reply()).await;
        // Round robin over [refused, good, busy]: every request either lands on `good` or fails over to it;
        // each bad backend is ejected after its first failure.
        let gw = GatewaySpec::new()
            .route(
                RouteSpec::new("r")
                    .backends([
                        BackendSpec::new("refused", &refusing_url()),
                        BackendSpec::new("good", &good),
                        BackendSpec::new("busy", &busy),
                    ])
                    .set("retry", retry(2, &["connect", "5xx"], None))
                    .set("passive", passive(1, "30s"))
                    .heartbeat("5s"),
            )
            .args(["--log-format", "json"])
            .start()
            .await;
        const N: usize = 100;
        for i in 0..N {
            let mut resp = request(gw.addr(), "POST", "/r/v1/chat", &[], b"{\"n\":1}").await;
            assert_sse_head(&resp);
            assert_bytes(&resp.body_to_end().await, EVENTS);
            assert_eq!(resp.end(), Some(&End::Clean), "request {i}");
        }
        // The body was replayed to the backend that answered.
        assert_eq!(good.requests().len(), N);
        assert!(good.requests().iter().all(|r| r.body == b"{\"n\":1}"));
        assert_eq!(busy.requests().len(), 1, "ejected after its one failure");

        let s = Scrape::until(gw.admin_addr(), |s| {
            s.value("ssegate_backend_requests_total", &[("backend", "good"), ("result", "ok")]) == N as f64
        })
        .await;
        let v = |b: &str, r: &str| {
            s.value("ssegate_backend_requests_total", &[("route", "r"), ("backend", b), ("result", r)])
        };
        assert_eq!(v("refused", "connect"), 1.0);
        assert_eq!(v("busy", "status"), 1.0);
        assert_eq!(
            s.value("ssegate_upstream_failovers_total", &[("route", "r"), ("reason", "connect")]),
            1.0
        );
        assert_eq!(s.value("ssegate_upstream_failovers_total", &[("route", "r"), ("reason", "status")]), 1.0);
        assert_eq!(s.value("ssegate_backend_up", &[("route", "r"), ("backend", "refused")]), 0.0);
        assert_eq!(s.value("ssegate_backend_up", &[("route", "r"), ("backend", "good")]), 1.0);
        assert_eq!(
            s.value(
                "ssegate_backend_ejections_total",
                &[("route", "r"), ("backend", "busy"), ("by", "passive")]
            ),
            1.0
        );

        let lines = gw.access_lines(N).await;
        assert_eq!(lines.len(), N);
        let mut attempts = [0usize; 3];
        for l in &lines {
            assert_eq!(l["backend"], "good", "{l}");
            let a = l["attempts"].as_u64().unwrap() as usize;
            assert!((1..=2).contains(&a), "{l}");
            attempts[a] += 1;
        }
        assert_eq!(attempts[2], 2, "two requests needed a second attempt: {lines:?}");
    })
    .await;
}

#[tokio::test]
async fn passive_ejection_then_backup_then_all_down_is_503_at_once() {
    bounded(async {
        let spare = MockUpstream::serve(sse_reply()).await;
        let gw = GatewaySpec::new()
            .route(
                RouteSpec::new("r")
                    .backends([
                        BackendSpec::new("a", &refusing_url()),
                        BackendSpec::new("b", &refusing_url()),
                        BackendSpec::new("spare", &spare).backup(),
                    ])
                    .set("retry", retry(1, &["connect"], None))
                    .set("passive", passive(2, "30s")),
            )
            .start()
            .await;
        // Two failures each (one attempt per request) eject a and b; the backup was never used meanwhile.
        for _ in 0..4 {
            expect_json_error(&mut get(gw.addr(), "/r").await, 502, "upstream_connect").await;
        }
        assert!(spare.requests().is_empty(), "a backup is used only when no primary is available");
        // Now only the backup is left.
        for _ in 0..3 {
            let mut resp = get(gw.addr(), "/r").await;
            assert_sse_head(&resp);
            assert_bytes(&resp.body_to_end().await, EVENTS);
        }
        assert_eq!(spare.requests().len(), 3);

        // All down (no backup): 503 upstream_unavailable at once.
        let gw2 = GatewaySpec::new()
            .route(
                RouteSpec::new("r")
                    .backends([
                        BackendSpec::new("a", &refusing_url()),
                        BackendSpec::new("b", &refusing_url()),
                    ])
                    .set("passive", passive(1, "30s")),
            )
            .start()
            .await;
        expect_json_error(&mut get(gw2.addr(), "/r").await, 502, "upstream_connect").await;
        let t = Instant::now();
        expect_json_error(&mut get(gw2.addr(), "/r").await, 503, "upstream_unavailable").await;
        assert!(t.elapsed() < Duration::from_secs(2), "not a hang: {:?}", t.elapsed());
        let s = Scrape::fetch(gw2.admin_addr()).await;
        assert_eq!(
            s.value("ssegate_upstream_errors_total", &[("route", "r"), ("kind", "upstream_unavailable")]),
            1.0
        );
    })
    .await;
}

#[tokio::test]
async fn a_silent_backend_is_left_after_first_event_timeout() {
    bounded(async {
        // A answers its head at once and then sends nothing.
        let silent = MockUpstream::serve(Reply::stream("text/event-stream", vec![Step::Sleep(30_000)])).await;
        let good = MockUpstream::serve(sse_reply()).await;
        let gw = GatewaySpec::new()
            .route(
                RouteSpec::new("r")
                    .backends([BackendSpec::new("silent", &silent), BackendSpec::new("good", &good)])
                    .set("retry", retry(2, &["connect"], Some("600ms")))
                    .heartbeat("200ms"),
            )
            .start()
            .await;
        let t = Instant::now();
        let mut resp = get(gw.addr(), "/r").await;
        assert_sse_head(&resp);
        let body = resp.body_to_end().await;
        assert_bytes(&without_heartbeats(&body), EVENTS);
        assert!(t.elapsed() >= Duration::from_millis(550), "{:?}", t.elapsed());
        assert!(
            String::from_utf8_lossy(&body).contains(": keepalive"),
            "heartbeats covered the wait: \"{}\"",
            show(&body)
        );
        assert_eq!(silent.requests().len(), 1);
        assert_eq!(good.requests().len(), 1);
        assert!(
            silent.wait_peer_closed(1, Duration::from_secs(3)).await,
            "the silent backend's connection was closed"
        );
        let s = Scrape::fetch(gw.admin_addr()).await;
        assert_eq!(
            s.value("ssegate_upstream_failovers_total", &[("route", "r"), ("reason", "first_event")]),
            1.0
        );
    })
    .await;
}

#[tokio::test]
async fn after_the_first_event_a_reset_is_an_error_event_and_nothing_is_retried() {
    bounded(async {
        let breaks = MockUpstream::serve(Reply::stream(
            "text/event-stream",
            vec![Step::send("data: one\n\n"), Step::Sleep(50), Step::Reset],
        ))
        .await;
        let good = MockUpstream::serve(sse_reply()).await;
        let gw = GatewaySpec::new()
            .route(
                RouteSpec::new("r")
                    .backends([BackendSpec::new("breaks", &breaks), BackendSpec::new("good", &good)])
                    .set("retry", retry(2, &["connect", "timeout", "5xx"], Some("5s"))),
            )
            .start()
            .await;
        let mut resp = get(gw.addr(), "/r").await;
        assert_sse_head(&resp);
        let body = String::from_utf8_lossy(&resp.body_to_end().await).to_string();
        assert!(body.starts_with("data: one\n\n"), "{body}");
        assert!(body.contains("event: error\n") && body.contains("upstream_reset"), "{body}");
        assert!(!body.contains("data: two"), "{body}");
        assert!(good.requests().is_empty(), "no retry after the first event");
    })
    .await;
}

#[tokio::test]
async fn consistent_hash_keeps_a_user_on_one_backend() {
    bounded(async {
        let mocks = [
            MockUpstream::serve(sse_reply()).await,
            MockUpstream::serve(sse_reply()).await,
            MockUpstream::serve(sse_reply()).await,
        ];
        let gw = GatewaySpec::new()
            .route(
                RouteSpec::new("r")
                    .backends([
                        BackendSpec::new("a", &mocks[0]),
                        BackendSpec::new("b", &mocks[1]),
                        BackendSpec::new("c", &mocks[2]),
                    ])
                    .set("balance", "hash:header:x-user-id"),
            )
            .start()
            .await;
        for _ in 0..100 {
            let mut resp = request(gw.addr(), "GET", "/r", &[("x-user-id", "alice")], b"").await;
            assert_bytes(&resp.body_to_end().await, EVENTS);
        }
        let counts: Vec<usize> = mocks.iter().map(|m| m.requests().len()).collect();
        assert!(counts.contains(&100), "one backend took every request of one user: {counts:?}");
    })
    .await;
}

#[tokio::test]
async fn per_backend_credentials_reach_only_their_backend() {
    bounded(async {
        let a = MockUpstream::serve(sse_reply()).await;
        let b = MockUpstream::serve(sse_reply()).await;
        let gw = GatewaySpec::new()
            .env("POOL_KEY_A", "sk-a-secret-123")
            .route(
                RouteSpec::new("r")
                    .backends([
                        BackendSpec::new("a", &a).headers(&[("Authorization", "Bearer ${env:POOL_KEY_A}")]),
                        BackendSpec::new("b", &b).headers(&[("x-tenant", "bee")]),
                    ])
                    .upstream_headers(&[("x-org", "org-1"), ("x-tenant", "route")]),
            )
            .start()
            .await;
        for _ in 0..4 {
            let mut resp =
                request(gw.addr(), "GET", "/r/x", &[("Authorization", "Bearer client")], b"").await;
            assert_bytes(&resp.body_to_end().await, EVENTS);
        }
        assert_eq!((a.requests().len(), b.requests().len()), (2, 2));
        for r in a.requests() {
            assert_eq!(r.header_all("authorization"), vec!["Bearer sk-a-secret-123"]);
            assert_eq!(r.header("x-org"), Some("org-1"));
            assert_eq!(r.header("x-tenant"), Some("route"));
            assert_eq!(r.header("host"), Some(a.addr().to_string().as_str()));
        }
        for r in b.requests() {
            assert_eq!(r.header_all("authorization"), vec!["Bearer client"], "a's key never reaches b");
            assert_eq!(r.header_all("x-tenant"), vec!["bee"]);
            assert_eq!(r.header("host"), Some(b.addr().to_string().as_str()));
        }
        let log = gw.stderr() + &gw.stdout();
        assert!(!log.contains("sk-a-secret-123"), "secrets are never logged");
    })
    .await;
}

#[tokio::test]
async fn the_host_picks_among_configured_routes_only() {
    bounded(async {
        let api = MockUpstream::serve(sse_reply()).await;
        let wild = MockUpstream::serve(sse_reply()).await;
        let fallback = MockUpstream::serve(sse_reply()).await;
        let gw = GatewaySpec::new()
            .route(RouteSpec::new("api").prefix("/v1").upstream(&api).hosts(&["API.example.com"]))
            .route(RouteSpec::new("wild").prefix("/v1").upstream(&wild).hosts(&["*.example.org"]))
            .route(RouteSpec::new("fallback").prefix("/v1").upstream(&fallback))
            .start()
            .await;
        let send = |host: &'static str| {
            let addr = gw.addr();
            async move {
                let mut resp = request(addr, "GET", "/v1/chat", &[("Host", host)], b"").await;
                assert_sse_head(&resp);
                assert_bytes(&resp.body_to_end().await, EVENTS);
            }
        };
        send("api.example.com").await;
        send("api.EXAMPLE.com:8443").await;
        send("a.b.example.org").await;
        send("example.org").await; // the wildcard needs at least one label
        send("127.0.0.1:1").await; // a Host naming some other address reaches only a configured upstream
        assert_eq!((api.requests().len(), wild.requests().len(), fallback.requests().len()), (2, 1, 2));
        // The upstream gets its own Host, never the client's.
        assert_eq!(api.requests()[0].header("host"), Some(api.addr().to_string().as_str()));
        assert_eq!(fallback.requests()[1].header("host"), Some(fallback.addr().to_string().as_str()));

        // h2c: `:authority` picks the route.
        let h2 = ssegate_tests::client::H2Conn::h2c_with_authority(gw.addr(), "x.example.org").await;
        let mut resp = h2.request("GET", "/v1/chat", b"").await;
        assert_sse_head(&resp);
        assert_bytes(&resp.body_to_end().await, EVENTS);
        assert_eq!(wild.requests().len(), 2);
    })
    .await;
}

#[tokio::test]
async fn active_checks_take_a_failing_backend_out_and_bring_it_back() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    bounded(async {
        let healthy = Arc::new(AtomicBool::new(true));
        let h = healthy.clone();
        let flaky = MockUpstream::start(move |req| {
            if req.target == "/health" {
                let status = if h.load(Ordering::SeqCst) { 200 } else { 503 };
                Reply::full(status, "text/plain", "ok")
            } else {
                sse_reply()
            }
        })
        .await;
        let steady = MockUpstream::start(|req| {
            if req.target == "/health" {
                Reply::full(204, "text/plain", "")
            } else {
                sse_reply()
            }
        })
        .await;
        let health = Toml::table([
            ("path", Toml::from("/health")),
            ("interval", Toml::from("100ms")),
            ("timeout", Toml::from("500ms")),
            ("healthy", Toml::Int(2)),
            ("unhealthy", Toml::Int(2)),
        ]);
        let gw = GatewaySpec::new()
            .route(
                RouteSpec::new("r")
                    .backends([BackendSpec::new("flaky", &flaky), BackendSpec::new("steady", &steady)])
                    .set("health", health)
                    .set("passive", passive(0, "30s")),
            )
            .start()
            .await;
        let traffic = |m: &MockUpstream| m.requests().iter().filter(|r| r.target != "/health").count();
        let up = |s: &Scrape| s.value("ssegate_backend_up", &[("route", "r"), ("backend", "flaky")]);

        healthy.store(false, Ordering::SeqCst);
        let s = Scrape::until(gw.admin_addr(), |s| up(s) == 0.0).await;
        assert_eq!(up(&s), 0.0, "taken out after two failed checks");
        assert_eq!(
            s.value(
                "ssegate_backend_ejections_total",
                &[("route", "r"), ("backend", "flaky"), ("by", "active")]
            ),
            1.0
        );
        let before = traffic(&flaky);
        for _ in 0..6 {
            let mut resp = get(gw.addr(), "/r").await;
            assert_bytes(&resp.body_to_end().await, EVENTS);
        }
        assert_eq!(traffic(&flaky), before, "no traffic to a backend that fails its checks");

        healthy.store(true, Ordering::SeqCst);
        let s = Scrape::until(gw.admin_addr(), |s| up(s) == 1.0).await;
        assert_eq!(up(&s), 1.0, "back after two passing checks");
        for _ in 0..6 {
            let mut resp = get(gw.addr(), "/r").await;
            assert_bytes(&resp.body_to_end().await, EVENTS);
        }
        assert_eq!(traffic(&flaky), before + 3, "round robin again");
        let check = flaky.requests().into_iter().find(|r| r.target == "/health").unwrap();
        assert_eq!(check.header("host"), Some(flaky.addr().to_string().as_str()));
    })
    .await;
}

#[tokio::test]
async fn a_backend_without_headers_is_left_after_first_event_timeout_and_a_leaving_client_stops_it_all() {
    bounded(async {
        let mute = MockUpstream::serve(sse_reply().with_head_delay(Duration::from_secs(30))).await;
        let good = MockUpstream::serve(sse_reply()).await;
        let spec = |mute: &MockUpstream, good: &MockUpstream| {
            GatewaySpec::new().route(
                RouteSpec::new("r")
                    .backends([BackendSpec::new("mute", mute), BackendSpec::new("good", good)])
                    .set("retry", retry(2, &["connect"], Some("500ms")))
                    .heartbeat("5s"),
            )
        };
        let gw = spec(&mute, &good).start().await;
        let mut resp = get(gw.addr(), "/r").await;
        assert_sse_head(&resp);
        assert_bytes(&without_heartbeats(&resp.body_to_end().await), EVENTS);
        assert_eq!((mute.requests().len(), good.requests().len()), (1, 1));
        let s = Scrape::fetch(gw.admin_addr()).await;
        assert_eq!(
            s.value("ssegate_upstream_failovers_total", &[("route", "r"), ("reason", "first_event")]),
            1.0
        );

        // A client that leaves while the first backend is silent: no further attempt.
        let mute2 = MockUpstream::serve(sse_reply().with_head_delay(Duration::from_secs(30))).await;
        let good2 = MockUpstream::serve(sse_reply()).await;
        let gw2 = spec(&mute2, &good2).start().await;
        let conn = ssegate_tests::client::Conn::connect(gw2.addr()).await;
        let pending = tokio::spawn(async move { conn.send("GET", "/r", &[], b"").await });
        assert!(mute2.wait_requests(1, Duration::from_secs(3)).await);
        pending.abort();
        let _ = pending.await;
        assert!(mute2.wait_peer_closed(1, Duration::from_secs(3)).await, "the attempt was stopped");
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert!(good2.requests().is_empty(), "no attempt after the client left");
    })
    .await;
}
