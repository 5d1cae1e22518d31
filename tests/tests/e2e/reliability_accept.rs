//! `accept()` failing with the other resource errors — `ENFILE`, `ENOBUFS`, `ENOMEM` — and `EMFILE` (issue 17,
//! item 4).
//!
//! These are hard to cause for real in a test (a full system-wide file table would hurt the whole machine), so
//! the gateway runs with `tests/fault/accept_errno.c` preloaded: while a file the test writes names an errno
//! and the traffic port, every `accept` on that port fails with it, the connection staying in the kernel's
//! backlog. pingora 0.9.1 waited after `EMFILE` only and retried the others at once — a busy loop logging a
//! line per try; ssegate's pingora-core patch (`vendor/pingora-core.patch`, `services/listening.rs`) waits one
//! second after each of them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ssegate_tests::gateway::workspace_root;
use ssegate_tests::{assert_sse_head, bounded, get, MockUpstream, Reply, Step};
use ssegate_tests::{GatewaySpec, RouteSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::reliability_fds::{assert_traffic_accept_errors, first_event_within};
use tokio::net::TcpStream;

/// Linux errno values.
const ENOMEM: i32 = 12;
const ENFILE: i32 = 23;
const EMFILE: i32 = 24;
const ENOBUFS: i32 = 105;

/// Builds the preloadable fault injector into `dir` with the system's C compiler.
fn build_injector(dir: &Path) -> PathBuf {
    let src = workspace_root().join("tests/fault/accept_errno.c");
    let out = dir.join("accept_errno.so");
    let status = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .arg("-ldl")
        .status()
        .expect("a C compiler (cc) is needed to build the accept fault injector");
    assert!(status.success(), "cc failed to build {}", src.display());
    out
}

/// How many `accept` calls the injector has failed so far.
fn injected(fault: &Path) -> usize {
    std::fs::metadata(format!("{}.count", fault.display())).map(|m| m.len() as usize).unwrap_or(0)
}

#[tokio::test]
async fn other_accept_errors_wait_too_open_streams_go_on_and_service_recovers() {
    bounded(async {
        let steps = (0..600).flat_map(|i| [Step::send(format!("{{\"i\":{i}}}\n")), Step::Sleep(50)]);
        let mock =
            MockUpstream::serve(Reply::stream("application/x-ndjson", steps.chain([Step::End]).collect()))
                .await;
        let spec = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).heartbeat("10s"));
        let injector = build_injector(spec.dir());
        let fault = spec.dir().join("accept-fault");
        let mut gw = spec
            .env("LD_PRELOAD", injector.to_str().unwrap())
            .env("ACCEPT_FAULT_FILE", fault.to_str().unwrap())
            .start()
            .await;
        let mut open = get(gw.addr(), "/r").await;
        assert_sse_head(&open);
        open.next_event().await.unwrap();

        for errno in [ENFILE, ENOBUFS, ENOMEM, EMFILE] {
            let before = injected(&fault);
            std::fs::write(&fault, format!("{errno} {}", gw.addr().port())).unwrap();
            // A new client: TCP connects (the kernel's backlog), but every accept fails.
            let mut waiting = TcpStream::connect(gw.addr()).await.unwrap();
            waiting.write_all(b"GET /r HTTP/1.1\r\nHost: gw\r\n\r\n").await.unwrap();
            let t0 = Instant::now();
            // The open stream goes on meanwhile.
            let got = open.read_for(Duration::from_millis(1500)).await;
            let events = got.windows(5).filter(|w| w == b"data:").count();
            assert!(events >= 5, "errno {errno}: the open stream stalled: {got:?}");
            let mut first = [0u8; 1];
            let early = tokio::time::timeout(Duration::from_millis(300), waiting.read(&mut first)).await;
            assert!(early.is_err(), "errno {errno}: answered although every accept failed: {early:?}");
            let (failed, secs) = (injected(&fault) - before, t0.elapsed().as_secs_f64());
            eprintln!("errno {errno}: {failed} accepts failed in {secs:.1} s");
            assert!(failed >= 1, "errno {errno}: the gateway never tried to accept");
            // A busy loop fails thousands of times a second; the patched loop waits 1 s after each failure.
            assert!(
                failed <= 2 * (secs.ceil() as usize + 1),
                "errno {errno}: {failed} failures in {secs:.1} s: a busy loop"
            );

            // The condition passes: the waiting client is served.
            std::fs::remove_file(&fault).unwrap();
            first_event_within(
                &mut waiting,
                Duration::from_secs(8),
                &format!("once accepts work (errno {errno})"),
            )
            .await;
        }

        // Every failure was logged and counted (the admin listener was never affected).
        let failed = injected(&fault);
        assert_eq!(gw.stderr().matches("Accept() failed").count(), failed, "{}", gw.stderr());
        assert_traffic_accept_errors(&gw, failed).await;
        gw.assert_no_panic();
    })
    .await;
}
