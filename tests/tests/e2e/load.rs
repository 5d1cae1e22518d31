//! Reliability under load (issue 17 items 2 and 3): a graceful upgrade and ten config reloads while 1,000
//! streams are in flight and a prober opens new connections throughout. The shared set-up is `streams.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use ssegate_tests::metrics::Scrape;
use ssegate_tests::mock::Gate;
use ssegate_tests::{show, GatewaySpec, MockUpstream, Reply, RouteSpec, Signal, Step};

use crate::streams::{self, check_body, heavy, numbered_gated, read_stream, Outcome, Prober, STREAMS};

/// What the probes ask for: one event and the end.
fn ok_reply() -> Reply {
    Reply::stream("application/x-ndjson", vec![Step::send("{\"ok\":1}\n"), Step::End])
}

const OK_EVENT: &[u8] = b"data: {\"ok\":1}\n\n";

/// Spawns one client per stream `i` in `0..STREAMS` reading `path(i)` to its clean end; each task checks
/// its body against `n(i)` events.
fn spawn_streams(
    addr: std::net::SocketAddr,
    path: impl Fn(usize) -> String,
    n: impl Fn(usize) -> usize,
) -> Vec<tokio::task::JoinHandle<(usize, usize, Outcome)>> {
    (0..STREAMS)
        .map(|i| {
            let (path, n) = (path(i), n(i));
            tokio::spawn(async move {
                let (status, body) =
                    read_stream(addr, &path).await.unwrap_or_else(|e| panic!("stream {i}: {e}"));
                assert_eq!(status, 200, "stream {i}: {}", show(&body));
                (i, n, check_body(i, &body, n))
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_upgrade_under_load_refuses_nothing_and_loses_nothing() {
    // Even streams: 4 events, then held at a gate opened right after SIGQUIT, then 4 more and the end: they
    // complete on the old process (pingora shuts it down 5 s after the hand-over). Odd streams: an event
    // every 250 ms that never ends: they outlive the 1 s drain and end with `retry:` and the shutdown error.
    const SHORT: usize = 8;
    const LONG: usize = 400;
    heavy(async {
        let short = Gate::new();
        let gate = short.clone();
        let mock = MockUpstream::start(move |req| {
            if req.target.starts_with("/short") {
                numbered_gated(SHORT / 2, &gate, SHORT, 250)
            } else if req.target.starts_with("/long") {
                numbered_gated(LONG, &Gate::new(), LONG + 1, 250)
            } else {
                ok_reply()
            }
        })
        .await;
        let mut old = GatewaySpec::new()
            .server(|s| s.shutdown_drain("1s"))
            .route(RouteSpec::new("r").upstream(&mock).heartbeat("0s"))
            .start()
            .await;
        let addr = old.addr();
        let is_short = |i: usize| i.is_multiple_of(2);
        let streams = spawn_streams(
            addr,
            move |i| if is_short(i) { format!("/r/short{i}") } else { format!("/r/long{i}") },
            move |i| if is_short(i) { SHORT } else { LONG + 1 },
        );
        assert!(mock.wait_requests(STREAMS, Duration::from_secs(30)).await, "streams not all open");

        // New connections from before the upgrade until the old process is gone.
        let prober = Prober::start(addr, "/r/ok", OK_EVENT);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut new = streams::upgrade(&old).await;
        let quit = Instant::now();
        short.open_many(STREAMS / 2);

        let (mut complete, mut shutdown) = (0, 0);
        for s in streams {
            match s.await.unwrap() {
                (_, _, Outcome::Complete) => complete += 1,
                (i, _, Outcome::Shutdown(k)) => {
                    assert!(!is_short(i), "short stream {i} cut after {k} events");
                    shutdown += 1;
                }
            }
        }
        assert_eq!(
            (complete, shutdown),
            (STREAMS / 2, STREAMS / 2),
            "every short stream completes, every long one is shut down"
        );
        assert!(old.wait_exit(Duration::from_secs(15)).await.is_some(), "the old process did not exit");
        let exited = quit.elapsed();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let probes = prober.stop().await;
        assert!(probes.refused.is_empty(), "{} probes refused: {:?}", probes.refused.len(), probes.refused);
        assert!(probes.failed.is_empty(), "{} probes failed: {:?}", probes.failed.len(), probes.failed);
        assert!(probes.ok >= 20, "only {} probes during the hand-over", probes.ok);
        eprintln!(
            "upgrade under load: {complete} streams complete, {shutdown} ended with the shutdown event; \
             the old process exited {exited:?} after SIGQUIT; {} probes ok, 0 refused, 0 failed",
            probes.ok
        );
        new.assert_no_panic();
        old.assert_no_panic();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_reloads_under_load_lose_nothing() {
    // 20 events 250 ms apart, then held at a gate opened after the tenth reload, then 4 more and the end:
    // every stream is open during all ten reloads and events flow during the first seconds of them.
    const FIRST: usize = 20;
    const N: usize = 24;
    heavy(async {
        let after = Gate::new();
        let gate = after.clone();
        let mock = MockUpstream::start(move |req| {
            if req.target.starts_with("/ok") {
                ok_reply()
            } else {
                numbered_gated(FIRST, &gate, N, 250)
            }
        })
        .await;
        let spec = |i: usize| {
            GatewaySpec::new()
                .route(
                    RouteSpec::new("r").upstream(&mock).heartbeat("0s").retry_after(&format!("{}s", i + 1)),
                )
                .route(RouteSpec::new("h").upstream(&mock).heartbeat(&format!("{}ms", 500 + 100 * i)))
        };
        let mut gw = spec(0).start().await;
        let addr = gw.addr();
        let streams = spawn_streams(addr, |i| format!("/r/s{i}"), |_| N);
        assert!(mock.wait_requests(STREAMS, Duration::from_secs(30)).await, "streams not all open");
        let pid_file = gw.dir().join("ssegate.pid");
        let t = Instant::now();
        while !pid_file.exists() {
            assert!(t.elapsed() < Duration::from_secs(5), "no pid_file {}", pid_file.display());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let prober = Prober::start(addr, "/r/ok", OK_EVENT);
        let name = "ssegate_config_reloads_total";
        for k in 1..=10 {
            gw.rewrite_config(&spec(k));
            gw.signal(Signal::Hup);
            let want = k as f64;
            let s = Scrape::until(gw.admin_addr(), |s| s.value(name, &[("result", "success")]) >= want).await;
            assert_eq!(s.value(name, &[("result", "success")]), want, "reload {k}:\n{}", gw.stderr());
        }
        let probes = prober.stop().await;
        after.open_many(STREAMS);
        for s in streams {
            let (i, _, outcome) = s.await.unwrap();
            assert_eq!(outcome, Outcome::Complete, "stream {i}");
        }
        let s = Scrape::fetch(gw.admin_addr()).await;
        assert_eq!(s.value(name, &[("result", "error")]), 0.0);
        assert!(
            probes.refused.is_empty() && probes.failed.is_empty(),
            "probes during the reloads: {probes:?}"
        );
        assert!(probes.ok > 0, "no probe during the reloads");
        eprintln!(
            "ten reloads under load: {STREAMS} streams complete, {} probes ok, 0 refused, 0 failed",
            probes.ok
        );
        gw.assert_no_panic();
    })
    .await;
}
