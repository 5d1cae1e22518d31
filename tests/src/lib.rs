//! # ssegate-tests
//!
//! End-to-end tests for the real `ssegate` binary. The harness lives here; the tests are the modules of one test
//! executable, `tests/e2e/` (`cargo test -p ssegate-tests <module>::<test>`).
//!
//! - [`gateway`]: build the binary, describe a gateway with a typed [`GatewaySpec`] (rendered to TOML with free
//!   ports into a temp dir), start `ssegate run`, wait for its listeners, send signals, kill it on drop and
//!   fail the test if it panicked.
//! - [`mock`]: a scripted raw HTTP/1.1 upstream on `127.0.0.1:0` (exact bytes, exact chunking, exact timing),
//!   recording every request and noticing when the gateway closes its connection.
//! - [`client`]: a raw HTTP/1.1 client (exact response bytes, incremental chunked decoding, arrival times),
//!   and h2c / TLS+h2 clients built on hyper that feed the same [`client::Response`] reader.
//! - [`logs`]: the gateway's JSON log lines and access lines ([`Gateway::access_lines`]).
//! - [`redis`]: a private `redis-server` on a free port (no persistence), killable and restartable mid-test.
//! - [`sse`]: a small SSE parser for assertions that do not compare exact bytes (error events).
//!
//! Everything listens on and connects to 127.0.0.1 only; no fixed ports, no external hosts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod client;
pub mod gateway;
pub mod logs;
pub mod metrics;
pub mod mock;
pub mod pool;
pub mod redis;
pub mod sse;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

pub use client::{get, h2_tls_request, h2c_request, request, Response};
pub use gateway::{Gateway, GatewaySpec, RouteSpec, ServerSpec, Signal, Toml, SIGTERM};
pub use mock::{MockUpstream, RecordedRequest, Reply, Step};

/// The bound every end-to-end test runs under.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `f` under [`TEST_TIMEOUT`]; a hang becomes a clear panic instead of a stuck test run. The
/// `ssegate` binary is built (see [`gateway::binary`]) before the clock starts.
pub async fn bounded<F: Future>(f: F) -> F::Output {
    gateway::binary();
    match tokio::time::timeout(TEST_TIMEOUT, f).await {
        Ok(v) => v,
        Err(_) => panic!("test did not finish within {TEST_TIMEOUT:?}"),
    }
}

/// [`bounded`] with a bound of its own, for the tests that hold 1,000 streams (their set-up alone takes
/// seconds on a shared machine with a debug build).
pub async fn bounded_for<F: Future>(limit: Duration, f: F) -> F::Output {
    gateway::binary();
    match tokio::time::timeout(limit, f).await {
        Ok(v) => v,
        Err(_) => panic!("test did not finish within {limit:?}"),
    }
}

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit — the processes it starts afterwards (the
/// gateway, `redis-server`) inherit it — and returns the new soft limit. Panics, saying what to change, when
/// the hard limit is below `need`: a test that needs that many descriptors is never skipped silently.
pub fn raise_nofile(need: u64) -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit(RLIMIT_NOFILE)");
    assert!(
        hard >= need,
        "this test needs {need} file descriptors per process, but the hard limit (ulimit -Hn) is {hard}: \
         raise it (e.g. `ulimit -Hn {need}` as root, or LimitNOFILE= / nofile in limits.conf) and run again"
    );
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
            .unwrap_or_else(|e| panic!("setrlimit(RLIMIT_NOFILE, {hard}) from {soft}: {e}"));
    }
    hard
}

/// A port on 127.0.0.1 held for a gateway: a socket bound with `SO_REUSEADDR` that never listens.
///
/// While it exists, the kernel gives the port to no other `bind(127.0.0.1:0)` and to no outgoing
/// connection (the mocks and clients of tests running in parallel), yet a listener that also sets
/// `SO_REUSEADDR` — pingora's and tokio's do — can bind and listen on it. The harness drops it once the
/// gateway listens, so there is no window in which another test can take the port.
#[derive(Debug)]
pub struct ReservedAddr {
    addr: SocketAddr,
    _socket: socket2::Socket,
}

impl ReservedAddr {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Reserves a port on 127.0.0.1 (see [`ReservedAddr`]).
pub fn reserve_addr() -> ReservedAddr {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("create a socket");
    socket.set_reuse_address(true).expect("set SO_REUSEADDR");
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).expect("bind 127.0.0.1:0");
    let addr = socket.local_addr().expect("local_addr").as_socket().expect("an IP socket address");
    ReservedAddr { addr, _socket: socket }
}

/// Shows bytes readably in assertion messages (UTF-8 lossy, control characters escaped).
pub fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).escape_debug().to_string()
}

/// Asserts two byte strings are equal, printing both readably.
#[track_caller]
pub fn assert_bytes(observed: &[u8], expected: &[u8]) {
    assert!(
        observed == expected,
        "bytes differ\n observed: \"{}\"\n expected: \"{}\"",
        show(observed),
        show(expected)
    );
}

/// Reads a JSON error response to its end; asserts the status, `Content-Type: application/json` and the
/// documented error body (see [`sse::assert_error_json`]) of type `ty` whose `status` is the HTTP status.
pub async fn expect_json_error(resp: &mut Response, status: u16, ty: &str) {
    let body = resp.body_to_end().await;
    assert_eq!(resp.status, status, "{} {:?} {}", resp.status, resp.headers, show(&body));
    assert_eq!(resp.header("content-type"), Some("application/json"), "{:?}", resp.headers);
    let v: serde_json::Value = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("body is not JSON ({e}): \"{}\"", show(&body)));
    assert_eq!(sse::assert_error_json(&v, ty), u64::from(status));
}

/// Asserts the SSE response head: 200, `text/event-stream; charset=utf-8`, `no-cache, no-transform`,
/// `X-Accel-Buffering: no`, no Content-Length, no Content-Encoding; chunked on HTTP/1.1, no `Connection`
/// on h2.
#[track_caller]
pub fn assert_sse_head(resp: &Response) {
    let head = || format!("{:?} {} {:?}", resp.version, resp.status, resp.headers);
    assert_eq!(resp.status, 200, "status: {}", head());
    let ct = resp.header("content-type").unwrap_or_default().to_ascii_lowercase().replace(' ', "");
    assert_eq!(ct, "text/event-stream;charset=utf-8", "content-type: {}", head());
    assert_eq!(resp.header("cache-control"), Some("no-cache, no-transform"), "cache-control: {}", head());
    assert_eq!(
        resp.header("x-accel-buffering").map(|v| v.to_ascii_lowercase()).as_deref(),
        Some("no"),
        "x-accel-buffering: {}",
        head()
    );
    assert_eq!(resp.header("content-length"), None, "no content-length: {}", head());
    assert_eq!(resp.header("content-encoding"), None, "no content-encoding: {}", head());
    if resp.version == "HTTP/1.1" {
        assert_eq!(
            resp.header("transfer-encoding").map(|v| v.to_ascii_lowercase()).as_deref(),
            Some("chunked"),
            "chunked on HTTP/1.1: {}",
            head()
        );
    } else {
        assert_eq!(resp.header("connection"), None, "no connection header on h2: {}", head());
    }
}
