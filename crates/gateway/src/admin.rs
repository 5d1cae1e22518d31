//! The admin listener: `GET /metrics`, `/healthz`, `/readyz`.
//!
//! A deliberately tiny HTTP/1.1 server on its own socket (plain tokio, not pingora), so that it keeps
//! answering while pingora's traffic listeners drain during a graceful shutdown or upgrade:
//!
//! - `/metrics` — the default `prometheus` registry in the text exposition format.
//! - `/healthz` — `200 ok` while the process runs.
//! - `/readyz`  — `503 starting` until every traffic listener accepts a TCP connection (self-probe),
//!   then `200 ready`, and `503 draining` from the moment shutdown starts (shutdown watch fired or
//!   [`set_draining`] called) until the process exits.
//!
//! Every request gets one response and `Connection: close`. The request head is read with a 5 s timeout
//! and an 8 KiB limit; anything else is 400/404/405/431.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use prometheus::Encoder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Largest request head accepted.
const MAX_HEAD: usize = 8 * 1024;
/// Time allowed to send the request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed to write the response.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; further ones wait in the listen backlog.
const MAX_CONNECTIONS: usize = 64;
/// Pause between two self-probe rounds while starting.
const PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// Pause before retrying a failed bind (e.g. the previous process of a graceful upgrade still holds it).
const BIND_RETRY: Duration = Duration::from_millis(250);

/// A pingora background service serving the admin endpoints on its own socket. It keeps serving while
/// the traffic listeners drain, so `/readyz` can say 503 during a graceful shutdown.
#[derive(Debug)]
pub struct AdminService {
    pub listen: SocketAddr,
    /// The traffic listeners; `/readyz` is 200 once each accepts a TCP connection (self-probe).
    /// Unspecified addresses (`0.0.0.0`, `[::]`) are probed on loopback; port 0 is skipped.
    pub probe: Vec<SocketAddr>,
}

/// Readiness state; one global instance backs the public functions (tests use their own).
#[derive(Debug)]
struct Health {
    ready: AtomicBool,
    draining: AtomicBool,
}

impl Health {
    const fn new() -> Health {
        Health { ready: AtomicBool::new(false), draining: AtomicBool::new(false) }
    }

    /// Every traffic listener accepted a probe and draining has not started.
    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst) && !self.draining.load(Ordering::SeqCst)
    }
}

static HEALTH: Health = Health::new();

/// Marks the process as draining (`/readyz` -> 503). Called when the shutdown watch fires; idempotent.
pub fn set_draining() {
    HEALTH.draining.store(true, Ordering::SeqCst);
}

/// Whether shutdown (or an upgrade handing over to a new process) has started.
pub fn is_draining() -> bool {
    HEALTH.draining.load(Ordering::SeqCst)
}

/// Whether `/readyz` answers 200: every traffic listener accepted a probe and draining has not started.
pub fn is_ready() -> bool {
    HEALTH.is_ready()
}

#[async_trait]
impl BackgroundService for AdminService {
    async fn start(&self, shutdown: ShutdownWatch) {
        let mut warned = false;
        let listener = loop {
            match TcpListener::bind(self.listen).await {
                Ok(l) => break l,
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    // During a graceful upgrade the old process keeps its admin socket until it exits.
                    if !warned {
                        tracing::warn!(listen = %self.listen, "admin address in use; retrying until it is free");
                        warned = true;
                    }
                    tokio::time::sleep(BIND_RETRY).await;
                }
                Err(e) => {
                    tracing::error!(listen = %self.listen, error = %e, "cannot bind the admin listener");
                    return;
                }
            }
        };
        tracing::info!(listen = %self.listen, "admin listener started");
        serve(listener, self.probe.clone(), shutdown, &HEALTH).await;
    }
}

/// Runs the self-probe, the shutdown watch and the accept loop on an already bound listener. Never
/// returns unless accepting fails for good.
async fn serve(
    listener: TcpListener,
    probe: Vec<SocketAddr>,
    shutdown: ShutdownWatch,
    health: &'static Health,
) {
    tokio::spawn(probe_until_ready(probe, health));
    tokio::spawn(watch_shutdown(shutdown, health));
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(async move {
                    handle(stream, health).await;
                    drop(permit);
                });
            }
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                tracing::warn!(error = %e, "admin accept failed");
                crate::metrics::listener::accept_failed(crate::metrics::listener::Listener::Admin);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Sets `draining` once the shutdown watch turns true. Returns when that happens or the sender is gone.
