//! Configuration: the raw TOML file is parsed and validated here, and only here, into the runtime types
//! below. Nothing outside this module sees a raw struct.
//!
//! Every problem is reported as `file:line:col: message`; all problems of a file are collected before
//! failing (a config that passes `ssegate check` starts).

use std::collections::BTreeMap;
use std::env::VarError;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use ssegate_frame::Format;
use toml::Spanned;

use crate::security::{self, Cors, InjectedHeader, KeySet, Secret};

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    pub server: Server,
    /// The admin listener (`/metrics`, `/healthz`, `/readyz`); `None` when the `[admin]` table is absent.
    pub admin: Option<Admin>,
    /// Routes in file order; names are unique, prefixes are unique.
    pub routes: Vec<Route>,
}

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

/// `[[route]]`
#[derive(Debug, Clone)]
pub struct Route {
    /// `name`: `[A-Za-z0-9_.-]{1,64}`, unique; used as the `route` metrics label.
    pub name: String,
    /// `path_prefix`: starts with `/`; no trailing `/` unless it is exactly `/`. Matches whole segments:
    /// `/a` matches `/a`, `/a/x`, `/a?q` but not `/ab`. Longest matching prefix wins.
    pub path_prefix: String,
    /// `strip_prefix` (default true): remove the prefix before forwarding (`/a/x` -> `/x`, `/a` -> `/`).
    pub strip_prefix: bool,
    /// `upstream`
    pub upstream: Upstream,
    /// `format` (default auto)
    pub format: FormatChoice,
    /// `heartbeat_interval` (default "15s"; "0s" -> None, disabled)
    pub heartbeat_interval: Option<Duration>,
    /// `event_field`: JSON formats, take the `event:` name from this top-level string field.
    pub event_field: Option<String>,
    /// `ids` (default false): number events `id: 1`, `id: 2`, ... (replacing upstream ids).
    pub ids: bool,
    /// `done_event`: sent after a clean upstream end, e.g. `{ event = "end", data = "[DONE]" }`.
    pub done_event: Option<DoneEvent>,
    /// `forward_comments` (default false): forward upstream SSE comment lines (e.g. `: ping`) to the client.
    pub forward_comments: bool,
    /// `connect_timeout` (default "5s")
    pub connect_timeout: Duration,
    /// `header_timeout` (default "300s"): request sent -> upstream response headers.
    pub header_timeout: Duration,
    /// `idle_timeout` (default "300s"): longest silence of the upstream body.
    pub idle_timeout: Duration,
    /// `max_duration` (default "1h"; "0s" -> None, unlimited): longest stream.
    pub max_duration: Option<Duration>,
    /// `max_event_size` (default "1MiB"): integer bytes or a string with B/KiB/MiB/KB/MB suffix.
    pub max_event_size: usize,
    /// `on_decode_error` (default skip): what a malformed/oversized message does.
    pub on_decode_error: DecodeErrorPolicy,
    /// `auth = { keys_env = [...], keys_file = [...] }`: the client keys this route accepts; `None`: open.
    pub auth: Option<KeySet>,
    /// `upstream_headers = { "Name" = "value with ${env:VAR} / ${file:PATH}" }`, resolved at load.
    pub upstream_headers: Vec<InjectedHeader>,
    /// `max_streams` (default 0 = unlimited): concurrent requests on this route; more get 503.
    pub max_streams: usize,
    /// `retry_after` (default "1s"): the `Retry-After` of a 503 for `max_streams` (whole seconds, at least 1).
    pub retry_after: Duration,
    /// `cors = { allow_origins = [...], ... }`
    pub cors: Option<Cors>,
}

/// A route's upstream, from `upstream = "http(s)://host[:port][/base/path]"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// https
    pub tls: bool,
    /// Host name or IP literal (without brackets), used for DNS and SNI.
    pub host: String,
    /// Explicit port, or 80 / 443.
    pub port: u16,
    /// The path part of the URL without a trailing `/` ("" when none): prepended to the forwarded path.
    pub base_path: String,
    /// The `Host` header sent upstream: `host` plus `:port` when the port is not the scheme's default.
    pub host_header: String,
    /// `ca_file` (https only): extra PEM roots, checked readable at validation.
    pub ca_file: Option<PathBuf>,
}

/// `format = "auto" | "passthrough" | <a frame format name>`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatChoice {
    /// Choose by the upstream's Content-Type (`Format::from_content_type`); unknown types pass through.
    Auto,
    /// Never convert.
    Passthrough,
    /// Always decode this format (for `json-array`: 2xx answers only).
    Fixed(Format),
}

/// `done_event = { event = "...", data = "..." }` (`event` optional; `data` required).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoneEvent {
    pub event: Option<String>,
    pub data: String,
}

/// `on_decode_error = "skip" | "close"`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeErrorPolicy {
    /// Drop the bad message, count it, keep streaming (unrecoverable JSON errors still close).
    Skip,
    /// Send `event: error` (type `decode`) and end the stream.
    Close,
}

/// Everything wrong with a config file; `Display` prints one `file:line:col: message` per line.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<String>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for ConfigErrors {}

/// Where a config's outside inputs come from: environment variables (`auth.keys_env`, `${env:NAME}`) and
/// files (the config file, `auth.keys_file`, `${file:PATH}`, the TLS cert and key, `ca_file`).
/// [`System`] is the real process environment and file system; [`MapSource`] is an in-memory one for
/// tests. Paths given to it are already resolved against the config file's directory.
pub trait Source {
    /// The value of the environment variable `name`.
    fn env(&self, name: &str) -> Result<String, VarError>;
    /// Whether `path` (symlinks followed) is a regular file; `Err` when it cannot be inspected (missing,
    /// no permission). Asked before reading the TLS cert / key and `ca_file`, so that a directory, FIFO or
    /// device given there is refused instead of read.
    fn is_file(&self, path: &Path) -> io::Result<bool>;
    /// The whole content of the file at `path`.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
}

/// The process environment and the real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct System;

impl Source for System {
    fn env(&self, name: &str) -> Result<String, VarError> {
        std::env::var(name)
    }

    fn is_file(&self, path: &Path) -> io::Result<bool> {
        std::fs::metadata(path).map(|m| m.is_file())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }
}

/// An in-memory [`Source`] (for tests): variables and files are exactly those added; every other
/// variable is unset and every other path is missing (`NotFound`), except that a path under which files
/// were added is a directory (`is_file` answers `false`).
#[derive(Debug, Clone, Default)]
pub struct MapSource {
    env: BTreeMap<String, String>,
    files: BTreeMap<PathBuf, Vec<u8>>,
}

impl MapSource {
    pub fn new() -> MapSource {
        MapSource::default()
    }

    /// Sets the environment variable `name`.
    pub fn with_env(mut self, name: &str, value: &str) -> MapSource {
        self.env.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Adds a file at `path` (as the config refers to it after resolution: absolute, or joined to the
    /// config file's directory).
    pub fn with_file(mut self, path: impl Into<PathBuf>, content: impl Into<Vec<u8>>) -> MapSource {
        self.files.insert(path.into(), content.into());
        self
    }
}

impl Source for MapSource {
    fn env(&self, name: &str) -> Result<String, VarError> {
        self.env.get(name).cloned().ok_or(VarError::NotPresent)
    }

    fn is_file(&self, path: &Path) -> io::Result<bool> {
        if self.files.contains_key(path) {
            Ok(true)
        } else if self.files.keys().any(|f| f.starts_with(path)) {
            Ok(false)
        } else {
            Err(io::ErrorKind::NotFound.into())
        }
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.files.get(path).cloned().ok_or_else(|| io::ErrorKind::NotFound.into())
    }
}

/// The text of the file at `path` read through `source` (same error as `std::fs::read_to_string`).
fn read_to_string(source: &dyn Source, path: &Path) -> io::Result<String> {
    String::from_utf8(source.read(path)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "stream did not contain valid UTF-8"))
}

// ---------------------------------------------------------------------------------------------------------
// Limits and defaults
// ---------------------------------------------------------------------------------------------------------

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * 1024 * 1024;

/// Smallest accepted `max_event_size`.
pub const MIN_EVENT_SIZE: usize = KIB as usize;
/// Largest accepted `max_event_size`.
pub const MAX_EVENT_SIZE: usize = 256 * MIB as usize;
/// Largest accepted `max_request_body`.
pub const MAX_REQUEST_BODY: usize = GIB as usize;
/// Smallest accepted `max_header_size`.
pub const MIN_HEADER_SIZE: usize = KIB as usize;
/// Largest accepted `max_header_size` (pingora refuses HTTP/1 heads over 1 MiB itself).
pub const MAX_HEADER_SIZE: usize = 512 * KIB as usize;
/// Largest accepted `max_streams`.
pub const MAX_STREAMS: i64 = 1_000_000;
/// `cors.allow_headers` default.
pub const CORS_DEFAULT_HEADERS: [&str; 4] = ["content-type", "authorization", "x-api-key", "last-event-id"];
/// `cors.allow_methods` default.
pub const CORS_DEFAULT_METHODS: [&str; 3] = ["GET", "POST", "OPTIONS"];
/// Headers `upstream_headers` may not set: the gateway owns them (framing, hop-by-hop, Host).
const RESERVED_HEADERS: [&str; 12] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "accept-encoding",
    "proxy-authenticate",
    "proxy-authorization",
];
/// Largest accepted `threads`.
pub const MAX_THREADS: usize = 1024;
/// Smallest non-zero `heartbeat_interval`.
pub const MIN_HEARTBEAT: Duration = Duration::from_millis(10);
/// Longest accepted duration anywhere in the file (365 days): keeps every `Instant + d` far from overflow.
pub const MAX_DURATION_VALUE: Duration = Duration::from_secs(365 * 24 * 3600);

/// Every accepted `format` value, for the "unknown format" message (derived, so a new format is listed).
fn format_names() -> String {
    let mut names = vec!["auto", "passthrough"];
    names.extend(Format::ALL.map(Format::name));
    names.join(", ")
}

// ---------------------------------------------------------------------------------------------------------
// Raw TOML structs: a 1:1 mirror of the file. Everything that is validated keeps its span.
// Required keys are `Option` so that a missing key is reported together with every other problem.
// ---------------------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: Option<Spanned<RawServer>>,
    admin: Option<Spanned<RawAdmin>>,
    route: Option<Vec<Spanned<RawRoute>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
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
struct RawAdmin {
    listen: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: Option<Spanned<String>>,
    path_prefix: Option<Spanned<String>>,
    strip_prefix: Option<bool>,
    upstream: Option<Spanned<String>>,
    ca_file: Option<Spanned<String>>,
    format: Option<Spanned<String>>,
    heartbeat_interval: Option<Spanned<DurationStr>>,
    event_field: Option<Spanned<String>>,
    ids: Option<bool>,
    done_event: Option<Spanned<RawDoneEvent>>,
    forward_comments: Option<bool>,
    connect_timeout: Option<Spanned<DurationStr>>,
    header_timeout: Option<Spanned<DurationStr>>,
    idle_timeout: Option<Spanned<DurationStr>>,
    max_duration: Option<Spanned<DurationStr>>,
    max_event_size: Option<Spanned<SizeValue>>,
    on_decode_error: Option<Spanned<String>>,
    auth: Option<Spanned<RawAuth>>,
    upstream_headers: Option<Spanned<std::collections::BTreeMap<Spanned<String>, Spanned<String>>>>,
    max_streams: Option<Spanned<i64>>,
    retry_after: Option<Spanned<DurationStr>>,
    cors: Option<Spanned<RawCors>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    keys_env: Option<Vec<Spanned<String>>>,
    keys_file: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCors {
    allow_origins: Option<Spanned<Vec<Spanned<String>>>>,
    allow_headers: Option<Vec<Spanned<String>>>,
    allow_methods: Option<Vec<Spanned<String>>>,
    max_age: Option<Spanned<DurationStr>>,
    allow_credentials: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDoneEvent {
    event: Option<Spanned<String>>,
    data: Option<Spanned<String>>,
}

/// A duration string (`"15s"`); its own type only for a helpful "expected ..." in type errors.
#[derive(Debug)]
struct DurationStr(String);

impl<'de> Deserialize<'de> for DurationStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DurationStr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"15s\", \"250ms\" or \"1h\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationStr, E> {
                Ok(DurationStr(v.to_owned()))
            }
        }
        d.deserialize_str(V)
    }
}

