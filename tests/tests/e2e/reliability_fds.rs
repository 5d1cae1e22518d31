//! Running out of file descriptors, and many clients that read nothing (issue 17, item 4).
//!
//! The descriptor limit of the running gateway is lowered with `prlimit(1)` (util-linux) until it cannot
//! open one more descriptor: pingora's accept loop then fails with `EMFILE`, logs it and waits one second
//! before the next try (see `crates/gateway/src/accept_watch.rs`); the connection waits in the kernel's
//! backlog and is served once descriptors are free again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ssegate_tests::metrics::Scrape;
use ssegate_tests::{assert_sse_head, bounded, get, Gateway, MockUpstream, Reply, Step};
use ssegate_tests::{GatewaySpec, RouteSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The descriptors `pid` has open.
fn open_fds(pid: u32) -> BTreeSet<u32> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("this test needs Linux /proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The lowest descriptor number `pid` does not use: with the limit there, it can open none.
fn lowest_free_fd(pid: u32) -> u32 {
    let open = open_fds(pid);
    (0..).find(|n| !open.contains(n)).unwrap()
}

/// Sets `pid`'s soft `RLIMIT_NOFILE` (the hard limit is kept).
fn set_nofile(pid: u32, soft: u64) {
    let out = std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--nofile={soft}:")])
        .output()
        .expect("prlimit (util-linux) is needed to lower the gateway's descriptor limit");
    assert!(out.status.success(), "prlimit: {}", String::from_utf8_lossy(&out.stderr));
}

fn soft_nofile(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

/// User + system CPU time of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `after_comm` starts at field 3.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn accept_failures_logged(gw: &Gateway) -> usize {
    gw.stderr().matches("Accept() failed").count()
}

/// Asserts that `ssegate_accept_errors_total{listener="traffic"}` reaches exactly `n` (scraped until it does).
pub(crate) async fn assert_traffic_accept_errors(gw: &Gateway, n: usize) {
    let traffic = [("listener", "traffic")];
    let s = Scrape::until(gw.admin_addr(), |s| s.value("ssegate_accept_errors_total", &traffic) >= n as f64)
        .await;
    assert_eq!(s.value("ssegate_accept_errors_total", &traffic), n as f64, "{}", s.text);
}

/// Reads `waiting`'s answer until its first event within `within`: a `200` head and one `data:` line, or a
/// failure naming `when`.
pub(crate) async fn first_event_within(waiting: &mut TcpStream, within: Duration, when: &str) {
    let mut buf = Vec::new();
    let served = tokio::time::timeout(within, async {
        while !buf.windows(5).any(|w| w == b"data:") {
            let mut chunk = [0u8; 4096];
            let n = waiting.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed without an answer: {}", String::from_utf8_lossy(&buf));
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    assert!(served.is_ok(), "not served {when}: {}", String::from_utf8_lossy(&buf));
    assert!(buf.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf));
}

#[tokio::test]
async fn out_of_descriptors_accepts_wait_open_streams_go_on_and_service_recovers() {
    bounded(async {
        // Open streams: one event every 50 ms for 15 s.
        let steps = (0..300).flat_map(|i| [Step::send(format!("{{\"i\":{i}}}\n")), Step::Sleep(50)]);
        let mock =
            MockUpstream::serve(Reply::stream("application/x-ndjson", steps.chain([Step::End]).collect()))
                .await;
        let mut gw =
            GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).heartbeat("10s")).start().await;
        let pid = gw.pid();
        let mut open = Vec::new();
        for _ in 0..3 {
            let mut resp = get(gw.addr(), "/r").await;
            assert_sse_head(&resp);
            resp.next_event().await.unwrap();
            open.push(resp);
        }
        let original = soft_nofile(pid);
        set_nofile(pid, u64::from(lowest_free_fd(pid)));

        // A new client: TCP connects (the kernel's backlog), but the gateway cannot accept it.
        let mut waiting = TcpStream::connect(gw.addr()).await.unwrap();
        waiting.write_all(b"GET /r HTTP/1.1\r\nHost: gw\r\n\r\n").await.unwrap();
        let (cpu0, logged0, t0) = (cpu_ticks(pid), accept_failures_logged(&gw), Instant::now());
        // The open streams go on meanwhile.
        for resp in &mut open {
            let got = resp.read_for(Duration::from_millis(1000)).await;
            let events = got.windows(5).filter(|w| w == b"data:").count();
            assert!(events >= 5, "an open stream stalled while the gateway was out of descriptors: {got:?}");
        }
        let mut first = [0u8; 1];
        let early = tokio::time::timeout(Duration::from_millis(300), waiting.read(&mut first)).await;
        assert!(early.is_err(), "the gateway answered a connection it had no descriptor for: {early:?}");
        let (cpu, secs, logged) =
            (cpu_ticks(pid) - cpu0, t0.elapsed().as_secs_f64(), accept_failures_logged(&gw) - logged0);
        // A busy loop would fail (and log) thousands of times a second; pingora waits 1 s after EMFILE.
        eprintln!("out of descriptors for {secs:.1} s: {logged} accept failures logged, CPU {cpu} ticks");
        assert!(accept_failures_logged(&gw) >= 1, "no accept failure was logged:\n{}", gw.stderr());
        assert!(
            logged <= 2 * (secs.ceil() as usize + 1),
            "{logged} accept failures in {secs:.1} s: a busy loop"
        );

        // Descriptors free up (the open streams end): the waiting client is served.
        drop(open);
        first_event_within(&mut waiting, Duration::from_secs(8), "after descriptors were freed").await;
        drop(waiting);
        set_nofile(pid, original);
        // Counted (the admin listener accepts again now).
        assert_traffic_accept_errors(&gw, accept_failures_logged(&gw)).await;
        gw.assert_no_panic();
    })
    .await;
}

/// How many clients [`a_thousand_clients_that_read_nothing_are_each_dropped_after_write_timeout`] opens.
const SILENT_CLIENTS: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_clients_that_read_nothing_are_each_dropped_after_write_timeout() {
    // One of the 1,000-connection tests (streams.rs): alone among them, with the descriptors it needs, under
    // their larger bound (about 28 s alone on a debug build; two full e2e runs beside other builds needed more
    // than 40 s to see every client dropped).
    crate::streams::heavy(async {
        // Each stream: up to 4 MiB of SSE in 16 KiB writes, as fast as the gateway takes it, passed through
        // (decoding is not what this is about, and a debug build decodes 1,000 floods slowly).
        let event = format!("data: {}\n\n", "x".repeat(1016));
        let piece = Bytes::from(event.repeat(16));
        let steps: Vec<Step> = (0..256).map(|_| Step::Send(piece.clone())).chain([Step::End]).collect();
        let mock = MockUpstream::serve(Reply::stream("text/event-stream", steps)).await;
        let gw = GatewaySpec::new()
            .server(|s| s.write_timeout("2s"))
            .route(RouteSpec::new("r").upstream(&mock).set("format", "passthrough").heartbeat("10s"))
            .start()
            .await;
        let pid = gw.pid();
        let rss_before = rss_kib(pid);
        let mut clients = Vec::with_capacity(SILENT_CLIENTS);
        let first_connect = Instant::now();
        for _ in 0..SILENT_CLIENTS {
            // A small receive window, as a phone on a bad network would have: the kernel buffers little, so
            // the gateway's writes stop soon (the default lets loopback buffer megabytes per connection).
            let sock = tokio::net::TcpSocket::new_v4().unwrap();
            sock.set_recv_buffer_size(4096).unwrap();
            let mut s = sock.connect(gw.addr()).await.unwrap();
            s.write_all(b"GET /r HTTP/1.1\r\nHost: gw\r\n\r\n").await.unwrap();
            clients.push(s);
        }
        let opened = Instant::now();
        eprintln!("{SILENT_CLIENTS} clients connected in {:?}", opened - first_connect);
        // Every upstream is closed by the gateway once its client was dropped.
        let mut peak = rss_before;
        while mock.peer_closed() < SILENT_CLIENTS && opened.elapsed() < Duration::from_secs(80) {
            peak = peak.max(rss_kib(pid));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let dropped_after = opened.elapsed();
        eprintln!(
            "{SILENT_CLIENTS} silent clients: RSS {rss_before} KiB -> peak {peak} KiB (+{} KiB, {} KiB per client); \
             all dropped {dropped_after:?} after the last connected",
            peak - rss_before,
            (peak - rss_before) / SILENT_CLIENTS as u64
        );
        assert_eq!(mock.peer_closed(), SILENT_CLIENTS, "upstreams still held after {dropped_after:?}");
        assert_eq!(mock.requests().len(), SILENT_CLIENTS);
        // Not before write_timeout: the earliest any stream could have stopped moving is when it started.
        let earliest = mock.peer_closed_at().into_iter().min().unwrap();
        assert!(earliest >= first_connect + Duration::from_secs(2), "a client was dropped {:?} after the first connected", earliest - first_connect);
        // Bounded: per stream at most the stalled-stream bound of `robustness.rs` (decoder and write buffers).
        let bound = SILENT_CLIENTS as u64 * (64 + 64 + 2 * 70) + 8 * 1024;
        assert!(peak <= rss_before + bound, "RSS grew by {} KiB (bound {bound} KiB)", peak - rss_before);
        // Each client: the gateway closed its connection (what was buffered, then the end).
        for (i, mut s) in clients.into_iter().enumerate() {
            let mut sink = vec![0u8; 256 * 1024];
            let end = tokio::time::timeout(Duration::from_secs(2), async {
                loop {
                    match s.read(&mut sink).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            })
            .await;
            assert!(end.is_ok(), "client {i} is still connected");
        }
        let s = Scrape::until(gw.admin_addr(), |s| {
            s.value("ssegate_slow_clients_total", &[("route", "r")]) >= SILENT_CLIENTS as f64
        })
        .await;
        assert_eq!(s.value("ssegate_slow_clients_total", &[("route", "r")]), SILENT_CLIENTS as f64);
    })
    .await;
}
