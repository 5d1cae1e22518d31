//! Reliability under load (issue 17): a graceful upgrade and ten config reloads while 200 streams are in
//! flight. Sizes are kept to what a 2-core CI machine runs in a few seconds with a debug build.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ssegate_tests::client::End;
use ssegate_tests::metrics::Scrape;
use ssegate_tests::{bounded, get, show, sse, GatewaySpec, MockUpstream, Reply, RouteSpec, Signal, Step};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Streams in flight during the upgrade and the reloads.
const STREAMS: usize = 200;

/// `n` NDJSON messages `{"seq":k}` (k = 0..n), `pace_ms` apart.
fn paced(n: usize, pace_ms: u64) -> Reply {
    let mut steps = Vec::new();
    for k in 0..n {
        steps.push(Step::send(format!("{{\"seq\":{k}}}\n")));
        steps.push(Step::Sleep(pace_ms));
    }
    steps.push(Step::End);
    Reply::stream("application/x-ndjson", steps)
}

/// How a stream's body ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Every event 0..n, once and in order, and nothing else.
    Complete,
    /// Events 0..k in order (k < n), then `retry:` and `event: error` of type `shutdown`.
    Shutdown(usize),
}

/// Checks the sequence numbers of a body (events `data: {"seq":k}`): 0, 1, 2, … with no gap, duplicate or
/// reordering, then either the end (all `n`) or the shutdown ending. Panics with the body otherwise.
#[track_caller]
fn check_body(i: usize, body: &[u8], n: usize) -> Outcome {
    let blocks: Vec<_> = sse::parse_all(body).into_iter().filter(|b| !b.is_heartbeat()).collect();
    let mut next = 0;
    let mut rest = blocks.as_slice();
    while let Some((b, tail)) = rest.split_first() {
        if b.event.is_some() || b.retry.is_some() {
            break;
        }
        let seq = b.json()["seq"].as_u64().unwrap_or_else(|| panic!("stream {i}: not a seq event {b:?}"));
        assert_eq!(seq, next as u64, "stream {i}: event {next} has seq {seq}: {}", show(body));
        next += 1;
        rest = tail;
    }
    if rest.is_empty() {
        assert_eq!(next, n, "stream {i} ended cleanly after {next} of {n} events: {}", show(body));
        return Outcome::Complete;
    }
    assert!(next < n, "stream {i}: something after its last event: {rest:?}");
    assert!(rest[0].retry.is_some(), "stream {i}: no retry before the error: {rest:?}");
    let last = rest.last().unwrap();
    sse::assert_error_event(last, "shutdown");
    assert!(rest.len() <= 2, "stream {i}: more than retry + error after the events: {rest:?}");
    Outcome::Shutdown(next)
}