async fn watch_shutdown(mut shutdown: ShutdownWatch, health: &'static Health) {
    loop {
        if *shutdown.borrow_and_update() {
            health.draining.store(true, Ordering::SeqCst);
            tracing::info!("shutdown started: /readyz now answers 503 draining");
            return;
        }
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

/// The address to connect to for a listener bound on `addr` (`None`: cannot be probed).
fn probe_target(addr: SocketAddr) -> Option<SocketAddr> {
    if addr.port() == 0 {
        return None;
    }
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Some(SocketAddr::new(ip, addr.port()))
}

/// Marks the process ready once each address accepted one TCP connection.
async fn probe_until_ready(probe: Vec<SocketAddr>, health: &'static Health) {
    let mut pending: Vec<SocketAddr> = probe.into_iter().filter_map(probe_target).collect();
    while !pending.is_empty() {
        let mut still = Vec::with_capacity(pending.len());
        for addr in pending {
            let ok = matches!(
                tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr)).await,
                Ok(Ok(_))
            );
            if !ok {
                still.push(addr);
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }
    health.ready.store(true, Ordering::SeqCst);
    tracing::debug!("traffic listeners accept connections: ready");
}

/// One admin connection: read the head, answer, close.
async fn handle(mut stream: TcpStream, health: &'static Health) {
    let mut buf = Vec::with_capacity(1024);
    let Ok(Some((head, unread))) = tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream, &mut buf)).await
    else {
        return;
    };
    let (status, content_type, body, head_only) = match head {
        Head::TooLarge => (431, TEXT, b"request header too large".to_vec(), false),
        Head::Malformed => (400, TEXT, b"bad request".to_vec(), false),
        Head::Request { method, path } => {
            let (s, c, b) = respond_with(&method, &path, health);
            (s, c, b, method == "HEAD")
        }
    };
    let response = render(status, content_type, &body, head_only);
    let write = async {
        stream.write_all(&response).await?;
        stream.shutdown().await
    };
    if tokio::time::timeout(WRITE_TIMEOUT, write).await.is_err() || !unread {
        return;
    }
    // The client sent (or announced) more than we read: drain it for a moment so that closing does not
    // reset the connection before the client read the response.
    let mut scratch = [0u8; 4096];
    let drain = async {
        let mut total = 0usize;
        while total < 64 * 1024 {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

enum Head {
    Request { method: String, path: String },
    Malformed,
    TooLarge,
}

/// Reads until the end of the request head (blank line) and parses the request line. The flag says
/// whether the client sent or announced bytes past the head (a body, a pipelined request, the rest of a
/// head over [`MAX_HEAD`]). `None`: the connection closed or failed first.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(Head, bool)> {
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = head_end(buf) {
            let head = &buf[..end];
            let unread = end < buf.len() || announces_body(head);
            return Some((parse_request_line(head), unread));
        }
        if buf.len() >= MAX_HEAD {
            return Some((Head::TooLarge, true));
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The offset just past the head's terminating blank line (CRLF CRLF, or bare LF LF).
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Whether the head has a `Content-Length` or `Transfer-Encoding` header.
fn announces_body(head: &[u8]) -> bool {
    head.split(|b| *b == b'\n').skip(1).any(|line| {
        let name = line.split(|b| *b == b':').next().unwrap_or(&[]);
        name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"transfer-encoding")
    })
}

fn parse_request_line(head: &[u8]) -> Head {
    let line_end = head.iter().position(|b| *b == b'\n').unwrap_or(head.len());
    let Ok(line) = std::str::from_utf8(&head[..line_end]) else { return Head::Malformed };
    let mut parts = line.trim_end_matches('\r').split(' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(target), Some(version), None)
            if !method.is_empty() && version.starts_with("HTTP/1.") && target.starts_with('/') =>
        {
            Head::Request { method: method.to_owned(), path: target.to_owned() }
        }
        _ => Head::Malformed,
    }
}

const TEXT: &str = "text/plain; charset=utf-8";
/// The Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// The answer to `method path` (the path may carry a query, which is ignored), given the global
/// readiness state: `(status, content type, body)`.
pub fn respond(method: &str, path: &str) -> (u16, &'static str, Vec<u8>) {
    respond_with(method, path, &HEALTH)
}

fn respond_with(method: &str, path: &str, health: &Health) -> (u16, &'static str, Vec<u8>) {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let known = matches!(path, "/metrics" | "/healthz" | "/readyz");
    if !known {
        return (404, TEXT, b"not found".to_vec());
    }
    if method != "GET" && method != "HEAD" {
        return (405, TEXT, b"method not allowed".to_vec());
    }
    match path {
        "/metrics" => {
            crate::metrics::set_ready(health.is_ready());
            let mut body = Vec::with_capacity(16 * 1024);
            match prometheus::TextEncoder::new().encode(&prometheus::gather(), &mut body) {
                Ok(()) => (200, METRICS_CONTENT_TYPE, body),
                Err(e) => {
                    tracing::error!(error = %e, "encoding metrics failed");
                    (500, TEXT, b"metrics encoding failed".to_vec())
                }
            }
        }
        "/healthz" => (200, TEXT, b"ok".to_vec()),
        _ => {
            if health.draining.load(Ordering::SeqCst) {
                (503, TEXT, b"draining".to_vec())
            } else if health.ready.load(Ordering::SeqCst) {
                (200, TEXT, b"ready".to_vec())
            } else {
                (503, TEXT, b"starting".to_vec())
            }
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

fn render(status: u16, content_type: &str, body: &[u8], head_only: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 160);
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nConnection: close\r\n",
            reason(status),
            body.len()
        )
        .as_bytes(),
    );
    if status == 405 {
        out.extend_from_slice(b"Allow: GET, HEAD\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leak(ready: bool, draining: bool) -> &'static Health {
        let h: &'static Health = Box::leak(Box::new(Health::new()));
        h.ready.store(ready, Ordering::SeqCst);
        h.draining.store(draining, Ordering::SeqCst);
        h
    }

    fn body<'a>(r: &'a (u16, &'static str, Vec<u8>)) -> &'a str {
        std::str::from_utf8(&r.2).unwrap()
    }

    #[test]
    fn healthz() {
        let r = respond_with("GET", "/healthz", leak(false, false));
        assert_eq!((r.0, r.1, body(&r)), (200, TEXT, "ok"));
        let r = respond_with("GET", "/healthz", leak(true, true));
        assert_eq!((r.0, body(&r)), (200, "ok"));
    }

    #[test]
    fn readyz_states() {
        let r = respond_with("GET", "/readyz", leak(false, false));
        assert_eq!((r.0, body(&r)), (503, "starting"));
        let r = respond_with("GET", "/readyz", leak(true, false));
        assert_eq!((r.0, body(&r)), (200, "ready"));
        let r = respond_with("GET", "/readyz?verbose=1", leak(true, true));
        assert_eq!((r.0, body(&r)), (503, "draining"));
        let r = respond_with("GET", "/readyz", leak(false, true));
        assert_eq!((r.0, body(&r)), (503, "draining"));
    }

    #[test]
    fn metrics_endpoint() {
        crate::metrics::init();
        let r = respond("GET", "/metrics");
        assert_eq!(r.0, 200);
        assert_eq!(r.1, "text/plain; version=0.0.4");
        assert!(body(&r).contains("# TYPE ssegate_build_info gauge"), "{}", body(&r));
        assert!(body(&r).contains("# TYPE ssegate_ready gauge"), "{}", body(&r));
    }

    #[test]
    fn not_found_and_method_not_allowed() {
        let h = leak(true, false);
        assert_eq!(respond_with("GET", "/", h).0, 404);
        assert_eq!(respond_with("GET", "/metricsx", h).0, 404);
        assert_eq!(respond_with("POST", "/nope", h).0, 404);
        assert_eq!(respond_with("POST", "/metrics", h).0, 405);
        assert_eq!(respond_with("DELETE", "/readyz", h).0, 405);
        assert_eq!(respond_with("HEAD", "/healthz", h).0, 200);
    }

    #[test]
    fn request_line_parsing() {
        let ok = |s: &str| match parse_request_line(s.as_bytes()) {
            Head::Request { method, path } => Some((method, path)),
            _ => None,
        };
        assert_eq!(ok("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), Some(("GET".into(), "/metrics".into())));
        assert_eq!(ok("GET /readyz HTTP/1.0\n\n"), Some(("GET".into(), "/readyz".into())));
        assert_eq!(ok("GET /readyz\r\n\r\n"), None);
        assert_eq!(ok("GET  /readyz HTTP/1.1\r\n\r\n"), None);
        assert_eq!(ok("GET http://x/readyz HTTP/1.1\r\n\r\n"), None);
        assert_eq!(ok("\u{0}\u{1}"), None);
        assert!(matches!(parse_request_line(&[0xff, b' ', b'/', b' ', b'H']), Head::Malformed));
    }

    #[test]
    fn body_detection() {
        assert!(announces_body(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n"));
        assert!(announces_body(b"POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: chunked\r\n\r\n"));
        assert!(!announces_body(b"GET /content-length: HTTP/1.1\r\nHost: a\r\n\r\n"));
    }

    #[test]
    fn head_end_detection() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\n"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\n"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }

    #[test]
    fn rendering() {
        let r = String::from_utf8(render(405, TEXT, b"method not allowed", false)).unwrap();
        assert!(r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{r}");
        assert!(r.contains("\r\nContent-Length: 18\r\n"));
        assert!(r.contains("\r\nConnection: close\r\n"));
        assert!(r.contains("\r\nAllow: GET, HEAD\r\n"));
        assert!(r.ends_with("\r\n\r\nmethod not allowed"));
        let r = String::from_utf8(render(200, TEXT, b"ok", true)).unwrap();
        assert!(
            r.ends_with("Content-Length: 2\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"),
            "{r}"
        );
    }

    #[test]
    fn probe_targets() {
        let t = |s: &str| probe_target(s.parse().unwrap()).map(|a| a.to_string());
        assert_eq!(t("0.0.0.0:8080"), Some("127.0.0.1:8080".into()));
        assert_eq!(t("[::]:8080"), Some("[::1]:8080".into()));
        assert_eq!(t("10.1.2.3:443"), Some("10.1.2.3:443".into()));
        assert_eq!(t("127.0.0.1:0"), None);
    }

    async fn get(addr: SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        String::from_utf8(out).unwrap()
    }

    /// Whether `GET /readyz` answers something `want` accepts within a generous bound (5 s).
    async fn readyz_becomes(addr: SocketAddr, want: impl Fn(&str) -> bool) -> bool {
        for _ in 0..500 {
            if want(&get(addr, "GET /readyz HTTP/1.1\r\n\r\n").await) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    #[tokio::test]
    async fn serves_over_tcp_and_keeps_serving_after_shutdown() {
        let health = leak(false, false);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // A traffic listener that is not there yet: port reserved, then released and re-bound later.
        let traffic = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let traffic_addr = traffic.local_addr().unwrap();
        drop(traffic);
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(serve(listener, vec![traffic_addr], rx, health));

        let r = get(addr, "GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\nok"), "{r}");
        let r = get(addr, "GET /readyz HTTP/1.1\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 503 "), "{r}");
        assert!(r.ends_with("starting"), "{r}");

        // The traffic listener comes up: ready within a generous bound.
        let _traffic = TcpListener::bind(traffic_addr).await.unwrap();
        assert!(readyz_becomes(addr, |r| r.ends_with("\r\n\r\nready")).await);

        let r = get(addr, "GET /metrics HTTP/1.1\r\n\r\n").await;
        assert!(r.contains("Content-Type: text/plain; version=0.0.4\r\n"), "{r}");
        let r = get(addr, "POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello").await;
        assert!(r.starts_with("HTTP/1.1 405 "), "{r}");
        let r = get(addr, "HEAD /healthz HTTP/1.1\r\n\r\n").await;
        assert!(r.ends_with("Connection: close\r\n\r\n"), "{r}");
        let r = get(addr, "garbage\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 400 "), "{r}");
        let big = format!("GET /healthz HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        let r = get(addr, &big).await;
        assert!(r.starts_with("HTTP/1.1 431 "), "{r}");

        // Shutdown: still serving, /readyz now draining.
        tx.send(true).unwrap();
        assert!(readyz_becomes(addr, |r| r.starts_with("HTTP/1.1 503 ") && r.ends_with("draining")).await);
        drop(tx);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let r = get(addr, "GET /healthz HTTP/1.1\r\n\r\n").await;
        assert!(r.ends_with("ok"), "{r}");
        let r = get(addr, "GET /readyz HTTP/1.1\r\n\r\n").await;
        assert!(r.ends_with("draining"), "{r}");
    }

    #[tokio::test]
    async fn silent_client_is_dropped_without_blocking_others() {
        let health = leak(true, false);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(serve(listener, Vec::new(), rx, health));
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let asked = tokio::time::Instant::now();
        let r = get(addr, "GET /readyz HTTP/1.1\r\n\r\n").await;
        assert!(r.ends_with("ready"), "{r}");
        // The silent connection itself is closed (EOF, no answer) once its head is HEAD_TIMEOUT late.
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(HEAD_TIMEOUT + Duration::from_secs(3), silent.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0))), "silent client not dropped: {read:?}");
        assert!(
            asked.elapsed() >= HEAD_TIMEOUT - Duration::from_millis(100),
            "dropped early: {:?}",
            asked.elapsed()
        );
    }
}
