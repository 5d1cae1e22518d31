//! `[server]` (with `[server.tls]`) and `[admin]`: the listeners and the process-wide limits, and the
//! check that no two listeners conflict.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;
use toml::Spanned;

use super::cx::Cx;
use super::headers;
use super::values::{DurationStr, SizeValue, StrList, GIB, KIB, MIB};
use crate::headers::TrustedProxies;

/// Largest accepted `threads`.
pub const MAX_THREADS: usize = 1024;
/// Largest accepted `max_request_body`.
pub const MAX_REQUEST_BODY: usize = GIB as usize;
/// Smallest accepted `max_header_size`.
pub const MIN_HEADER_SIZE: usize = KIB as usize;
/// Largest accepted `max_header_size` (pingora refuses HTTP/1 heads over 1 MiB itself).
pub const MAX_HEADER_SIZE: usize = 512 * KIB as usize;

/// `[server]`
#[derive(Debug, Clone)]
pub struct Server {
    /// `listen`: plaintext listeners, each serving HTTP/1.1 and h2c. At least one of `listen` / `tls`.
    pub listen: Vec<SocketAddr>,
    /// `threads`: worker threads (default: number of CPUs).
    pub threads: usize,
    /// `[server.tls]`
    pub tls: Option<Tls>,
    /// `shutdown_drain` (default "10s"): after SIGTERM or a graceful upgrade, how long open streams may still
    /// finish; streams open after it get `retry:` and an `event: error` of type `shutdown`.
    pub shutdown_drain: Duration,
    /// `shutdown_retry` (default "1s"): the `retry:` sent to streams closed by a shutdown.
    pub shutdown_retry: Duration,
    /// `write_timeout` (default "30s"): a client that accepts no bytes for this long is dropped (slow client).
    pub write_timeout: Duration,
    /// `max_request_body` (default "10MiB"): larger request bodies get 413.
    pub max_request_body: usize,
    /// `max_header_size` (default "32KiB"): a larger request head (target plus every header name and
    /// value) gets 431.
    pub max_header_size: usize,
    /// `request_header_timeout` (default "10s"): the whole request head must arrive within this time
    /// (from the connection being accepted, or from the first byte of a keep-alive request); else the
    /// connection is closed.
    pub request_header_timeout: Duration,
    /// `request_body_timeout` (default "30s"): the whole request body must arrive within this time; else 408.
    pub request_body_timeout: Duration,
    /// `pid_file` (default "/tmp/ssegate.pid") and `upgrade_sock` (default "/tmp/ssegate_upgrade.sock"):
    /// used by daemon mode and graceful upgrade (`ssegate run -u`).
    pub pid_file: PathBuf,
    pub upgrade_sock: PathBuf,
    /// `trusted_proxies` (default none): CIDR blocks (or addresses) of the proxies in front of ssegate. Only
    /// a peer in one of them has its `X-Forwarded-For` extended (and `-Proto`/`-Host` kept); any other
    /// peer's are replaced, so a client cannot choose the address ssegate logs and forwards.
    pub trusted_proxies: TrustedProxies,
    /// `upstream_request_id_headers` (default `["x-request-id", "request-id", "cf-ray",
    /// "x-amzn-requestid"]`): where the upstream's own request id is looked for (first found is logged as
    /// `upstream_request_id`).
    pub upstream_request_id_headers: Vec<HeaderName>,
    /// `resume_memory_max_bytes` (default "256MiB"): all streams of the memory resume store together
    /// (event names and data); past it the oldest events of the process are evicted.
    pub resume_memory_max_bytes: u64,
}

/// `[server.tls]`: a TLS listener offering h2 and HTTP/1.1 by ALPN.
#[derive(Debug, Clone)]
pub struct Tls {
    pub listen: SocketAddr,
    /// PEM certificate chain; checked readable at validation.
    pub cert: PathBuf,
    /// PEM private key; checked readable at validation.
    pub key: PathBuf,
}

/// `[admin]`
#[derive(Debug, Clone)]
pub struct Admin {
    pub listen: SocketAddr,
}

// ---- the file's tables, as serde reads them (see `RawConfig` for the conventions) ---------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    listen: Option<Spanned<StrList>>,
    threads: Option<Spanned<i64>>,
    tls: Option<Spanned<RawTls>>,
    shutdown_drain: Option<Spanned<DurationStr>>,
    shutdown_retry: Option<Spanned<DurationStr>>,
    write_timeout: Option<Spanned<DurationStr>>,
    max_request_body: Option<Spanned<SizeValue>>,
    max_header_size: Option<Spanned<SizeValue>>,
    request_header_timeout: Option<Spanned<DurationStr>>,
    request_body_timeout: Option<Spanned<DurationStr>>,
    pid_file: Option<Spanned<String>>,
    upgrade_sock: Option<Spanned<String>>,
    trusted_proxies: Option<Vec<Spanned<String>>>,
    upstream_request_id_headers: Option<Vec<Spanned<String>>>,
    resume_memory_max_bytes: Option<Spanned<SizeValue>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    listen: Option<Spanned<String>>,
    cert: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    listen: Option<Spanned<String>>,
}

/// One listen address, where it came from (for duplicate detection).
struct Listener {
    addr: SocketAddr,
    key: &'static str,
    at: usize,
}

/// `[server]` (required) and `[admin]` (optional), then the listener conflicts among all of them.
pub(super) fn server_and_admin(
    cx: &mut Cx,
    server: Option<Spanned<RawServer>>,
    admin: Option<Spanned<RawAdmin>>,
) -> (Option<Server>, Option<Admin>) {
    let mut listeners = Vec::new();
    let server = match server {
        Some(s) => self::server(cx, s, &mut listeners),
        None => {
            cx.err(0..0, "missing [server] table: at least one of server.listen / server.tls is required");
            None
        }
    };
    let admin = admin.and_then(|a| self::admin(cx, a, &mut listeners));
    check_listener_conflicts(cx, &listeners);
    (server, admin)
}