/// A size: integer bytes or a string with a unit (`"64KiB"`).
#[derive(Debug)]
enum SizeValue {
    Int(i64),
    Str(String),
}

impl<'de> Deserialize<'de> for SizeValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SizeValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size: integer bytes or a string such as \"64KiB\", \"1MiB\" or \"10MB\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<SizeValue, E> {
                Ok(SizeValue::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<SizeValue, E> {
                Ok(SizeValue::Int(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SizeValue, E> {
                Ok(SizeValue::Str(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// `listen = "addr"` or `listen = ["addr", ...]`.
#[derive(Debug)]
enum StrList {
    One(String),
    Many(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for StrList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an address string or an array of address strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StrList, E> {
                Ok(StrList::One(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrList, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<String>>()? {
                    out.push(item);
                }
                Ok(StrList::Many(out))
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------------------

impl Config {
    /// Reads, parses and validates `path`, with the process environment and the real file system.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Config::load_with(path, &System)
    }

    /// Parses and validates `src` as if it had been read from `path` (used for error positions and to
    /// resolve relative paths against `path`'s directory), with the process environment and the real
    /// file system.
    pub fn from_str_at(path: &Path, src: &str) -> Result<Config, ConfigErrors> {
        Config::from_str_with(path, src, &System)
    }

    /// [`Config::load`], reading the file, the environment and every referenced file from `source`.
    pub fn load_with(path: &Path, source: &dyn Source) -> Result<Config, ConfigErrors> {
        let src = read_to_string(source, path)
            .map_err(|e| ConfigErrors(vec![format!("{}: cannot read config file: {e}", path.display())]))?;
        Config::from_str_with(path, &src, source)
    }

    /// [`Config::from_str_at`], reading the environment and every referenced file from `source`.
    pub fn from_str_with(path: &Path, src: &str, source: &dyn Source) -> Result<Config, ConfigErrors> {
        let mut cx = Cx::new(path, src, source);
        let raw: RawConfig = match toml::from_str(src) {
            Ok(raw) => raw,
            Err(e) => {
                let msg = e.message().trim_end().to_owned();
                match e.span() {
                    Some(span) => cx.err(span, msg),
                    None => cx.errors.push((None, msg)),
                }
                return Err(cx.finish());
            }
        };
        let config = cx.config(raw);
        if cx.errors.is_empty() {
            if let Some(config) = config {
                return Ok(config);
            }
            cx.errors.push((None, "invalid configuration".to_owned()));
        }
        Err(cx.finish())
    }
}

/// Validation context: the file, its text, where outside inputs come from, and every error found so far
/// (byte offset, message).
struct Cx<'a> {
    path: &'a Path,
    dir: PathBuf,
    src: &'a str,
    source: &'a dyn Source,
    errors: Vec<(Option<usize>, String)>,
}

/// One listen address, where it came from (for duplicate detection).
struct Listener {
    addr: SocketAddr,
    key: &'static str,
    at: usize,
}

impl<'a> Cx<'a> {
    fn new(path: &'a Path, src: &'a str, source: &'a dyn Source) -> Self {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Cx { path, dir, src, source, errors: Vec::new() }
    }

    fn err(&mut self, span: Range<usize>, msg: impl Into<String>) {
        self.errors.push((Some(span.start), msg.into()));
    }

    /// `(line, col)`, both 1-based, of a byte offset; columns count characters.
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut off = offset.min(self.src.len());
        while !self.src.is_char_boundary(off) {
            off -= 1;
        }
        let before = &self.src[..off];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }

    fn line_of(&self, offset: usize) -> usize {
        self.line_col(offset).0
    }

    fn finish(mut self) -> ConfigErrors {
        // File order; problems without a position (there should be none) first.
        self.errors.sort_by_key(|(at, _)| *at);
        let file = self.path.display();
        ConfigErrors(
            self.errors
                .iter()
                .map(|(at, msg)| match at {
                    Some(at) => {
                        let (line, col) = self.line_col(*at);
                        format!("{file}:{line}:{col}: {msg}")
                    }
                    None => format!("{file}: {msg}"),
                })
                .collect(),
        )
    }

    fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }

    fn config(&mut self, raw: RawConfig) -> Option<Config> {
        let mut listeners = Vec::new();
        let server = match raw.server {
            Some(s) => self.server(s, &mut listeners),
            None => {
                self.err(
                    0..0,
                    "missing [server] table: at least one of server.listen / server.tls is required",
                );
                None
            }
        };
        let admin = raw.admin.and_then(|a| self.admin(a, &mut listeners));
        self.check_listener_conflicts(&listeners);

        let routes = self.routes(raw.route.unwrap_or_default());
        Some(Config { path: self.path.to_path_buf(), server: server?, admin, routes })
    }

    // ---- [server] ------------------------------------------------------------------------------------

    fn server(&mut self, raw: Spanned<RawServer>, listeners: &mut Vec<Listener>) -> Option<Server> {
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
                if let Some(addr) = self.listen_addr("server.listen", &s, span.clone()) {
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
                    self.err(t.span(), format!("threads must be between 1 and {MAX_THREADS}, got {v}"));
                    1
                } else {
                    v as usize
                }
            }
        };

        let tls = raw.tls.and_then(|t| self.tls(t, listeners));
        if !listen_given {
            self.err(header.clone(), "no listener: set server.listen or [server.tls]");
        }

        let shutdown_drain =
            self.duration("shutdown_drain", raw.shutdown_drain, Duration::from_secs(10), true);
        let shutdown_retry =
            self.duration("shutdown_retry", raw.shutdown_retry, Duration::from_secs(1), true);
        let write_timeout = self.duration("write_timeout", raw.write_timeout, Duration::from_secs(30), false);
        let max_request_body =
            self.size("max_request_body", raw.max_request_body, 10 * MIB as usize, 0, MAX_REQUEST_BODY);
        let max_header_size = self.size(
            "max_header_size",
            raw.max_header_size,
            32 * KIB as usize,
            MIN_HEADER_SIZE,
            MAX_HEADER_SIZE,
        );
        let request_header_timeout = self.duration(
            "request_header_timeout",
            raw.request_header_timeout,
            Duration::from_secs(10),
            false,
        );
        let request_body_timeout =
            self.duration("request_body_timeout", raw.request_body_timeout, Duration::from_secs(30), false);
        let pid_file = self.file_path("pid_file", raw.pid_file, "/tmp/ssegate.pid");
        let upgrade_sock = self.file_path("upgrade_sock", raw.upgrade_sock, "/tmp/ssegate_upgrade.sock");

        Some(Server {
            listen,
            threads,
            tls,
            shutdown_drain,
            shutdown_retry,
            write_timeout,
            max_request_body,
            max_header_size,
            request_header_timeout,
            request_body_timeout,
            pid_file,
            upgrade_sock,
        })
    }

    fn tls(&mut self, raw: Spanned<RawTls>, listeners: &mut Vec<Listener>) -> Option<Tls> {
        let header = raw.span();
        let raw = raw.into_inner();
        let listen = match raw.listen {
            Some(l) => {
                let addr = self.listen_addr("server.tls.listen", l.get_ref(), l.span());
                if let Some(addr) = addr {
                    listeners.push(Listener { addr, key: "server.tls.listen", at: l.span().start });
                }
                addr
            }
            None => {
                self.err(header.clone(), "missing key `listen` in [server.tls]");
                None
            }
        };
        let cert = self.readable_file("[server.tls]", "cert", raw.cert, header.clone(), true);
        let key = self.readable_file("[server.tls]", "key", raw.key, header, true);
        Some(Tls { listen: listen?, cert: cert?, key: key? })
    }

    fn admin(&mut self, raw: Spanned<RawAdmin>, listeners: &mut Vec<Listener>) -> Option<Admin> {
        let header = raw.span();
        match raw.into_inner().listen {
            Some(l) => {
                let addr = self.listen_addr("admin.listen", l.get_ref(), l.span())?;
                listeners.push(Listener { addr, key: "admin.listen", at: l.span().start });
                Some(Admin { listen: addr })
            }
            None => {
                self.err(header, "missing key `listen` in [admin]");
                None
            }
        }
    }

    fn listen_addr(&mut self, key: &str, s: &str, span: Range<usize>) -> Option<SocketAddr> {
        match parse_listen(s) {
            Ok(addr) => Some(addr),
            Err(msg) => {
                self.err(span, format!("invalid {key} address {s:?}: {msg}"));
                None
            }
        }
    }

    fn check_listener_conflicts(&mut self, listeners: &[Listener]) {
        for (i, l) in listeners.iter().enumerate() {
            if let Some(prev) = listeners[..i].iter().find(|p| listen_conflict(p.addr, l.addr)) {
                let what = if prev.addr == l.addr { "is already used by" } else { "overlaps" };
                let msg = format!(
                    "listen address {} {what} {} {} (line {})",
                    l.addr,
                    prev.key,
                    prev.addr,
                    self.line_of(prev.at)
                );
                self.err(l.at..l.at, msg);
            }
        }
    }

    // ---- [[route]] -----------------------------------------------------------------------------------

    fn routes(&mut self, raw: Vec<Spanned<RawRoute>>) -> Vec<Route> {
        if raw.is_empty() {
            self.err(0..0, "no routes: add at least one [[route]] table");
            return Vec::new();
        }
        let mut routes = Vec::new();
        // (value, offset) of names and prefixes seen so far, for duplicate detection.
        let mut names: Vec<(String, usize)> = Vec::new();
        let mut prefixes: Vec<(String, usize, String)> = Vec::new();
        for r in raw {
            let header = r.span();
            let r = r.into_inner();
            let label = r.name.as_ref().map_or_else(String::new, |n| format!(" {:?}", n.get_ref()));

            let name = match r.name {
                None => {
                    self.err(header.clone(), "missing key `name` in [[route]]");
                    None
                }
                Some(n) => match check_route_name(n.get_ref()) {
                    Err(msg) => {
                        self.err(n.span(), msg);
                        None
                    }
                    Ok(()) => {
                        if let Some((_, at)) = names.iter().find(|(s, _)| s == n.get_ref()) {
                            let msg = format!(
                                "duplicate route name {:?} (first used on line {})",
                                n.get_ref(),
                                self.line_of(*at)
                            );
                            self.err(n.span(), msg);
                        } else {
                            names.push((n.get_ref().clone(), n.span().start));
                        }
                        Some(n.into_inner())
                    }
                },
            };

            let path_prefix = match r.path_prefix {
                None => {
                    self.err(header.clone(), format!("missing key `path_prefix` in [[route]]{label}"));
                    None
                }
                Some(p) => match check_path_prefix(p.get_ref()) {
                    Err(msg) => {
                        self.err(p.span(), msg);
                        None
                    }
                    Ok(()) => {
                        if let Some((_, at, other)) = prefixes.iter().find(|(s, _, _)| s == p.get_ref()) {
                            let msg = format!(
                                "duplicate path_prefix {:?}: route {other:?} (line {}) already uses it",
                                p.get_ref(),
                                self.line_of(*at)
                            );
                            self.err(p.span(), msg);
                        } else {
                            let owner = name.clone().unwrap_or_default();
                            prefixes.push((p.get_ref().clone(), p.span().start, owner));
                        }
                        Some(p.into_inner())
                    }
                },
            };

            let upstream = match r.upstream {
                None => {
                    self.err(header.clone(), format!("missing key `upstream` in [[route]]{label}"));
                    None
                }
                Some(u) => match parse_upstream(u.get_ref()) {
                    Err(msg) => {
                        self.err(u.span(), msg);
                        None
                    }
                    Ok(up) => Some(up),
                },
            };
            let ca_file = match (&upstream, r.ca_file) {
                (_, None) => None,
                (Some(up), Some(ca)) if !up.tls => {
                    self.err(ca.span(), "ca_file is only used with an https:// upstream");
                    None
                }
                (_, Some(ca)) => self.readable_file("[[route]]", "ca_file", Some(ca), header.clone(), true),
            };
            let upstream = upstream.map(|mut u| {
                u.ca_file = ca_file;
                u
            });

            let format = match r.format {
                None => Some(FormatChoice::Auto),
                Some(f) => match parse_format(f.get_ref()) {
                    Some(choice) => Some(choice),
                    None => {
                        self.err(
                            f.span(),
                            format!("unknown format {:?}; expected one of {}", f.get_ref(), format_names()),
                        );
                        None
                    }
                },
            };

            let heartbeat_interval = self.optional_duration(
                "heartbeat_interval",
                r.heartbeat_interval,
                Duration::from_secs(15),
                Some(MIN_HEARTBEAT),
            );

            let event_field = match r.event_field {
                None => None,
                Some(ef) => {
                    if ef.get_ref().is_empty() {
                        self.err(ef.span(), "event_field must not be empty");
                    } else if matches!(format, Some(FormatChoice::Passthrough))
                        || matches!(format, Some(FormatChoice::Fixed(f)) if !f.is_json())
                    {
                        let name = format.map_or("", format_choice_name);
                        self.err(
                            ef.span(),
                            format!(
                                "event_field only applies to JSON formats (ndjson, json-stream, json-seq, \
                                 json-array) or auto, not format {name:?}"
                            ),
                        );
                    }
                    Some(ef.into_inner())
                }
            };

            let done_event = r.done_event.and_then(|d| self.done_event(d));

            let connect_timeout =
                self.duration("connect_timeout", r.connect_timeout, Duration::from_secs(5), false);
            let header_timeout =
                self.duration("header_timeout", r.header_timeout, Duration::from_secs(300), false);
            let idle_timeout = self.duration("idle_timeout", r.idle_timeout, Duration::from_secs(300), false);
            let max_duration =
                self.optional_duration("max_duration", r.max_duration, Duration::from_secs(3600), None);
            let max_event_size =
                self.size("max_event_size", r.max_event_size, MIB as usize, MIN_EVENT_SIZE, MAX_EVENT_SIZE);

            let on_decode_error = match r.on_decode_error {
                None => DecodeErrorPolicy::Skip,
                Some(p) => match p.get_ref().as_str() {
                    "skip" => DecodeErrorPolicy::Skip,
                    "close" => DecodeErrorPolicy::Close,
                    other => {
                        self.err(
                            p.span(),
                            format!("unknown on_decode_error {other:?}; expected skip or close"),
                        );
                        DecodeErrorPolicy::Skip
                    }
                },
            };

            let auth = r.auth.and_then(|a| self.auth(a));
            let upstream_headers = r.upstream_headers.map(|h| self.upstream_headers(h)).unwrap_or_default();
            let max_streams = match r.max_streams {
                None => 0,
                Some(m) => {
                    let v = *m.get_ref();
                    if !(0..=MAX_STREAMS).contains(&v) {
                        self.err(
                            m.span(),
                            format!("max_streams must be between 0 (unlimited) and {MAX_STREAMS}, got {v}"),
                        );
                        0
                    } else {
                        v as usize
                    }
                }
            };
            let retry_after = self.duration("retry_after", r.retry_after, Duration::from_secs(1), false);
            let cors = r.cors.and_then(|c| self.cors(c));

            if let (Some(name), Some(path_prefix), Some(upstream), Some(format)) =
                (name, path_prefix, upstream, format)
            {
                routes.push(Route {
                    name,
                    path_prefix,
                    strip_prefix: r.strip_prefix.unwrap_or(true),
                    upstream,
                    format,
                    heartbeat_interval,
                    event_field,
                    ids: r.ids.unwrap_or(false),
                    done_event,
                    forward_comments: r.forward_comments.unwrap_or(false),
                    connect_timeout,
                    header_timeout,
                    idle_timeout,
                    max_duration,
                    max_event_size,
                    on_decode_error,
                    auth,
                    upstream_headers,
                    max_streams,
                    retry_after,
                    cors,
                });
            }
        }
        routes
    }

    fn done_event(&mut self, raw: Spanned<RawDoneEvent>) -> Option<DoneEvent> {
        let header = raw.span();
        let raw = raw.into_inner();
        let mut ok = true;
        if let Some(ev) = &raw.event {
            let s = ev.get_ref();
            if s.is_empty() {
                self.err(ev.span(), "done_event.event must not be empty (leave it out for a plain message)");
                ok = false;
            } else if s.contains(['\r', '\n', '\0']) {
                self.err(ev.span(), "done_event.event must not contain CR, LF or NUL");
                ok = false;
            }
        }
        let data = match raw.data {
            Some(d) => Some(d.into_inner()),
            None => {
                self.err(
                    header,
                    "missing key `data` in done_event (e.g. { event = \"end\", data = \"[DONE]\" })",
                );
                None
            }
        };
        if !ok {
            return None;
        }
        Some(DoneEvent { event: raw.event.map(Spanned::into_inner), data: data? })
    }

    // ---- security --------------------------------------------------------------------------------------
    // Secret values never appear in a message: only the variable, file or header name does.

    fn auth(&mut self, raw: Spanned<RawAuth>) -> Option<KeySet> {
        let header = raw.span();
        let raw = raw.into_inner();
        if raw.keys_env.is_none() && raw.keys_file.is_none() {
            self.err(header, "auth needs keys_env and/or keys_file (keys are never written in the config)");
            return None;
        }
        let mut keys = Vec::new();
        let mut ok = true;
        for var in raw.keys_env.unwrap_or_default() {
            let name = var.get_ref();
            let Some(text) = self.env_var("auth.keys_env", name, var.span()) else {
                ok = false;
                continue;
            };
            let found = security::parse_keys(&text, false);
            if found.is_empty() {
                self.err(var.span(), format!("auth.keys_env: environment variable {name} holds no key"));
                ok = false;
            }
            keys.extend(found);
        }
        for file in raw.keys_file.unwrap_or_default() {
            if file.get_ref().is_empty() {
                self.err(file.span(), "auth.keys_file: the path must not be empty");
                ok = false;
                continue;
            }
            let Some((path, text)) = self.read_text("auth.keys_file", file.get_ref(), file.span()) else {
                ok = false;
                continue;
            };
            let found = security::parse_keys(&text, true);
            if found.is_empty() {
                self.err(file.span(), format!("auth.keys_file: {} holds no key", path.display()));
                ok = false;
            }
            keys.extend(found);
        }
        (ok && !keys.is_empty()).then(|| KeySet::new(keys))
    }

    fn upstream_headers(
        &mut self,
        raw: Spanned<std::collections::BTreeMap<Spanned<String>, Spanned<String>>>,
    ) -> Vec<InjectedHeader> {
        let mut out: Vec<InjectedHeader> = Vec::new();
        for (key, value) in raw.into_inner() {
            let k = key.get_ref();
            let name = match HeaderName::from_bytes(k.as_bytes()) {
                Ok(n) => n,
                Err(_) => {
                    self.err(key.span(), format!("upstream_headers: {k:?} is not a valid header name"));
                    continue;
                }
            };
            if RESERVED_HEADERS.contains(&name.as_str()) {
                self.err(
                    key.span(),
                    format!("upstream_headers: {k:?} is set by the gateway and cannot be configured"),
                );
                continue;
            }
            if out.iter().any(|h| h.name == name) {
                self.err(
                    key.span(),
                    format!("upstream_headers: {k:?} is given twice (names are case-insensitive)"),
                );
                continue;
            }
            let Some(text) = self.interpolate(k, &value) else { continue };
            match HeaderValue::from_str(text.expose()) {
                Ok(mut v) => {
                    v.set_sensitive(true);
                    out.push(InjectedHeader { name, value: v });
                }
                Err(_) => self.err(
                    value.span(),
                    format!(
                        "upstream_headers.{k}: the value (after resolving references) is not a valid header \
                         value (control characters or a trailing newline?)"
                    ),
                ),
            }
        }
        out
    }

    /// Resolves `${env:NAME}` and `${file:PATH}` in an `upstream_headers` value.
    fn interpolate(&mut self, key: &str, raw: &Spanned<String>) -> Option<Secret> {
        let src = raw.get_ref();
        let mut out = String::with_capacity(src.len());
        let mut rest = src.as_str();
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let Some(end) = after.find('}') else {
                self.err(raw.span(), format!("upstream_headers.{key}: unterminated `${{` (expected ${{env:NAME}} or ${{file:PATH}})"));
                return None;
            };
            let reference = &after[..end];
            if let Some(name) = reference.strip_prefix("env:") {
                let v = self.env_var(&format!("upstream_headers.{key}"), name, raw.span())?;
                out.push_str(&v);
            } else if let Some(file) = reference.strip_prefix("file:") {
                if file.is_empty() {
                    self.err(raw.span(), format!("upstream_headers.{key}: empty file path in ${{file:}}"));
                    return None;
                }
                let (_, v) = self.read_text(&format!("upstream_headers.{key}"), file, raw.span())?;
                out.push_str(v.trim_end_matches(['\r', '\n']));
            } else {
                self.err(
                    raw.span(),
                    format!(
                        "upstream_headers.{key}: unknown reference; expected ${{env:NAME}} or ${{file:PATH}}"
                    ),
                );
                return None;
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Some(Secret::new(out))
    }

    /// The value of the environment variable `name`; `what` (`auth.keys_env`) starts the error messages.
    fn env_var(&mut self, what: &str, name: &str, span: Range<usize>) -> Option<String> {
        if !is_env_name(name) {
            self.err(span, format!("{what}: {name:?} is not an environment variable name"));
            return None;
        }
        match self.source.env(name) {
            Ok(v) => Some(v),
            Err(e) => {
                let why = match e {
                    VarError::NotPresent => "is not set",
                    VarError::NotUnicode(_) => "is not UTF-8",
                };
                self.err(span, format!("{what}: environment variable {name} {why}"));
                None
            }
        }
    }

    /// The resolved path of `file` and its text; `what` (`auth.keys_file`) starts the error message.
    fn read_text(&mut self, what: &str, file: &str, span: Range<usize>) -> Option<(PathBuf, String)> {
        let path = self.resolve(file);
        match read_to_string(self.source, &path) {
            Ok(text) => Some((path, text)),
            Err(e) => {
                self.err(span, format!("{what}: cannot read {}: {e}", path.display()));
                None
            }
        }
    }

    fn cors(&mut self, raw: Spanned<RawCors>) -> Option<Cors> {
        let header = raw.span();
        let raw = raw.into_inner();
        let mut ok = true;
        let credentials = raw.allow_credentials.as_ref().is_some_and(|c| *c.get_ref());
        let origins = match raw.allow_origins {
            None => {
                self.err(
                    header.clone(),
                    "missing key `allow_origins` in cors (a list of origins, or [\"*\"])",
                );
                return None;
            }
            Some(list) if list.get_ref().is_empty() => {
                self.err(list.span(), "cors.allow_origins must not be empty");
                return None;
            }
            Some(list) => {
                let span = list.span();
                let list = list.into_inner();
                if list.iter().any(|o| o.get_ref() == "*") {
                    if list.len() > 1 {
                        self.err(span.clone(), "cors.allow_origins: \"*\" must be the only entry");
                        ok = false;
                    }
                    if credentials {
                        self.err(
                            span,
                            "cors: allow_origins = [\"*\"] cannot be combined with allow_credentials = true",
                        );
                        ok = false;
                    }
                    None
                } else {
                    let mut out = Vec::new();
                    for o in list {
                        match check_origin(o.get_ref()) {
                            Ok(v) => out.push(v),
                            Err(msg) => {
                                self.err(o.span(), msg);
                                ok = false;
                            }
                        }
                    }
                    Some(out)
                }
            }
        };
        let allow_headers = match raw.allow_headers {
            None => CORS_DEFAULT_HEADERS.iter().map(|h| (*h).to_owned()).collect(),
            Some(list) => {
                let mut out = Vec::new();
                for h in list {
                    match HeaderName::from_bytes(h.get_ref().as_bytes()) {
                        Ok(n) => out.push(n.as_str().to_owned()),
                        Err(_) => {
                            self.err(
                                h.span(),
                                format!("cors.allow_headers: {:?} is not a header name", h.get_ref()),
                            );
                            ok = false;
                        }
                    }
                }
                out
            }
        };
        let allow_methods = match raw.allow_methods {
            None => CORS_DEFAULT_METHODS.iter().map(|m| (*m).to_owned()).collect(),
            Some(list) => {
                let mut out = Vec::new();
                for m in list {
                    let v = m.get_ref();
                    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    {
                        self.err(m.span(), format!("cors.allow_methods: {v:?} is not an HTTP method"));
                        ok = false;
                    } else {
                        out.push(v.clone());
                    }
                }
                out
            }
        };
        let max_age = self.duration("cors.max_age", raw.max_age, Duration::from_secs(600), true);
        if !ok {
            return None;
        }
        let joined = |v: &[String]| HeaderValue::from_str(&v.join(", ")).ok();
        Some(Cors {
            origins,
            allow_methods_value: joined(&allow_methods)?,
            allow_headers_value: joined(&allow_headers)?,
            max_age_value: HeaderValue::from(max_age.as_secs()),
            allow_headers,
            allow_methods,
            max_age,
            allow_credentials: credentials,
        })
    }

    // ---- values --------------------------------------------------------------------------------------

    /// A duration that must be > 0 (or >= 0 when `zero_ok`).
    fn duration(
        &mut self,
        key: &str,
        raw: Option<Spanned<DurationStr>>,
        default: Duration,
        zero_ok: bool,
    ) -> Duration {
        let Some(raw) = raw else { return default };
        match parse_duration(&raw.get_ref().0) {
            Err(msg) => {
                self.err(raw.span(), format!("{key}: {msg}"));
                default
            }
            Ok(d) if d.is_zero() && !zero_ok => {
                self.err(raw.span(), format!("{key} must be greater than 0"));
                default
            }
            Ok(d) => d,
        }
    }

    /// A duration where `"0s"` means disabled (`None`); non-zero values must be at least `min`.
    fn optional_duration(
        &mut self,
        key: &str,
        raw: Option<Spanned<DurationStr>>,
        default: Duration,
        min: Option<Duration>,
    ) -> Option<Duration> {
        let Some(raw) = raw else { return Some(default) };
        match parse_duration(&raw.get_ref().0) {
            Err(msg) => {
                self.err(raw.span(), format!("{key}: {msg}"));
                Some(default)
            }
            Ok(d) if d.is_zero() => None,
            Ok(d) => match min {
                Some(min) if d < min => {
                    self.err(
                        raw.span(),
                        format!(
                            "{key} must be \"0s\" (disabled) or at least {}, got {:?}",
                            humantime::format_duration(min),
                            raw.get_ref().0
                        ),
                    );
                    Some(default)
                }
                _ => Some(d),
            },
        }
    }

    fn size(
        &mut self,
        key: &str,
        raw: Option<Spanned<SizeValue>>,
        default: usize,
        min: usize,
        max: usize,
    ) -> usize {
        let Some(raw) = raw else { return default };
        let span = raw.span();
        let (parsed, shown) = match raw.into_inner() {
            SizeValue::Int(i) => {
                (u64::try_from(i).map_err(|_| format!("size must not be negative, got {i}")), i.to_string())
            }
            SizeValue::Str(s) => (parse_size(&s), format!("{s:?}")),
        };
        match parsed {
            Err(msg) => {
                self.err(span, format!("{key}: {msg}"));
                default
            }
            Ok(v) if v < min as u64 || v > max as u64 => {
                self.err(
                    span,
                    format!("{key} must be between {} and {}, got {shown}", show_size(min), show_size(max)),
                );
                default
            }
            Ok(v) => usize::try_from(v).unwrap_or(default),
        }
    }

    /// A path that is only used later (pid file, socket): must be non-empty; relative paths are resolved
    /// against the config file's directory.
    fn file_path(&mut self, key: &str, raw: Option<Spanned<String>>, default: &str) -> PathBuf {
        match raw {
            None => PathBuf::from(default),
            Some(p) if p.get_ref().is_empty() => {
                self.err(p.span(), format!("{key} must not be empty"));
                PathBuf::from(default)
            }
            Some(p) => self.resolve(p.get_ref()),
        }
    }

    /// A file that must exist, be a regular file and be readable now (relative paths resolved against the config's
    /// directory); `pem`: it must also contain a PEM block.
    fn readable_file(
        &mut self,
        table: &str,
        key: &str,
        raw: Option<Spanned<String>>,
        header: Range<usize>,
        pem: bool,
    ) -> Option<PathBuf> {
        let Some(raw) = raw else {
            self.err(header, format!("missing key `{key}` in {table}"));
            return None;
        };
        if raw.get_ref().is_empty() {
            self.err(raw.span(), format!("{key} must not be empty"));
            return None;
        }
        let path = self.resolve(raw.get_ref());
        let shown = if path.as_os_str() == raw.get_ref().as_str() {
            format!("{:?}", raw.get_ref())
        } else {
            format!("{:?} ({})", raw.get_ref(), path.display())
        };
        match self.source.is_file(&path) {
            Err(e) => {
                self.err(raw.span(), format!("cannot read {key} file {shown}: {e}"));
                return None;
            }
            Ok(false) => {
                self.err(raw.span(), format!("{key} {shown} is not a regular file"));
                return None;
            }
            Ok(true) => {}
        }
        match self.source.read(&path) {
            Err(e) => {
                self.err(raw.span(), format!("cannot read {key} file {shown}: {e}"));
                None
            }
            Ok(bytes) if pem && !contains(&bytes, b"-----BEGIN ") => {
                self.err(raw.span(), format!("{key} file {shown} is not PEM (no \"-----BEGIN\" line)"));
                None
            }
            Ok(_) => Some(path),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Value parsers (pure; each returns a message without position)
// ---------------------------------------------------------------------------------------------------------

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `ip:port`, `[v6]:port` or `localhost:port`.
fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Some(port) = s.strip_prefix("localhost:") {
        return match parse_port(port) {
            Some(port) => Ok(SocketAddr::from(([127, 0, 0, 1], port))),
            None => Err(format!("invalid port {port:?}: expected 0-65535")),
        };
    }
    Err("expected ip:port such as \"127.0.0.1:8080\", \"0.0.0.0:8080\" or \"[::1]:8080\"".to_owned())
}

/// Decimal digits only (no sign), 0..=65535.
fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Whether two listeners cannot both be bound: same port (not 0) and the same address, or a wildcard
/// address of the same family.
fn listen_conflict(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() != b.port() || a.port() == 0 {
        return false;
    }
    a.ip() == b.ip() || (a.is_ipv4() == b.is_ipv4() && (a.ip().is_unspecified() || b.ip().is_unspecified()))
}

/// `[A-Za-z_][A-Za-z0-9_]*`
fn is_env_name(name: &str) -> bool {
    let mut b = name.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// A CORS origin: `http(s)://host[:port]`, no path, no trailing `/`. Returned lowercase.
fn check_origin(o: &str) -> Result<String, String> {
    let fail = |why: &str| Err(format!("cors.allow_origins: invalid origin {o:?}: {why}"));
    let rest = match strip_prefix_ci(o, "https://").or_else(|| strip_prefix_ci(o, "http://")) {
        Some(r) => r,
        None => return fail("expected http://host[:port] or https://host[:port], or \"*\""),
    };
    if rest.is_empty() {
        return fail("missing host");
    }
    if rest.contains('/') {
        return fail("an origin has no path (and no trailing `/`)");
    }
    if !rest.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b)) {
        return fail("unexpected character");
    }
    Ok(o.to_ascii_lowercase())
}

fn check_route_name(name: &str) -> Result<(), String> {
    let ok_chars = name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if name.is_empty() || name.len() > 64 || !ok_chars {
        return Err(format!(
            "invalid route name {name:?}: use 1 to 64 characters from A-Z a-z 0-9 _ . - (it becomes a metrics label)"
        ));
    }
    Ok(())
}

/// A character allowed in a URL path segment (RFC 3986 `pchar` minus `%`, which is checked separately).
fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@".contains(c)
}

/// Checks RFC 3986 path characters and percent escapes in `path` (which starts with `/`).
fn check_path_chars(path: &str) -> Result<(), String> {
    let bytes = path.as_bytes();
    let mut i = 0;
    for c in path.chars() {
        // `i` tracks the byte index of `c`.
        if c == '%' {
            let hex = |j: usize| bytes.get(j).is_some_and(|b| b.is_ascii_hexdigit());
            if !(hex(i + 1) && hex(i + 2)) {
                return Err("`%` must start a percent escape such as %20".to_owned());
            }
        } else if c == '?' || c == '#' {
            return Err(format!("must not contain `{c}` (no query or fragment)"));
        } else if c != '/' && !is_path_char(c) {
            return Err(format!("character {c:?} is not allowed in a URL path (percent-encode it)"));
        }
        i += c.len_utf8();
    }
    Ok(())
}

fn check_path_prefix(p: &str) -> Result<(), String> {
    let fail = |why: String| Err(format!("invalid path_prefix {p:?}: {why}"));
    if !p.starts_with('/') {
        return fail("must start with `/`".to_owned());
    }
    if p.len() > 1 && p.ends_with('/') {
        return fail(format!("must not end with `/` (write {:?})", p.trim_end_matches('/')));
    }
    if p.contains("//") {
        return fail("must not contain an empty segment (`//`)".to_owned());
    }
    if p.split('/').any(|seg| seg == "." || seg == "..") {
        return fail("must not contain `.` or `..` segments".to_owned());
    }
    if let Err(why) = check_path_chars(p) {
        return fail(why);
    }
    Ok(())
}

/// `http(s)://host[:port][/path]`.
fn parse_upstream(url: &str) -> Result<Upstream, String> {
    let fail = |why: &str| Err(format!("invalid upstream {url:?}: {why}"));
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return fail("must not contain whitespace or control characters");
    }
    let (tls, rest) = if let Some(rest) = strip_prefix_ci(url, "http://") {
        (false, rest)
    } else if let Some(rest) = strip_prefix_ci(url, "https://") {
        (true, rest)
    } else {
        return fail("must start with http:// or https://");
    };
    if rest.contains('?') {
        return fail("must not contain a query (`?`); the client's query is forwarded");
    }
    if rest.contains('#') {
        return fail("must not contain a fragment (`#`)");
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return fail("must not contain userinfo (`user@`); credentials belong in request headers");
    }
    if authority.is_empty() {
        return fail("missing host");
    }
    let (host, port, v6) = if let Some(after) = authority.strip_prefix('[') {
        let Some(end) = after.find(']') else { return fail("unterminated IPv6 literal (missing `]`)") };
        let literal = &after[..end];
        if literal.parse::<std::net::Ipv6Addr>().is_err() {
            return fail(&format!("invalid IPv6 address {literal:?}"));
        }
        let tail = &after[end + 1..];
        let port = if tail.is_empty() {
            None
        } else if let Some(p) = tail.strip_prefix(':') {
            Some(p)
        } else {
            return fail("expected `:port` after the IPv6 literal");
        };
        (literal.to_ascii_lowercase(), port, true)
    } else {
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if host.is_empty() {
            return fail("missing host");
        }
        if host.contains(':') {
            return fail("IPv6 addresses must be in brackets, e.g. http://[::1]:8080");
        }
        let host_ok = host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
            && !host.starts_with('.')
            && !host.contains("..");
        if !host_ok {
            return fail(&format!("invalid host {host:?}"));
        }
        (host.to_ascii_lowercase(), port, false)
    };
    let default_port = if tls { 443 } else { 80 };
    let port = match port {
        None => default_port,
        Some(p) => match parse_port(p) {
            Some(p) if p != 0 => p,
            _ => return fail(&format!("invalid port {p:?}: expected 1-65535")),
        },
    };
    if !path.is_empty() {
        if let Err(why) = check_path_chars(path) {
            return fail(&format!("path {why}"));
        }
    }
    let base_path = path.trim_end_matches('/').to_owned();
    let bracketed = if v6 { format!("[{host}]") } else { host.clone() };
    let host_header = if port == default_port { bracketed } else { format!("{bracketed}:{port}") };
    Ok(Upstream { tls, host, port, base_path, host_header, ca_file: None })
}

fn strip_prefix_ci<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

fn parse_format(name: &str) -> Option<FormatChoice> {
    match name {
        "auto" => Some(FormatChoice::Auto),
        "passthrough" => Some(FormatChoice::Passthrough),
        other => Format::from_name(other).map(FormatChoice::Fixed),
    }
}

fn format_choice_name(f: FormatChoice) -> &'static str {
    match f {
        FormatChoice::Auto => "auto",
        FormatChoice::Passthrough => "passthrough",
        FormatChoice::Fixed(f) => f.name(),
    }
}

/// A humantime duration (`"15s"`, `"250ms"`, `"1h 30m"`), at most [`MAX_DURATION_VALUE`].
fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration; expected e.g. \"15s\", \"250ms\" or \"1h\"".to_owned());
    }
    if t.chars().all(|c| c.is_ascii_digit()) && t != "0" {
        return Err(format!("duration {s:?} has no unit; write e.g. \"{t}s\" or \"{t}ms\""));
    }
    match humantime::parse_duration(t) {
        Ok(d) if d > MAX_DURATION_VALUE => Err(format!("duration {s:?} is too long (at most 365 days)")),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("invalid duration {s:?} ({e}); expected e.g. \"15s\", \"250ms\" or \"1h\"")),
    }
}

/// `"512"`, `"512B"`, `"64KiB"`, `"10MB"`, `"1 GiB"` (units case-insensitive: B, KB, KiB, MB, MiB, GB, GiB).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits_end);
    let unit = unit.trim();
    if num.is_empty() {
        return Err(format!("invalid size {s:?}; expected bytes or e.g. \"64KiB\", \"1MiB\", \"10MB\""));
    }
    if unit.starts_with('.') || unit.starts_with(',') {
        return Err(format!("invalid size {s:?}: use a whole number (e.g. \"1536KiB\" for 1.5 MiB)"));
    }
    let mult = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" => KIB,
        "mb" => 1000 * 1000,
        "mib" => MIB,
        "gb" => 1000 * 1000 * 1000,
        "gib" => GIB,
        _ => {
            return Err(format!(
                "invalid size unit {unit:?} in {s:?}; expected one of B, KB, KiB, MB, MiB, GB, GiB"
            ))
        }
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// `1048576` -> `"1MiB"`, `1500` -> `"1500B"`.
fn show_size(n: usize) -> String {
    let n = n as u64;
    for (unit, name) in [(GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")] {
        if n >= unit && n.checked_rem(unit) == Some(0) {
            return format!("{}{name}", n / unit);
        }
    }
    format!("{n}B")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// A temp dir with a PEM-looking cert, key and CA, removed on drop.
    struct Dir(PathBuf);

    impl Dir {
        fn new(tag: &str) -> Dir {
            let dir = std::env::temp_dir().join(format!("ssegate-config-{tag}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            for f in ["cert.pem", "key.pem", "ca.pem"] {
                std::fs::write(dir.join(f), "-----BEGIN TEST-----\nAA==\n-----END TEST-----\n").unwrap();
            }
            std::fs::write(dir.join("not-pem.txt"), "hello").unwrap();
            Dir(dir)
        }
        fn file(&self) -> PathBuf {
            self.0.join("ssegate.toml")
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// `src` as `test.toml`, with no environment variable set and no file but the config (a [`MapSource`]).
    fn load(src: &str) -> Result<Config, ConfigErrors> {
        Config::from_str_with(Path::new("test.toml"), src, &MapSource::new())
    }

    fn errors(src: &str) -> Vec<String> {
        match load(src) {
            Ok(c) => panic!("expected errors, got {c:#?}"),
            Err(e) => e.0,
        }
    }

    /// The single error of `src`, which must start with `test.toml:{line}:{col}: ` and contain `needle`.
    #[track_caller]
    fn one_error(src: &str, line: usize, col: usize, needle: &str) {
        let errs = errors(src);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        let prefix = format!("test.toml:{line}:{col}: ");
        assert!(errs[0].starts_with(&prefix), "expected {prefix:?}, got {:?}", errs[0]);
        assert!(errs[0].contains(needle), "expected {needle:?} in {:?}", errs[0]);
    }

    const MINIMAL: &str = "[server]\nlisten = [\"127.0.0.1:8080\"]\n\n[[route]]\nname = \"r\"\npath_prefix = \"/r\"\nupstream = \"http://127.0.0.1:9000\"\n";

    /// `MINIMAL` with `extra` lines appended to the route (starting on line 8).
    fn route_with(extra: &str) -> String {
        format!("{MINIMAL}{extra}\n")
    }

    #[test]
    fn full_config_with_every_key() {
        let dir = Dir::new("full");
        let src = r#"
[server]
listen = ["127.0.0.1:8080", "[::1]:8080"]
threads = 4
shutdown_drain = "20s"
shutdown_retry = "2s"
write_timeout = "45s"
max_request_body = "2MiB"
pid_file = "run/ssegate.pid"
upgrade_sock = "/var/run/ssegate.sock"

[server.tls]
listen = "127.0.0.1:8443"
cert = "cert.pem"
key = "key.pem"

[admin]
listen = "localhost:9090"

[[route]]
name = "gemini"
path_prefix = "/gemini"
strip_prefix = false
upstream = "https://Generativelanguage.googleapis.com/v1beta/"
ca_file = "ca.pem"
format = "json-array"
heartbeat_interval = "250ms"
event_field = "type"
ids = true
done_event = { event = "end", data = "[DONE]" }
forward_comments = true
connect_timeout = "2s"
header_timeout = "1m"
idle_timeout = "90s"
max_duration = "0s"
max_event_size = 65536
on_decode_error = "close"

[[route]]
name = "local.v6"
path_prefix = "/"
upstream = "http://[::1]:11434"
format = "passthrough"
heartbeat_interval = "0s"
max_event_size = "64KiB"
"#;
        let path = dir.file();
        let c = Config::from_str_at(&path, src).unwrap();
        assert_eq!(c.path, path);
        let s = &c.server;
        assert_eq!(s.listen, vec!["127.0.0.1:8080".parse().unwrap(), "[::1]:8080".parse().unwrap()]);
        assert_eq!(s.threads, 4);
        assert_eq!(s.shutdown_drain, Duration::from_secs(20));
        assert_eq!(s.shutdown_retry, Duration::from_secs(2));
        assert_eq!(s.write_timeout, Duration::from_secs(45));
        assert_eq!(s.max_request_body, 2 * 1024 * 1024);
        assert_eq!(s.pid_file, dir.0.join("run/ssegate.pid"));
        assert_eq!(s.upgrade_sock, PathBuf::from("/var/run/ssegate.sock"));
        let tls = s.tls.as_ref().unwrap();
        assert_eq!(tls.listen, "127.0.0.1:8443".parse().unwrap());
        assert_eq!(tls.cert, dir.0.join("cert.pem"));
        assert_eq!(tls.key, dir.0.join("key.pem"));
        assert_eq!(c.admin.as_ref().unwrap().listen, "127.0.0.1:9090".parse().unwrap());

        assert_eq!(c.routes.len(), 2);
        let r = &c.routes[0];
        assert_eq!(r.name, "gemini");
        assert_eq!(r.path_prefix, "/gemini");
        assert!(!r.strip_prefix);
        assert_eq!(
            r.upstream,
            Upstream {
                tls: true,
                host: "generativelanguage.googleapis.com".into(),
                port: 443,
                base_path: "/v1beta".into(),
                host_header: "generativelanguage.googleapis.com".into(),
                ca_file: Some(dir.0.join("ca.pem")),
            }
        );
        assert_eq!(r.format, FormatChoice::Fixed(Format::JsonArray));
        assert_eq!(r.heartbeat_interval, Some(Duration::from_millis(250)));
        assert_eq!(r.event_field.as_deref(), Some("type"));
        assert!(r.ids);
        assert_eq!(r.done_event, Some(DoneEvent { event: Some("end".into()), data: "[DONE]".into() }));
        assert!(r.forward_comments);
        assert_eq!(r.connect_timeout, Duration::from_secs(2));
        assert_eq!(r.header_timeout, Duration::from_secs(60));
        assert_eq!(r.idle_timeout, Duration::from_secs(90));
        assert_eq!(r.max_duration, None);
        assert_eq!(r.max_event_size, 65536);
        assert_eq!(r.on_decode_error, DecodeErrorPolicy::Close);

        let r = &c.routes[1];
        assert_eq!(r.name, "local.v6");
        assert_eq!(r.path_prefix, "/");
        assert_eq!(r.upstream.host, "::1");
        assert_eq!(r.upstream.port, 11434);
        assert_eq!(r.upstream.host_header, "[::1]:11434");
        assert_eq!(r.upstream.base_path, "");
        assert!(!r.upstream.tls);
        assert_eq!(r.format, FormatChoice::Passthrough);
        assert_eq!(r.heartbeat_interval, None);
        assert_eq!(r.max_event_size, 64 * 1024);
    }

    #[test]
    fn defaults() {
        let c = load(MINIMAL).unwrap();
        let s = &c.server;
        assert_eq!(s.listen, vec!["127.0.0.1:8080".parse().unwrap()]);
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_THREADS);
        assert_eq!(s.threads, cpus);
        assert!(s.tls.is_none());
        assert_eq!(s.shutdown_drain, Duration::from_secs(10));
        assert_eq!(s.shutdown_retry, Duration::from_secs(1));
        assert_eq!(s.write_timeout, Duration::from_secs(30));
        assert_eq!(s.max_request_body, 10 * 1024 * 1024);
        assert_eq!(s.pid_file, PathBuf::from("/tmp/ssegate.pid"));
        assert_eq!(s.upgrade_sock, PathBuf::from("/tmp/ssegate_upgrade.sock"));
        assert!(c.admin.is_none());
        let r = &c.routes[0];
        assert!(r.strip_prefix);
        assert_eq!(
            r.upstream,
            Upstream {
                tls: false,
                host: "127.0.0.1".into(),
                port: 9000,
                base_path: String::new(),
                host_header: "127.0.0.1:9000".into(),
                ca_file: None,
            }
        );
        assert_eq!(r.format, FormatChoice::Auto);
        assert_eq!(r.heartbeat_interval, Some(Duration::from_secs(15)));
        assert_eq!(r.event_field, None);
        assert!(!r.ids);
        assert_eq!(r.done_event, None);
        assert!(!r.forward_comments);
        assert_eq!(r.connect_timeout, Duration::from_secs(5));
        assert_eq!(r.header_timeout, Duration::from_secs(300));
        assert_eq!(r.idle_timeout, Duration::from_secs(300));
        assert_eq!(r.max_duration, Some(Duration::from_secs(3600)));
        assert_eq!(r.max_event_size, 1024 * 1024);
        assert_eq!(r.on_decode_error, DecodeErrorPolicy::Skip);
    }

    #[test]
    fn single_listen_string_and_tls_only() {
        let dir = Dir::new("tlsonly");
        let src = "[server]\nlisten = \"0.0.0.0:80\"\n[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://h\"\n";
        let c = Config::from_str_at(&dir.file(), src).unwrap();
        assert_eq!(c.server.listen, vec!["0.0.0.0:80".parse().unwrap()]);
        assert_eq!(c.routes[0].upstream.port, 80);
        assert_eq!(c.routes[0].upstream.host_header, "h");

        let src = "[server.tls]\nlisten = \"127.0.0.1:8443\"\ncert = \"cert.pem\"\nkey = \"key.pem\"\n[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://h\"\n";
        let c = Config::from_str_at(&dir.file(), src).unwrap();
        assert!(c.server.listen.is_empty());
        assert!(c.server.tls.is_some());
    }

    #[test]
    fn syntax_and_serde_errors_have_positions() {
        one_error("[server\nlisten = []\n", 1, 8, "unclosed table");
        // Unknown key on line 7, column 1.
        let src = "[server]\nlisten = [\"127.0.0.1:8080\"]\n\n[[route]]\nname = \"r\"\npath_prefix = \"/r\"\nbogus = 1\n";
        one_error(src, 7, 1, "unknown field `bogus`");
        one_error("[servr]\n", 1, 2, "unknown field `servr`");
        one_error(&route_with("ids = \"yes\""), 8, 7, "invalid type: string \"yes\", expected a boolean");
        one_error(&route_with("max_event_size = 1.5"), 8, 18, "expected a size");
        one_error(&route_with("idle_timeout = 30"), 8, 16, "expected a duration string");
        one_error("[server]\nlisten = [1]\n", 2, 11, "expected a string");
        one_error("[server]\nlisten = 1\n", 2, 10, "address string");
        one_error(&route_with("done_event = { data = \"x\", evnt = \"e\" }"), 8, 28, "unknown field `evnt`");
        one_error(&route_with("name = \"again\""), 8, 1, "duplicate key");
    }

    #[test]
    fn missing_things() {
        one_error(
            "[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://h\"\n",
            1,
            1,
            "missing [server] table",
        );
        one_error("[server]\nlisten = [\"127.0.0.1:1\"]\n", 1, 1, "no routes");
        one_error(
            "[server]\nlisten = []\n[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://h\"\n",
            1,
            1,
            "no listener",
        );
        let errs = errors("[server]\nlisten = [\"127.0.0.1:1\"]\n\n[[route]]\nformat = \"sse\"\n");
        assert_eq!(
            errs,
            vec![
                "test.toml:4:1: missing key `name` in [[route]]",
                "test.toml:4:1: missing key `path_prefix` in [[route]]",
                "test.toml:4:1: missing key `upstream` in [[route]]",
            ]
        );
        one_error("[server]\nlisten = [\"127.0.0.1:1\"]\n[admin]\n[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://h\"\n", 3, 1, "missing key `listen` in [admin]");
        one_error(&route_with("done_event = { event = \"end\" }"), 8, 14, "missing key `data` in done_event");
    }

    #[test]
    fn listen_errors() {
        one_error(
            "[server]\nlisten = [\"127.0.0.1\"]\n[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://h\"\n",
            2,
            11,
            "invalid server.listen address \"127.0.0.1\": expected ip:port",
        );
        one_error(
            "[server]\nlisten = [\"localhost:99999\"]\n[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://h\"\n",
            2,
            11,
            "invalid port \"99999\"",
        );
        let c = load("[server]\nlisten = [\"localhost:8080\"]\n[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://h\"\n").unwrap();
        assert_eq!(c.server.listen, vec!["127.0.0.1:8080".parse().unwrap()]);
        // Duplicates: within server.listen, and admin vs server.
        one_error(
            "[server]\nlisten = [\"127.0.0.1:8080\", \"127.0.0.1:8080\"]\n[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://h\"\n",
            2,
            29,
            "listen address 127.0.0.1:8080 is already used by server.listen 127.0.0.1:8080 (line 2)",
        );
        one_error(
            "[server]\nlisten = [\"0.0.0.0:8080\"]\n[admin]\nlisten = \"127.0.0.1:8080\"\n[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://h\"\n",
            4,
            10,
            "overlaps server.listen 0.0.0.0:8080 (line 2)",
        );
        // Port 0 (OS-chosen) never conflicts; different families do not either.
        load("[server]\nlisten = [\"127.0.0.1:0\", \"[::]:8080\", \"0.0.0.0:8081\"]\n[admin]\nlisten = \"127.0.0.1:0\"\n[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://h\"\n").unwrap();
    }

    #[test]
    fn tls_errors() {
        let dir = Dir::new("tlserr");
        let src = "[server]\n[server.tls]\nlisten = \"127.0.0.1:8443\"\ncert = \"missing.pem\"\nkey = \"not-pem.txt\"\n[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://h\"\n";
        let errs = Config::from_str_at(&dir.file(), src).unwrap_err().0;
        assert_eq!(errs.len(), 2, "{errs:#?}");
        let f = dir.file().display().to_string();
        assert!(
            errs[0].starts_with(&format!("{f}:4:8: cannot read cert file \"missing.pem\"")),
            "{}",
            errs[0]
        );
        assert!(errs[1].starts_with(&format!("{f}:5:7: key file \"not-pem.txt\"")), "{}", errs[1]);
        assert!(errs[1].contains("is not PEM"), "{}", errs[1]);

        let src = "[server]\n[server.tls]\nlisten = \"127.0.0.1:8443\"\n[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://h\"\n";
        let errs = Config::from_str_at(&dir.file(), src).unwrap_err().0;
        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert!(errs[0].ends_with(":2:1: missing key `cert` in [server.tls]"), "{}", errs[0]);
        assert!(errs[1].ends_with(":2:1: missing key `key` in [server.tls]"), "{}", errs[1]);

        // A directory is not a file.
        let src = format!("[server]\n[server.tls]\nlisten = \"127.0.0.1:8443\"\ncert = {:?}\nkey = \"key.pem\"\n[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://h\"\n", dir.0.display().to_string());
        let errs = Config::from_str_at(&dir.file(), &src).unwrap_err().0;
        assert!(errs[0].contains("is not a regular file"), "{errs:#?}");
    }

    #[test]
    fn route_name_and_prefix_rules() {
        one_error(
            &route_with("").replace("name = \"r\"", "name = \"a b\""),
            5,
            8,
            "invalid route name \"a b\"",
        );
        one_error(&route_with("").replace("name = \"r\"", "name = \"\""), 5, 8, "invalid route name");
        let long = "x".repeat(65);
        one_error(&route_with("").replace("name = \"r\"", &format!("name = \"{long}\"")), 5, 8, "1 to 64");
        load(&route_with("").replace("name = \"r\"", &format!("name = \"{}\"", "A-z_0.9".repeat(9))))
            .unwrap();

        for (bad, why) in [
            ("r", "must start with `/`"),
            ("/r/", "must not end with `/` (write \"/r\")"),
            ("/a//b", "empty segment"),
            ("/a/../b", "`..`"),
            ("/a?x", "no query"),
            ("/a b", "not allowed"),
            ("/a%2", "percent escape"),
        ] {
            let src = route_with("").replace("path_prefix = \"/r\"", &format!("path_prefix = {bad:?}"));
            one_error(&src, 6, 15, why);
        }
        load(&route_with("").replace("path_prefix = \"/r\"", "path_prefix = \"/v1/chat%20x/@me:1\""))
            .unwrap();

        let src =
            format!("{MINIMAL}\n[[route]]\nname = \"r\"\npath_prefix = \"/r\"\nupstream = \"http://h\"\n");
        let errs = errors(&src);
        assert_eq!(
            errs,
            vec![
                "test.toml:10:8: duplicate route name \"r\" (first used on line 5)",
                "test.toml:11:15: duplicate path_prefix \"/r\": route \"r\" (line 6) already uses it",
            ]
        );
    }

    #[test]
    fn upstream_rules() {
        let up = |u: &str| parse_upstream(u);
        let ok = up("https://api.openai.com").unwrap();
        assert_eq!(
            (ok.tls, ok.host.as_str(), ok.port, ok.host_header.as_str()),
            (true, "api.openai.com", 443, "api.openai.com")
        );
        let ok = up("https://h:8443/a/b/").unwrap();
        assert_eq!((ok.port, ok.base_path.as_str(), ok.host_header.as_str()), (8443, "/a/b", "h:8443"));
        let ok = up("http://h:80/").unwrap();
        assert_eq!((ok.base_path.as_str(), ok.host_header.as_str()), ("", "h"));
        let ok = up("HTTP://[::1]").unwrap();
        assert_eq!((ok.host.as_str(), ok.port, ok.host_header.as_str()), ("::1", 80, "[::1]"));
        let ok = up("http://[2001:DB8::1]:8080/x").unwrap();
        assert_eq!((ok.host.as_str(), ok.host_header.as_str()), ("2001:db8::1", "[2001:db8::1]:8080"));

        for (bad, why) in [
            ("ftp://h", "must start with http:// or https://"),
            ("h:80", "must start with http://"),
            ("http://", "missing host"),
            ("http:///x", "missing host"),
            ("http://:80", "missing host"),
            ("http://h?x=1", "query"),
            ("http://h/#f", "fragment"),
            ("http://u:p@h", "userinfo"),
            ("http://h:0", "invalid port \"0\""),
            ("http://h:65536", "invalid port"),
            ("http://h:+80", "invalid port"),
            ("http://h:", "invalid port \"\""),
            ("http://[::1", "unterminated IPv6"),
            ("http://[::g]:80", "invalid IPv6"),
            ("http://[::1]x", "expected `:port`"),
            ("http://::1:80", "brackets"),
            ("http://h h", "whitespace"),
            ("http://h_!x", "invalid host"),
            ("http://h/a b", "whitespace"),
            ("http://h/a\"b", "not allowed"),
            ("http://ü.de", "invalid host"),
        ] {
            let err = up(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }

        one_error(
            &route_with("").replace("http://127.0.0.1:9000", "htp://x"),
            7,
            12,
            "invalid upstream \"htp://x\"",
        );
        one_error(
            &route_with("ca_file = \"ca.pem\""),
            8,
            11,
            "ca_file is only used with an https:// upstream",
        );
        let dir = Dir::new("ca");
        let src = route_with("ca_file = \"nope.pem\"").replace("http://", "https://");
        let errs = Config::from_str_at(&dir.file(), &src).unwrap_err().0;
        assert_eq!(errs.len(), 1);
        assert!(errs[0].contains(":8:11: cannot read ca_file file \"nope.pem\""), "{errs:#?}");
        let src = route_with("ca_file = \"ca.pem\"").replace("http://", "https://");
        let c = Config::from_str_at(&dir.file(), &src).unwrap();
        assert_eq!(c.routes[0].upstream.ca_file, Some(dir.0.join("ca.pem")));
    }

    #[test]
    fn format_and_event_field() {
        for name in [
            "auto",
            "passthrough",
            "sse",
            "ndjson",
            "json-stream",
            "json-seq",
            "json-array",
            "lines",
            "chunks",
        ] {
            let c = load(&route_with(&format!("format = {name:?}"))).unwrap();
            assert_eq!(format_choice_name(c.routes[0].format), name);
        }
        one_error(
            &route_with("format = \"ndjsn\""),
            8,
            10,
            "unknown format \"ndjsn\"; expected one of auto, passthrough, sse, ndjson, json-stream, json-seq, json-array, lines, chunks",
        );
        for ok in ["auto", "ndjson", "json-stream", "json-seq", "json-array"] {
            load(&route_with(&format!("format = {ok:?}\nevent_field = \"type\""))).unwrap();
        }
        for bad in ["sse", "lines", "chunks", "passthrough"] {
            one_error(
                &route_with(&format!("format = {bad:?}\nevent_field = \"type\"")),
                9,
                15,
                "event_field only applies to JSON formats",
            );
        }
        one_error(&route_with("event_field = \"\""), 8, 15, "must not be empty");
        one_error(
            &route_with("on_decode_error = \"ignore\""),
            8,
            19,
            "unknown on_decode_error \"ignore\"; expected skip or close",
        );
        one_error(&route_with("done_event = { event = \"a\\nb\", data = \"x\" }"), 8, 24, "CR, LF or NUL");
        let c = load(&route_with("done_event = { data = \"[DONE]\" }")).unwrap();
        assert_eq!(c.routes[0].done_event, Some(DoneEvent { event: None, data: "[DONE]".into() }));
    }

    #[test]
    fn duration_rules() {
        one_error(
            &route_with("heartbeat_interval = \"5ms\""),
            8,
            22,
            "heartbeat_interval must be \"0s\" (disabled) or at least 10ms, got \"5ms\"",
        );
        let c = load(&route_with("heartbeat_interval = \"10ms\"")).unwrap();
        assert_eq!(c.routes[0].heartbeat_interval, Some(Duration::from_millis(10)));
        one_error(&route_with("connect_timeout = \"0s\""), 8, 19, "connect_timeout must be greater than 0");
        one_error(&route_with("header_timeout = \"0ms\""), 8, 18, "header_timeout must be greater than 0");
        one_error(&route_with("idle_timeout = \"fast\""), 8, 16, "idle_timeout: invalid duration \"fast\"");
        one_error(&route_with("idle_timeout = \"15\""), 8, 16, "has no unit; write e.g. \"15s\"");
        one_error(&route_with("max_duration = \"400days\""), 8, 16, "too long");
        let c = load(&route_with("max_duration = \"1h 30m\"")).unwrap();
        assert_eq!(c.routes[0].max_duration, Some(Duration::from_secs(5400)));

        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration(" 250ms "), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("365days"), Ok(MAX_DURATION_VALUE));
        for bad in ["", "  ", "-1s", "1x", "s", "99999999999999999999999y", "1.5.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        let src = "[server]\nlisten = [\"127.0.0.1:1\"]\nshutdown_drain = \"0s\"\nshutdown_retry = \"0s\"\nwrite_timeout = \"0s\"\n[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://h\"\n";
        one_error(src, 5, 17, "write_timeout must be greater than 0");
    }

    #[test]
    fn size_rules() {
        assert_eq!(parse_size("512B"), Ok(512));
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("64kib"), Ok(65536));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("2 KB"), Ok(2000));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("3GB"), Ok(3_000_000_000));
        for bad in
            ["", "KiB", "1.5MiB", "1 TiB", "-1", "10 M", "99999999999999999999", "18446744073709551615GiB"]
        {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
        assert!(parse_size("1.5MiB").unwrap_err().contains("whole number"));
        assert!(parse_size("18446744073709551615GiB").unwrap_err().contains("too large"));

        load(&route_with("max_event_size = \"1KiB\"")).unwrap();
        load(&route_with("max_event_size = \"256MiB\"")).unwrap();
        one_error(
            &route_with("max_event_size = 1023"),
            8,
            18,
            "max_event_size must be between 1KiB and 256MiB, got 1023",
        );
        one_error(&route_with("max_event_size = \"257MiB\""), 8, 18, "got \"257MiB\"");
        one_error(&route_with("max_event_size = -5"), 8, 18, "must not be negative");
        one_error(&route_with("max_event_size = \"lots\""), 8, 18, "max_event_size: invalid size \"lots\"");
        let src = MINIMAL.replace("]\n\n", "]\nmax_request_body = \"2GiB\"\n\n");
        one_error(&src, 3, 20, "max_request_body must be between 0B and 1GiB");
        assert_eq!(show_size(1500), "1500B");
        assert_eq!(show_size(0), "0B");
    }

    #[test]
    fn threads_rules() {
        let src = |t: &str| MINIMAL.replace("]\n\n", &format!("]\nthreads = {t}\n\n"));
        assert_eq!(load(&src("1")).unwrap().server.threads, 1);
        assert_eq!(load(&src("1024")).unwrap().server.threads, 1024);
        one_error(&src("0"), 3, 11, "threads must be between 1 and 1024, got 0");
        one_error(&src("1025"), 3, 11, "got 1025");
        one_error(&src("-3"), 3, 11, "got -3");
    }

    #[test]
    fn collects_every_error_in_file_order() {
        let src = r#"[server]
listen = ["nope", "127.0.0.1:8080"]
threads = 0

[admin]
listen = "127.0.0.1:8080"

[[route]]
name = "bad name"
path_prefix = "x"
upstream = "ftp://h"
format = "sse"
event_field = "type"
heartbeat_interval = "1ms"
max_event_size = "1B"
on_decode_error = "maybe"
"#;
        let errs = errors(src);
        let positions: Vec<&str> = errs.iter().map(|e| e.split(':').nth(1).unwrap_or("")).collect();
        assert_eq!(positions, ["2", "3", "6", "9", "10", "11", "13", "14", "15", "16"], "{errs:#?}");
        assert!(errs.iter().all(|e| e.starts_with("test.toml:")));
        let display = ConfigErrors(errs.clone()).to_string();
        assert_eq!(display.lines().count(), errs.len());
    }

    #[test]
    fn columns_count_characters_and_crlf_works() {
        // "ä" is two bytes; the column counts it once.
        let src = "# ä\r\n[server]\r\nlisten = [\"127.0.0.1:8080\"]\r\n[[route]]\r\nname = \"r\"\r\npath_prefix = \"/r\"\r\nupstream = \"http://h\"\r\ndone_event = { data = \"ä\", event = \"\" }\r\n";
        one_error(src, 8, 36, "done_event.event must not be empty");
        let cx = Cx::new(Path::new("x"), "aä\nb", &System);
        assert_eq!(cx.line_col(0), (1, 1));
        assert_eq!(cx.line_col(2), (1, 2)); // inside "ä": floored to its start
        assert_eq!(cx.line_col(3), (1, 3));
        assert_eq!(cx.line_col(4), (2, 1));
        assert_eq!(cx.line_col(99), (2, 2));
    }

    #[test]
    fn unreadable_config_file() {
        let err = Config::load(Path::new("/nonexistent/ssegate.toml")).unwrap_err();
        assert_eq!(err.0.len(), 1);
        assert!(err.0[0].starts_with("/nonexistent/ssegate.toml: cannot read config file"), "{err}");
    }

    #[test]
    fn never_panics_on_garbage() {
        let inputs = [
            "",
            "\u{feff}",
            "[[server]]",
            "server = 1",
            "route = 1",
            "route = []",
            "[[route]]\n[[route]]",
            "[server]\nlisten = [[]]",
            "[server]\nthreads = 99999999999999999999",
            "[server]\nmax_request_body = 9223372036854775807",
            "[server]\ntls = 5",
            "[[route]]\ndone_event = 1",
            "[[route]]\nupstream = \"http://[\"",
            "[[route]]\nupstream = \"https://\u{1F600}\"",
            "[[route]]\npath_prefix = \"/\u{1F600}\"",
            "\u{0}\u{1}",
            "a = \"\\uD800\"",
        ];
        for src in inputs {
            let _ = load(src);
        }
        // Every prefix of a full config.
        let full = route_with(
            "format = \"ndjson\"\nevent_field = \"t\"\ndone_event = { event = \"e\", data = \"d\" }",
        );
        for i in 0..=full.len() {
            if full.is_char_boundary(i) {
                let _ = load(&full[..i]);
            }
        }
    }

    #[test]
    fn server_limits() {
        let c = load(MINIMAL).unwrap();
        assert_eq!(c.server.max_header_size, 32 * 1024);
        assert_eq!(c.server.request_header_timeout, Duration::from_secs(10));
        assert_eq!(c.server.request_body_timeout, Duration::from_secs(30));
        let r = &c.routes[0];
        assert!(r.auth.is_none() && r.upstream_headers.is_empty() && r.cors.is_none());
        assert_eq!((r.max_streams, r.retry_after), (0, Duration::from_secs(1)));
        let src = MINIMAL.replace(
            "[server]\n",
            "[server]\nmax_header_size = \"8KiB\"\nrequest_header_timeout = \"2s\"\nrequest_body_timeout = \"3s\"\n",
        );
        let c = load(&src).unwrap();
        assert_eq!(c.server.max_header_size, 8 * 1024);
        assert_eq!(c.server.request_header_timeout, Duration::from_secs(2));
        assert_eq!(c.server.request_body_timeout, Duration::from_secs(3));
        let bad = MINIMAL.replace("[server]\n", "[server]\nmax_header_size = \"2MiB\"\n");
        assert!(errors(&bad)[0].contains("max_header_size must be between 1KiB and 512KiB"));
        one_error(&route_with("max_streams = -1"), 8, 15, "max_streams must be between 0");
        let c = load(&route_with("max_streams = 3\nretry_after = \"2500ms\"")).unwrap();
        assert_eq!((c.routes[0].max_streams, c.routes[0].retry_after), (3, Duration::from_millis(2500)));
    }

    #[test]
    fn auth_keys_from_env_and_files_never_print_the_keys() {
        // Relative key files are resolved against the config file's directory.
        let file = Path::new("/etc/ssegate/ssegate.toml");
        let source = MapSource::new()
            .with_env("SSEGATE_T_AUTH_KEYS", "env-key-1, env-key-2\nenv-key-3")
            .with_env("SSEGATE_T_AUTH_BLANK", " , \n")
            .with_file("/etc/ssegate/keys.txt", "# comment\nfile-key-1\n\nfile-key-2\n")
            .with_file("/etc/ssegate/empty.txt", "# nothing\n");
        let src = format!(
            "{MINIMAL}auth = {{ keys_env = [\"SSEGATE_T_AUTH_KEYS\"], keys_file = [\"keys.txt\"] }}\n"
        );
        let c = Config::from_str_with(file, &src, &source).unwrap();
        let keys = c.routes[0].auth.as_ref().unwrap();
        assert_eq!(keys.len(), 5);
        assert!(keys.matches(b"env-key-2") && keys.matches(b"file-key-2") && !keys.matches(b"comment"));
        let debug = format!("{c:?}");
        assert!(!debug.contains("env-key") && !debug.contains("file-key"), "{debug}");

        // The [route.auth] table form, and every error naming the variable / file only.
        let src = format!(
            "{MINIMAL}[route.auth]\nkeys_env = [\"SSEGATE_T_AUTH_MISSING\", \"SSEGATE_T_AUTH_BLANK\", \"1X\"]\n\
             keys_file = [\"nope.txt\", \"empty.txt\"]\n"
        );
        let errs = Config::from_str_with(file, &src, &source).unwrap_err().0;
        assert_eq!(errs.len(), 5, "{errs:#?}");
        assert!(errs[0].contains("environment variable SSEGATE_T_AUTH_MISSING is not set"), "{errs:#?}");
        assert!(errs[1].contains("SSEGATE_T_AUTH_BLANK holds no key"), "{errs:#?}");
        assert!(errs[2].contains("not an environment variable name"), "{errs:#?}");
        assert!(errs[3].contains("nope.txt"), "{errs:#?}");
        assert!(errs[4].contains("empty.txt") && errs[4].contains("holds no key"), "{errs:#?}");
        one_error(&format!("{MINIMAL}auth = {{}}"), 8, 8, "auth needs keys_env and/or keys_file");
        one_error(&format!("{MINIMAL}auth = {{ keys = [\"k\"] }}"), 8, 10, "unknown field `keys`");
    }
    #[test]
    fn upstream_headers_resolve_references_and_never_print_them() {
        let file = Path::new("/etc/ssegate/ssegate.toml");
        let source = MapSource::new()
            .with_env("SSEGATE_T_HDR_KEY", "sk-secret-env")
            .with_file("/etc/ssegate/org", "org-secret-file\n")
            .with_file("/etc/ssegate/bad", "line1\nline2\n");
        let src = format!(
            "{MINIMAL}upstream_headers = {{ \"Authorization\" = \"Bearer ${{env:SSEGATE_T_HDR_KEY}}\", \
             \"x-org\" = \"${{file:org}}\", \"x-plain\" = \"v\" }}\n"
        );
        let c = Config::from_str_with(file, &src, &source).unwrap();
        let h = &c.routes[0].upstream_headers;
        let got: Vec<_> = h.iter().map(|h| (h.name.as_str(), h.value.to_str().unwrap())).collect();
        assert_eq!(
            got,
            [("authorization", "Bearer sk-secret-env"), ("x-org", "org-secret-file"), ("x-plain", "v")]
        );
        assert!(h.iter().all(|h| h.value.is_sensitive()));
        let debug = format!("{c:?}");
        assert!(!debug.contains("secret"), "{debug}");

        let src = format!(
            "{MINIMAL}[route.upstream_headers]\n\"A\" = \"${{env:SSEGATE_T_HDR_UNSET}}\"\n\
             \"B\" = \"${{file:missing}}\"\n\"C\" = \"${{vault:x}}\"\n\"D\" = \"${{env:SSEGATE_T_HDR_KEY\"\n\
             \"E\" = \"${{file:bad}}\"\n\"Host\" = \"x\"\n\"bad name\" = \"x\"\n\"x-dup\" = \"1\"\n\"X-Dup\" = \"2\"\n"
        );
        let errs = Config::from_str_with(file, &src, &source).unwrap_err().0;
        let all = errs.join("\n");
        assert!(!all.contains("sk-secret-env"), "{all}");
        for needle in [
            "upstream_headers.A: environment variable SSEGATE_T_HDR_UNSET is not set",
            "upstream_headers.B: cannot read",
            "upstream_headers.C: unknown reference",
            "upstream_headers.D: unterminated",
            "upstream_headers.E: the value (after resolving references) is not a valid header value",
            "\"Host\" is set by the gateway",
            "\"bad name\" is not a valid header name",
            "given twice",
        ] {
            assert!(all.contains(needle), "{needle:?} not in\n{all}");
        }
        assert_eq!(errs.len(), 8, "{all}");
    }
    #[test]
    fn cors_rules() {
        let c = load(&route_with(
            "cors = { allow_origins = [\"https://App.example\", \"http://localhost:3000\"] }",
        ))
        .unwrap();
        let cors = c.routes[0].cors.as_ref().unwrap();
        assert_eq!(
            cors.origins.as_deref(),
            Some(&["https://app.example".to_string(), "http://localhost:3000".to_string()][..])
        );
        assert_eq!(cors.allow_headers, ["content-type", "authorization", "x-api-key", "last-event-id"]);
        assert_eq!(cors.allow_methods, ["GET", "POST", "OPTIONS"]);
        assert_eq!(cors.max_age, Duration::from_secs(600));
        assert_eq!(cors.max_age_value, "600");
        assert_eq!(cors.allow_methods_value, "GET, POST, OPTIONS");
        assert!(!cors.allow_credentials);
        let c = load(&route_with(
            "[route.cors]\nallow_origins = [\"*\"]\nallow_headers = [\"X-Trace\"]\nallow_methods = [\"GET\"]\nmax_age = \"1h\"",
        ))
        .unwrap();
        let cors = c.routes[0].cors.as_ref().unwrap();
        assert_eq!((cors.origins.is_none(), cors.max_age_value.to_str().unwrap()), (true, "3600"));
        assert_eq!(cors.allow_headers, ["x-trace"]);
        one_error(
            &route_with("cors = { allow_origins = [\"*\"], allow_credentials = true }"),
            8,
            26,
            "cannot be combined with allow_credentials = true",
        );
        one_error(&route_with("cors = { allow_origins = [] }"), 8, 26, "must not be empty");
        one_error(&route_with("cors = { max_age = \"1m\" }"), 8, 8, "missing key `allow_origins`");
        one_error(&route_with("cors = { allow_origins = [\"https://a.example/\"] }"), 8, 27, "no path");
        one_error(&route_with("cors = { allow_origins = [\"a.example\"] }"), 8, 27, "expected http://host");
        one_error(&route_with("cors = { allow_origins = [\"*\", \"https://a.b\"] }"), 8, 26, "only entry");
        one_error(
            &route_with("cors = { allow_origins = [\"*\"], allow_methods = [\"G T\"] }"),
            8,
            50,
            "not an HTTP method",
        );
    }

    #[test]
    fn map_source_serves_the_config_file_and_every_read() {
        let source = MapSource::new()
            .with_file("/cfg/ssegate.toml", MINIMAL)
            .with_file("/cfg/cert.pem", "-----BEGIN TEST-----\n")
            .with_file("/cfg/sub/x", "");
        let c = Config::load_with(Path::new("/cfg/ssegate.toml"), &source).unwrap();
        assert_eq!((c.path.as_path(), c.routes.len()), (Path::new("/cfg/ssegate.toml"), 1));
        let err = Config::load_with(Path::new("/cfg/other.toml"), &source).unwrap_err();
        assert_eq!(err.0, ["/cfg/other.toml: cannot read config file: entity not found"]);

        // A path with files under it is a directory, not a regular file.
        let tls =
            "\n[server.tls]\nlisten = \"127.0.0.1:8443\"\ncert = \"cert.pem\"\nkey = \"sub\"\n\n[[route]]";
        let src = MINIMAL.replace("\n\n[[route]]", tls);
        let errs = Config::from_str_with(Path::new("/cfg/ssegate.toml"), &src, &source).unwrap_err().0;
        assert_eq!(errs, ["/cfg/ssegate.toml:6:7: key \"sub\" (/cfg/sub) is not a regular file"]);
    }

    #[test]
    fn map_source_and_system_give_the_same_messages() {
        let dir = Dir::new("utf8");
        let bad = b"\xff\xfe key\n".to_vec();
        std::fs::write(dir.0.join("bad.txt"), &bad).unwrap();
        let src = format!("{MINIMAL}auth = {{ keys_file = [\"bad.txt\", \"missing.txt\"] }}\n");
        let real = Config::from_str_at(&dir.file(), &src).unwrap_err().0;
        assert_eq!(real.len(), 2, "{real:#?}");
        assert!(real[0].ends_with("bad.txt: stream did not contain valid UTF-8"), "{real:#?}");
        let mapped = MapSource::new().with_file(dir.0.join("bad.txt"), bad);
        let mapped = Config::from_str_with(&dir.file(), &src, &mapped).unwrap_err().0;
        assert_eq!(real[0], mapped[0]);
    }

    #[test]
    fn system_source_reads_the_process_environment() {
        // Any variable this process already has that fits in a header value (tests never set one).
        let Some((name, value)) = std::env::vars().find(|(k, v)| {
            k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !v.is_empty()
                && !v.contains("${")
                && http::HeaderValue::from_str(v).is_ok()
        }) else {
            return;
        };
        let src = format!("{MINIMAL}upstream_headers = {{ \"x-v\" = \"${{env:{name}}}\" }}\n");
        let c = Config::from_str_at(Path::new("test.toml"), &src).unwrap();
        assert_eq!(c.routes[0].upstream_headers[0].value.to_str().unwrap(), value);
        // The map source does not see it.
        let errs = errors(&src);
        assert_eq!(
            errs,
            [format!("test.toml:8:30: upstream_headers.x-v: environment variable {name} is not set")]
        );
    }

    #[test]
    fn every_shipped_config_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        let mut count = 0;
        let mut failures = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                count += 1;
                if let Err(e) = Config::load(&path) {
                    failures.push(e.to_string());
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        assert!(count >= 6, "expected at least 6 files in {}, found {count}", dir.display());
    }
}