/// One request on a new connection with `Connection: close`: the connect error, a status other than 200, or
/// the whole response.
async fn probe(addr: SocketAddr, path: &str) -> Result<Vec<u8>, String> {
    let mut s = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.map_err(|e| format!("write: {e}"))?;
    let mut out = Vec::new();
    match tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out)).await {
        Err(_) => return Err(format!("timeout: {}", show(&out))),
        Ok(Err(e)) => return Err(format!("read: {e}: {}", show(&out))),
        Ok(Ok(_)) => {}
    }
    if !out.starts_with(b"HTTP/1.1 200") {
        return Err(format!("not 200: {}", show(&out)));
    }
    Ok(out)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn graceful_upgrade_under_load_refuses_nothing_and_loses_nothing() {
    // Short streams (20 events, 2 s) end on the old process before it starts shutting down (pingora waits
    // 5 s after the hand-over); long ones (120 events, 12 s) outlive its 1 s drain and get the shutdown
    // ending. Both kinds are checked event by event.
    const SHORT: usize = 20;
    const LONG: usize = 120;
    bounded(async {
        let mock = MockUpstream::start(|req| {
            if req.target.starts_with("/short") {
                paced(SHORT, 100)
            } else if req.target.starts_with("/long") {
                paced(LONG, 100)
            } else {
                Reply::stream("application/x-ndjson", vec![Step::send("{\"ok\":1}\n"), Step::End])
            }
        })
        .await;
        let mut old = GatewaySpec::new()
            .server(|s| s.shutdown_drain("1s"))
            .route(RouteSpec::new("r").upstream(&mock).heartbeat("0s"))
            .start()
            .await;
        let addr = old.addr();

        let mut streams = Vec::new();
        for i in 0..STREAMS {
            let (path, n) = if i % 2 == 0 { ("/r/short", SHORT) } else { ("/r/long", LONG) };
            streams.push(tokio::spawn(async move {
                let mut resp = get(addr, path).await;
                let status = resp.status;
                let body = resp.body_to_end().await;
                assert_eq!(status, 200, "stream {i}: {}", show(&body));
                assert_eq!(resp.end(), Some(&End::Clean), "stream {i}: {}", show(&body));
                (i, n, check_body(i, &body, n))
            }));
        }
        assert!(mock.wait_requests(STREAMS, Duration::from_secs(5)).await, "streams not all open");

        // A client connecting every 5 ms from before the upgrade until the old process is gone.
        let prober = tokio::spawn(async move {
            let (mut ok, mut failed) = (0usize, Vec::new());
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(9) {
                match probe(addr, "/r/ok").await {
                    Ok(body) if contains(&body, b"data: {\"ok\":1}\n\n") && body.ends_with(b"0\r\n\r\n") => {
                        ok += 1
                    }
                    Ok(body) => {
                        failed.push(format!("{:.3}s: body {}", t.elapsed().as_secs_f64(), show(&body)))
                    }
                    Err(e) => failed.push(format!("{:.3}s: {e}", t.elapsed().as_secs_f64())),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (ok, failed)
        });
        tokio::time::sleep(Duration::from_millis(200)).await;

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

        let (mut complete, mut shutdown) = (0, 0);
        for s in streams {
            let (i, n, outcome) = s.await.unwrap();
            match outcome {
                Outcome::Complete => complete += 1,
                Outcome::Shutdown(k) => {
                    assert_eq!(n, LONG, "short stream {i} cut after {k} events");
                    shutdown += 1;
                }
            }
        }
        assert!(complete >= STREAMS / 2, "{complete} complete, {shutdown} shut down");
        assert_eq!(complete + shutdown, STREAMS);
        assert!(old.wait_exit(Duration::from_secs(10)).await.is_some(), "the old process did not exit");

        let (ok, failed) = prober.await.unwrap();
        assert!(
            failed.is_empty(),
            "{} of {} probes failed during the upgrade: {failed:?}",
            failed.len(),
            ok + failed.len()
        );
        assert!(ok > 100, "only {ok} probes");
        eprintln!("upgrade under load: {complete} streams complete, {shutdown} ended with the shutdown event, {ok} probes ok");
        // The new process serves on.
        let body = probe(addr, "/r/short").await.unwrap();
        assert!(contains(&body, b"data: {\"seq\":19}\n\n"), "{}", show(&body));
        new.assert_no_panic();
    })
    .await;
}

#[tokio::test]
async fn ten_reloads_under_load_lose_nothing() {
    // 40 events 100 ms apart: every stream is open during all ten reloads (about 2 s).
    const N: usize = 40;
    bounded(async {
        let mock = MockUpstream::serve(paced(N, 100)).await;
        let spec = |i: usize| {
            GatewaySpec::new()
                .route(
                    RouteSpec::new("r").upstream(&mock).heartbeat("0s").retry_after(&format!("{}s", i + 1)),
                )
                .route(RouteSpec::new("h").upstream(&mock).heartbeat(&format!("{}ms", 500 + 100 * i)))
        };
        let mut gw = spec(0).start().await;
        let addr = gw.addr();
        let mut streams = Vec::new();
        for i in 0..STREAMS {
            streams.push(tokio::spawn(async move {
                let mut resp = get(addr, "/r").await;
                let status = resp.status;
                let body = resp.body_to_end().await;
                assert_eq!(status, 200, "stream {i}: {}", show(&body));
                assert_eq!(resp.end(), Some(&End::Clean), "stream {i}: {}", show(&body));
                check_body(i, &body, N)
            }));
        }
        assert!(mock.wait_requests(STREAMS, Duration::from_secs(5)).await, "streams not all open");
        let pid_file = gw.dir().join("ssegate.pid");
        let t = Instant::now();
        while !pid_file.exists() {
            assert!(t.elapsed() < Duration::from_secs(5), "no pid_file {}", pid_file.display());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let name = "ssegate_config_reloads_total";
        for k in 1..=10 {
            gw.rewrite_config(&spec(k));
            gw.signal(Signal::Hup);
            let want = k as f64;
            let s = Scrape::until(gw.admin_addr(), |s| s.value(name, &[("result", "success")]) >= want).await;
            assert_eq!(s.value(name, &[("result", "success")]), want, "reload {k}:\n{}", gw.stderr());
        }
        assert!(streams.iter().all(|s| !s.is_finished()), "streams ended before the ten reloads were done");
        for s in streams {
            assert_eq!(s.await.unwrap(), Outcome::Complete);
        }
        let s = Scrape::fetch(gw.admin_addr()).await;
        assert_eq!(s.value(name, &[("result", "error")]), 0.0);
        gw.assert_no_panic();
    })
    .await;
}