fn server(cx: &mut Cx, raw: Spanned<RawServer>, listeners: &mut Vec<Listener>) -> Option<Server> {
    let header = raw.span();
    let raw = raw.into_inner();
    let mut listen = Vec::new();
    let mut listen_given = raw.tls.is_some();
    if let Some(l) = raw.listen {
        let span = l.span();
        let items: Vec<(String, Range<usize>)> = match l.into_inner() {
            StrList::One(s) => vec![(s, span)],
            StrList::Many(v) => v.into_iter().map(|s| (s.get_ref().clone(), s.span())).collect(),
        };
        for (s, span) in items {
            listen_given = true;
            if let Some(addr) = cx.listen_addr("server.listen", &s, span.clone()) {
                listeners.push(Listener { addr, key: "server.listen", at: span.start });
                listen.push(addr);
            }
        }
    }

    let threads = match raw.threads {
        None => std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_THREADS),
        Some(t) => {
            let v = *t.get_ref();
            if v < 1 || v > MAX_THREADS as i64 {
                cx.err(t.span(), format!("threads must be between 1 and {MAX_THREADS}, got {v}"));
                1
            } else {
                v as usize
            }
        }
    };

    let tls = raw.tls.and_then(|t| self::tls(cx, t, listeners));
    if !listen_given {
        cx.err(header.clone(), "no listener: set server.listen or [server.tls]");
    }

    // One line per key: its rule and default.
    Some(Server {
        listen,
        threads,
        tls,
        shutdown_drain: cx.duration("shutdown_drain", raw.shutdown_drain, Duration::from_secs(10), true),
        shutdown_retry: cx.duration("shutdown_retry", raw.shutdown_retry, Duration::from_secs(1), true),
        write_timeout: cx.duration("write_timeout", raw.write_timeout, Duration::from_secs(30), false),
        max_request_body: cx.size(
            "max_request_body",
            raw.max_request_body,
            10 * MIB as usize,
            0,
            MAX_REQUEST_BODY,
        ),
        max_header_size: cx.size(
            "max_header_size",
            raw.max_header_size,
            32 * KIB as usize,
            MIN_HEADER_SIZE,
            MAX_HEADER_SIZE,
        ),
        request_header_timeout: cx.duration(
            "request_header_timeout",
            raw.request_header_timeout,
            Duration::from_secs(10),
            false,
        ),
        request_body_timeout: cx.duration(
            "request_body_timeout",
            raw.request_body_timeout,
            Duration::from_secs(30),
            false,
        ),
        pid_file: cx.file_path("pid_file", raw.pid_file, "/tmp/ssegate.pid"),
        upgrade_sock: cx.file_path("upgrade_sock", raw.upgrade_sock, "/tmp/ssegate_upgrade.sock"),
        trusted_proxies: headers::trusted_proxies(cx, raw.trusted_proxies),
        upstream_request_id_headers: headers::upstream_request_id_headers(
            cx,
            raw.upstream_request_id_headers,
        ),
        resume_memory_max_bytes: cx.size(
            "resume_memory_max_bytes",
            raw.resume_memory_max_bytes,
            256 * MIB as usize,
            MIB as usize,
            64 * GIB as usize,
        ) as u64,
    })
}

fn tls(cx: &mut Cx, raw: Spanned<RawTls>, listeners: &mut Vec<Listener>) -> Option<Tls> {
    let header = raw.span();
    let raw = raw.into_inner();
    let listen = match raw.listen {
        Some(l) => {
            let addr = cx.listen_addr("server.tls.listen", l.get_ref(), l.span());
            if let Some(addr) = addr {
                listeners.push(Listener { addr, key: "server.tls.listen", at: l.span().start });
            }
            addr
        }
        None => {
            cx.err(header.clone(), "missing key `listen` in [server.tls]");
            None
        }
    };
    let cert = cx.readable_file("[server.tls]", "cert", raw.cert, header.clone(), true);
    let key = cx.readable_file("[server.tls]", "key", raw.key, header, true);
    Some(Tls { listen: listen?, cert: cert?, key: key? })
}

fn admin(cx: &mut Cx, raw: Spanned<RawAdmin>, listeners: &mut Vec<Listener>) -> Option<Admin> {
    let header = raw.span();
    match raw.into_inner().listen {
        Some(l) => {
            let addr = cx.listen_addr("admin.listen", l.get_ref(), l.span())?;
            listeners.push(Listener { addr, key: "admin.listen", at: l.span().start });
            Some(Admin { listen: addr })
        }
        None => {
            cx.err(header, "missing key `listen` in [admin]");
            None
        }
    }
}

fn check_listener_conflicts(cx: &mut Cx, listeners: &[Listener]) {
    for (i, l) in listeners.iter().enumerate() {
        if let Some(prev) = listeners[..i].iter().find(|p| listen_conflict(p.addr, l.addr)) {
            let what = if prev.addr == l.addr { "is already used by" } else { "overlaps" };
            let msg = format!(
                "listen address {} {what} {} {} (line {})",
                l.addr,
                prev.key,
                prev.addr,
                cx.line_of(prev.at)
            );
            cx.err(l.at..l.at, msg);
        }
    }
}

/// Whether two listeners cannot both be bound: same port (not 0) and the same address, or a wildcard
/// address of the same family.
fn listen_conflict(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() != b.port() || a.port() == 0 {
        return false;
    }
    a.ip() == b.ip() || (a.is_ipv4() == b.is_ipv4() && (a.ip().is_unspecified() || b.ip().is_unspecified()))
}
