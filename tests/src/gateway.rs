//! Starting the real `ssegate` binary.
//!
//! A gateway is described by a typed [`GatewaySpec`]: routes ([`RouteSpec`]), `[server]` keys
//! ([`ServerSpec`]), an optional TLS listener, extra plaintext listeners, environment variables, files in
//! the gateway's temp dir and command line arguments. [`GatewaySpec::start`] reserves `127.0.0.1` ports,
//! renders the TOML (every string properly escaped, see [`toml_string`]), starts `ssegate run` and waits for
//! its listeners. A new config key is one builder method (or [`RouteSpec::set`] / [`ServerSpec::set`] for a
//! one-off); [`RouteSpec::raw`] / [`ServerSpec::raw`] add a verbatim line for a test that needs odd TOML, and
//! [`GatewaySpec::config_text`] replaces the whole rendered text for a test whose subject is the config text.
//!
//! The binary is the one `cargo build -p ssegate` produces for this workspace, rebuilt once per test
//! process (see [`binary`]) so a stale binary is never tested.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::tls::TestCert;

// ---- TOML values ------------------------------------------------------------------------------------

/// A TOML value of a config key, rendered by the harness.
#[derive(Debug, Clone, PartialEq)]
pub enum Toml {
    /// A basic string, escaped by [`toml_string`].
    Str(String),
    Int(i64),
    Bool(bool),
    Array(Vec<Toml>),
    /// An inline table; keys in order.
    Table(Vec<(String, Toml)>),
    /// The path of a file in the gateway's temp dir (see [`GatewaySpec::file`]), rendered as a string.
    InDir(String),
    /// Verbatim TOML (for a value the harness cannot express, e.g. an invalid one).
    Raw(String),
}

impl Toml {
    /// An array of strings.
    pub fn strs<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Toml {
        Toml::Array(items.into_iter().map(|s| Toml::Str(s.as_ref().to_string())).collect())
    }

    /// An inline table of `pairs`.
    pub fn table<K: Into<String>, V: Into<Toml>>(pairs: impl IntoIterator<Item = (K, V)>) -> Toml {
        Toml::Table(pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }

    fn render(&self, dir: &Path) -> String {
        match self {
            Toml::Str(s) => toml_string(s),
            Toml::Int(i) => i.to_string(),
            Toml::Bool(b) => b.to_string(),
            Toml::Array(items) => {
                format!("[{}]", items.iter().map(|v| v.render(dir)).collect::<Vec<_>>().join(", "))
            }
            Toml::Table(pairs) => {
                let inner: Vec<String> =
                    pairs.iter().map(|(k, v)| format!("{} = {}", toml_key(k), v.render(dir))).collect();
                if inner.is_empty() {
                    "{}".to_string()
                } else {
                    format!("{{ {} }}", inner.join(", "))
                }
            }
            Toml::InDir(name) => toml_string(&dir.join(name).display().to_string()),
            Toml::Raw(text) => text.clone(),
        }
    }
}

impl From<&str> for Toml {
    fn from(s: &str) -> Toml {
        Toml::Str(s.to_string())
    }
}

impl From<String> for Toml {
    fn from(s: String) -> Toml {
        Toml::Str(s)
    }
}

impl From<&String> for Toml {
    fn from(s: &String) -> Toml {
        Toml::Str(s.clone())
    }
}

impl From<i64> for Toml {
    fn from(i: i64) -> Toml {
        Toml::Int(i)
    }
}

impl From<bool> for Toml {
    fn from(b: bool) -> Toml {
        Toml::Bool(b)
    }
}

/// `s` as a TOML basic string: quoted, with `"`, `\` and every control character escaped.
pub fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A key: bare when it can be, else a quoted string.
fn toml_key(k: &str) -> String {
    if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        k.to_string()
    } else {
        toml_string(k)
    }
}

/// Key-value lines of one table, then verbatim lines.
#[derive(Debug, Clone, Default)]
struct Keys {
    keys: Vec<(String, Toml)>,
    raw: Vec<String>,
}

impl Keys {
    fn set(&mut self, key: &str, value: Toml) {
        if let Some(slot) = self.keys.iter_mut().find(|(k, _)| k == key) {
            slot.1 = value;
        } else {
            self.keys.push((key.to_string(), value));
        }
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut Toml> {
        self.keys.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn render(&self, out: &mut String, dir: &Path) {
        for (k, v) in &self.keys {
            let _ = writeln!(out, "{} = {}", toml_key(k), v.render(dir));
        }
        for line in &self.raw {
            let _ = writeln!(out, "{line}");
        }
    }
}

// ---- routes -----------------------------------------------------------------------------------------

/// Something a route can point at: a [`crate::MockUpstream`], or a URL.
pub trait UpstreamUrl {
    fn upstream_url(&self) -> String;
}

impl UpstreamUrl for crate::MockUpstream {
    fn upstream_url(&self) -> String {
        self.url()
    }
}

impl UpstreamUrl for str {
    fn upstream_url(&self) -> String {
        self.to_string()
    }
}

impl UpstreamUrl for String {
    fn upstream_url(&self) -> String {
        self.clone()
    }
}

/// One `[[route]]` table. `path_prefix` defaults to `/<name>`; `upstream` must be set.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    name: String,
    path_prefix: String,
    upstream: Option<String>,
    keys: Keys,
}

macro_rules! str_keys {
    ($($(#[$doc:meta])* $method:ident => $key:literal;)*) => {
        $( $(#[$doc])* pub fn $method(self, value: &str) -> Self { self.set($key, value) } )*
    };
}

impl RouteSpec {
    pub fn new(name: &str) -> RouteSpec {
        RouteSpec {
            name: name.to_string(),
            path_prefix: format!("/{name}"),
            upstream: None,
            keys: Keys::default(),
        }
    }

    /// `path_prefix` (default `/<name>`).
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.path_prefix = prefix.to_string();
        self
    }

    /// `upstream`: a mock (`&mock`) or a URL.
    pub fn upstream<U: UpstreamUrl + ?Sized>(mut self, upstream: &U) -> Self {
        self.upstream = Some(upstream.upstream_url());
        self
    }

    /// Any key, for a one-off (prefer adding a method).
    pub fn set(mut self, key: &str, value: impl Into<Toml>) -> Self {
        self.keys.set(key, value.into());
        self
    }

    /// A verbatim line (e.g. odd or invalid TOML), after the keys.
    pub fn raw(mut self, line: &str) -> Self {
        self.keys.raw.push(line.to_string());
        self
    }

    str_keys! {
        /// `format` (`auto`, `sse`, `ndjson`, `lines`, `chunks`, `json-array`, `json-seq`, `passthrough`, …).
        format => "format";
        /// `heartbeat_interval` (`"0s"`: off).
        heartbeat => "heartbeat_interval";
        idle_timeout => "idle_timeout";
        header_timeout => "header_timeout";
        connect_timeout => "connect_timeout";
        max_duration => "max_duration";
        max_event_size => "max_event_size";
        /// `on_decode_error` (`error`, `skip`, `close`).
        on_decode_error => "on_decode_error";
        event_field => "event_field";
        retry_after => "retry_after";
    }

    pub fn ids(self, on: bool) -> Self {
        self.set("ids", on)
    }

    pub fn forward_comments(self, on: bool) -> Self {
        self.set("forward_comments", on)
    }

    pub fn strip_prefix(self, on: bool) -> Self {
        self.set("strip_prefix", on)
    }

    pub fn max_streams(self, n: i64) -> Self {
        self.set("max_streams", n)
    }

    /// `done_event = { event = .., data = .. }` (`event` left out when `None`).
    pub fn done_event(self, event: Option<&str>, data: &str) -> Self {
        let mut t = Vec::new();
        if let Some(e) = event {
            t.push(("event".to_string(), Toml::from(e)));
        }
        t.push(("data".to_string(), Toml::from(data)));
        self.set("done_event", Toml::Table(t))
    }

    /// `ca_file`: a file written into the temp dir with [`GatewaySpec::file`].
    pub fn ca_file_in_dir(self, name: &str) -> Self {
        self.set("ca_file", Toml::InDir(name.to_string()))
    }

    /// Adds `auth.keys_env` entries.
    pub fn auth_keys_env(mut self, vars: &[&str]) -> Self {
        self.auth_push("keys_env", vars.iter().map(|v| Toml::from(*v)));
        self
    }

    /// Adds `auth.keys_file` entries: files in the temp dir (see [`GatewaySpec::file`]).
    pub fn auth_keys_files_in_dir(mut self, names: &[&str]) -> Self {
        self.auth_push("keys_file", names.iter().map(|n| Toml::InDir(n.to_string())));
        self
    }

    fn auth_push(&mut self, key: &str, items: impl Iterator<Item = Toml>) {
        if self.keys.get_mut("auth").is_none() {
            self.keys.set("auth", Toml::Table(Vec::new()));
        }
        let Some(Toml::Table(t)) = self.keys.get_mut("auth") else { unreachable!("auth is a table") };
        if !t.iter().any(|(k, _)| k == key) {
            t.push((key.to_string(), Toml::Array(Vec::new())));
        }
        if let Some((_, Toml::Array(a))) = t.iter_mut().find(|(k, _)| k == key) {
            a.extend(items);
        }
    }

    /// `upstream_headers = { name = value, … }` (values may use `${env:…}` / `${file:…}`).
    pub fn upstream_headers(self, headers: &[(&str, &str)]) -> Self {
        self.set("upstream_headers", Toml::table(headers.iter().map(|(k, v)| (*k, *v))))
    }

    /// `cors = { allow_origins = [..], max_age = .. }` (`max_age` left out when `None`).
    pub fn cors(self, allow_origins: &[&str], max_age: Option<&str>) -> Self {
        let mut t = vec![("allow_origins".to_string(), Toml::strs(allow_origins))];
        if let Some(m) = max_age {
            t.push(("max_age".to_string(), Toml::from(m)));
        }
        self.set("cors", Toml::Table(t))
    }

    /// `upstreams`: a pool of backends (instead of `upstream`).
    pub fn backends(self, backends: impl IntoIterator<Item = crate::pool::BackendSpec>) -> Self {
        self.set("upstreams", Toml::Array(backends.into_iter().map(Toml::from).collect()))
    }

    /// `hosts`
    pub fn hosts(self, hosts: &[&str]) -> Self {
        self.set("hosts", Toml::strs(hosts))
    }

    fn render(&self, out: &mut String, dir: &Path) {
        let pool = self.keys.keys.iter().any(|(k, _)| k == "upstreams");
        let upstream = self.upstream.as_deref();
        if upstream.is_none() && !pool {
            panic!("route {} has no upstream", self.name);
        }
        let _ = writeln!(out, "[[route]]");
        let _ = writeln!(out, "name = {}", toml_string(&self.name));
        let _ = writeln!(out, "path_prefix = {}", toml_string(&self.path_prefix));
        if let Some(upstream) = upstream {
            let _ = writeln!(out, "upstream = {}", toml_string(upstream));
        }
        self.keys.render(out, dir);
        out.push('\n');
    }
}

// ---- [server] ---------------------------------------------------------------------------------------

/// Extra `[server]` keys (`listen`, `pid_file`, `upgrade_sock` and `[server.tls]` are the harness's).
#[derive(Debug, Clone, Default)]
pub struct ServerSpec {
    keys: Keys,
}

impl ServerSpec {
    /// Any key, for a one-off (prefer adding a method).
    pub fn set(mut self, key: &str, value: impl Into<Toml>) -> Self {
        self.keys.set(key, value.into());
        self
    }

    /// A verbatim line in `[server]`.
    pub fn raw(mut self, line: &str) -> Self {
        self.keys.raw.push(line.to_string());
        self
    }

    str_keys! {
        shutdown_drain => "shutdown_drain";
        shutdown_retry => "shutdown_retry";
        write_timeout => "write_timeout";
        max_request_body => "max_request_body";
        max_header_size => "max_header_size";
        request_header_timeout => "request_header_timeout";
        request_body_timeout => "request_body_timeout";
    }
}

// ---- the gateway spec -------------------------------------------------------------------------------

/// The addresses and temp dir of one start attempt, for [`GatewaySpec::config_text`].
#[derive(Debug, Clone)]
pub struct Placed {
    /// The plaintext traffic listeners (at least one).
    pub listen: Vec<SocketAddr>,
    pub admin: SocketAddr,
    /// The TLS listener, when [`GatewaySpec::tls`] was called.
    pub tls: Option<SocketAddr>,
    /// The gateway's temp dir.
    pub dir: PathBuf,
}

type ConfigText = Box<dyn Fn(&Placed) -> String + Send + Sync>;

/// Everything needed to start one gateway; see the module docs.
pub struct GatewaySpec {
    dir: TempDir,
    server: ServerSpec,
    routes: Vec<RouteSpec>,
    tls: bool,
    listeners: usize,
    env: Vec<(String, String)>,
    args: Vec<String>,
    text: Option<ConfigText>,
    /// `[redis]` keys, when [`GatewaySpec::redis`] was called.
    redis: Option<Vec<(String, Toml)>>,
}

impl std::fmt::Debug for GatewaySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewaySpec")
            .field("dir", &self.dir.path())
            .field("server", &self.server)
            .field("routes", &self.routes)
            .field("tls", &self.tls)
            .field("listeners", &self.listeners)
            .field("env", &self.env)
            .field("redis", &self.redis)
            .field("args", &self.args)
            .field("config_text", &self.text.is_some())
            .finish()
    }
}

impl Default for GatewaySpec {
    fn default() -> Self {
        GatewaySpec::new()
    }
}

impl GatewaySpec {
    /// No routes yet; one plaintext listener, an admin listener; the temp dir exists from here on.
    pub fn new() -> GatewaySpec {
        GatewaySpec {
            dir: tempfile::Builder::new().prefix("ssegate-test-").tempdir().expect("create a temp dir"),
            server: ServerSpec::default(),
            routes: Vec::new(),
            tls: false,
            listeners: 1,
            env: Vec::new(),
            args: Vec::new(),
            text: None,
            redis: None,
        }
    }

    /// The gateway's temp dir (where [`GatewaySpec::file`] writes), known before the start.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn route(mut self, route: RouteSpec) -> Self {
        self.routes.push(route);
        self
    }

    /// Extra `[server]` keys.
    pub fn server(mut self, f: impl FnOnce(ServerSpec) -> ServerSpec) -> Self {
        self.server = f(std::mem::take(&mut self.server));
        self
    }

    /// A `[server.tls]` listener presenting `cert` (written as `cert.pem` / `key.pem` into the temp dir).
    pub fn tls(mut self, cert: &TestCert) -> Self {
        self = self.file("cert.pem", cert.cert_pem.as_bytes()).file("key.pem", cert.key_pem.as_bytes());
        self.tls = true;
        self
    }

    /// `n` plaintext listeners in `server.listen` (default 1).
    pub fn listeners(mut self, n: usize) -> Self {
        assert!(n >= 1, "a gateway needs a listener");
        self.listeners = n;
        self
    }

    /// A `[redis]` table with `url` (see `crate::redis::RedisServer::url`) and the given extra keys
    /// (`key_prefix`).
    pub fn redis(mut self, url: &str, keys: &[(&str, &str)]) -> Self {
        let mut t = vec![("url".to_string(), Toml::Str(url.to_string()))];
        t.extend(keys.iter().map(|(k, v)| (k.to_string(), Toml::Str(v.to_string()))));
        self.redis = Some(t);
        self
    }

    /// An environment variable for the process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Writes `content` into the temp dir as `name` now.
    pub fn file(self, name: &str, content: &[u8]) -> Self {
        std::fs::write(self.dir.path().join(name), content).expect("write a file into the temp dir");
        self
    }

    /// Command line arguments before `run` (e.g. `["--log-format", "json"]`).
    pub fn args<S: AsRef<str>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// The whole config text, from the addresses of the attempt, instead of the rendered one (for tests
    /// whose subject is the config text). Each `listen` address must be in it.
    pub fn config_text(mut self, f: impl Fn(&Placed) -> String + Send + Sync + 'static) -> Self {
        self.text = Some(Box::new(f));
        self
    }

    /// The TOML for `placed`.
    pub fn render(&self, placed: &Placed) -> String {
        if let Some(f) = &self.text {
            return f(placed);
        }
        let dir = &placed.dir;
        let mut out = String::from("[server]\n");
        let listen = Toml::Array(placed.listen.iter().map(|a| Toml::Str(a.to_string())).collect());
        let _ = writeln!(out, "listen = {}", listen.render(dir));
        let _ = writeln!(out, "pid_file = {}", Toml::InDir("ssegate.pid".into()).render(dir));
        let _ = writeln!(out, "upgrade_sock = {}", Toml::InDir("upgrade.sock".into()).render(dir));
        self.server.keys.render(&mut out, dir);
        if let Some(tls) = placed.tls {
            out.push_str("\n[server.tls]\n");
            let _ = writeln!(out, "listen = {}", toml_string(&tls.to_string()));
            let _ = writeln!(out, "cert = {}", Toml::InDir("cert.pem".into()).render(dir));
            let _ = writeln!(out, "key = {}", Toml::InDir("key.pem".into()).render(dir));
        }
        let _ = write!(out, "\n[admin]\nlisten = {}\n\n", toml_string(&placed.admin.to_string()));
        if let Some(keys) = &self.redis {
            out.push_str("[redis]\n");
            for (k, v) in keys {
                let _ = writeln!(out, "{} = {}", toml_key(k), v.render(dir));
            }
            out.push('\n');
        }
        for r in &self.routes {
            r.render(&mut out, dir);
        }
        out
    }

    /// Starts the gateway and waits until each listener accepts a connection. Its ports are reserved by the
    /// harness until then (see [`crate::ReservedAddr`]); a start that still fails with "address in use" is
    /// retried (up to 3 attempts) on new ports.
    pub async fn start(self) -> Gateway {
        let bin = binary();
        let mut last_err = String::new();
        for _attempt in 0..3 {
            match self.try_start(&bin).await {
                Ok(mut gw) => {
                    gw.dir = Some(self.dir);
                    return gw;
                }
                Err((err, retry)) => {
                    if !retry {
                        panic!("{err}");
                    }
                    eprintln!("ssegate could not bind a reserved port; retrying on new ports:\n{err}");
                    last_err = err;
                }
            }
        }
        panic!("{last_err}");
    }

    async fn try_start(&self, bin: &Path) -> Result<Gateway, (String, bool)> {
        // Held until the gateway listens on them (dropped when this function returns).
        let listen: Vec<crate::ReservedAddr> = (0..self.listeners).map(|_| crate::reserve_addr()).collect();
        let admin = crate::reserve_addr();
        let tls = self.tls.then(crate::reserve_addr);
        let placed = Placed {
            listen: listen.iter().map(crate::ReservedAddr::addr).collect(),
            admin: admin.addr(),
            tls: tls.as_ref().map(crate::ReservedAddr::addr),
            dir: self.dir.path().to_path_buf(),
        };
        let text = self.render(&placed);
        let config_path = placed.dir.join("ssegate.toml");
        std::fs::write(&config_path, &text).expect("write the config");
        let mut cmd = Command::new(bin);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(&self.args)
            .arg("run")
            .arg("--config")
            .arg(&config_path);
        let child = spawn_logged(cmd, &placed.dir);
        let mut gw = Gateway {
            child,
            dir: None,
            dir_path: placed.dir.clone(),
            config_path,
            listen: placed.listen.clone(),
            admin: placed.admin,
            tls: placed.tls,
            exited: None,
            panic_checked: false,
        };

        let mut wait_for = placed.listen.clone();
        wait_for.push(placed.admin);
        wait_for.extend(placed.tls);
        let deadline = Instant::now() + Duration::from_secs(10);
        for target in wait_for {
            loop {
                if tokio::net::TcpStream::connect(target).await.is_ok() {
                    break;
                }
                if let Ok(Some(status)) = gw.child.try_wait() {
                    gw.exited = Some(status);
                    gw.panic_checked = true;
                    let err = gw.stderr();
                    let in_use = err.contains("in use") || err.contains("AddrInUse");
                    return Err((
                        format!(
                            "ssegate exited early ({status}) before listening on {target}.\nconfig:\n{text}\n\
                             stderr:\n{err}\nstdout:\n{}",
                            gw.stdout()
                        ),
                        in_use,
                    ));
                }
                if Instant::now() > deadline {
                    gw.panic_checked = true;
                    return Err((
                        format!(
                            "ssegate did not listen on {target} within 10 s.\nconfig:\n{text}\nstderr:\n{}",
                            gw.stderr()
                        ),
                        false,
                    ));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        Ok(gw)
    }
}

// ---- the binary -------------------------------------------------------------------------------------

/// Signals the harness can send (through `kill(1)`, since the workspace forbids `unsafe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Term,
    Int,
    Quit,
    Kill,
    /// Reload the config.
    Hup,
}

/// `Signal::Term`
pub const SIGTERM: Signal = Signal::Term;

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Signal::Term => "TERM",
            Signal::Int => "INT",
            Signal::Quit => "QUIT",
            Signal::Kill => "KILL",
            Signal::Hup => "HUP",
        }
    }
}

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// The `ssegate` binary to test.
///
/// `$SSEGATE_BIN` when set (used as it is). Otherwise, once per test process, `cargo build -p ssegate
/// --quiet` (`$CARGO`, else `cargo`) from the workspace root into the target dir and profile this test
/// executable was built in, and the `ssegate` it produced: a stale binary is never tested. Panics with
/// cargo's output when the build fails. (Cargo holds no lock while `cargo test` runs test executables, and
/// the build is a no-op when `scripts/test.sh` built first.)
pub fn binary() -> PathBuf {
    match BINARY.get_or_init(build_binary) {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    }
}

fn build_binary() -> Result<PathBuf, String> {
    let name = format!("ssegate{}", std::env::consts::EXE_SUFFIX);
    if let Some(p) = std::env::var_os("SSEGATE_BIN") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("SSEGATE_BIN={} does not exist; build it first: cargo build -p ssegate", p.display()))
        };
    }
    // The test executable lives in <target>/<profile>/deps/.
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("{} is not in <target>/<profile>/deps/; set SSEGATE_BIN", exe.display()))?;
    let target_dir = profile_dir.parent().ok_or("no target dir; set SSEGATE_BIN")?;
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_string(),
        Some(p) => p.to_string(),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.args(["build", "-p", "ssegate", "--quiet", "--profile", &profile])
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(workspace_root())
        .stdin(Stdio::null());
    // What cargo sets for the test executable is not meant for a nested build.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_BIN_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
                "OUT_DIR",
            ]
            .contains(&k.as_ref())
        {
            cmd.env_remove(k.as_ref());
        }
    }
    let out = cmd.output().map_err(|e| format!("run {cargo:?} build -p ssegate: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`cargo build -p ssegate` failed ({}); the end-to-end tests need the binary:\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let bin = profile_dir.join(&name);
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("cargo built ssegate but {} does not exist; set SSEGATE_BIN", bin.display()))
    }
}

// ---- a running gateway ------------------------------------------------------------------------------

/// A running `ssegate run` process; killed (SIGKILL) on drop. When dropped during a panic, its stderr is
/// printed to help diagnose the failure; when dropped otherwise, the test fails if the process printed
/// `panicked` (a panic in the gateway is a bug even when the client saw nothing wrong).
#[derive(Debug)]
pub struct Gateway {
    child: Child,
    dir: Option<TempDir>,
    dir_path: PathBuf,
    config_path: PathBuf,
    listen: Vec<SocketAddr>,
    admin: SocketAddr,
    tls: Option<SocketAddr>,
    exited: Option<ExitStatus>,
    panic_checked: bool,
}

impl Gateway {
    /// Starts a second process, `ssegate run -u` on the same config, for a graceful upgrade: it waits for
    /// this process's listening sockets, which this one hands over on SIGQUIT. Does not wait for anything;
    /// the new process logs into its own temp dir.
    pub fn spawn_upgrade(&self) -> Gateway {
        let dir = tempfile::Builder::new().prefix("ssegate-upgrade-").tempdir().expect("create a temp dir");
        let mut cmd = Command::new(binary());
        cmd.arg("run").arg("-u").arg("--config").arg(&self.config_path);
        let child = spawn_logged(cmd, dir.path());
        Gateway {
            child,
            dir_path: dir.path().to_path_buf(),
            dir: Some(dir),
            config_path: self.config_path.clone(),
            listen: self.listen.clone(),
            admin: self.admin,
            tls: self.tls,
            exited: None,
            panic_checked: false,
        }
    }

    /// The (first) plaintext traffic listener (HTTP/1.1 and h2c).
    pub fn addr(&self) -> SocketAddr {
        self.listen[0]
    }

    /// Every plaintext listener, in `server.listen` order (see [`GatewaySpec::listeners`]).
    pub fn listen_addrs(&self) -> &[SocketAddr] {
        &self.listen
    }

    /// The admin listener.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The TLS listener, when the spec had [`GatewaySpec::tls`].
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The gateway's temp dir.
    pub fn dir(&self) -> &Path {
        &self.dir_path
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The addresses and temp dir of this gateway, to render another spec for the same process.
    pub fn placed(&self) -> Placed {
        Placed { listen: self.listen.clone(), admin: self.admin, tls: self.tls, dir: self.dir_path.clone() }
    }

    /// Replaces the config file with `spec` rendered for this gateway's addresses and temp dir (files the
    /// spec refers to with [`Toml::InDir`] are this gateway's); the process reads it on SIGHUP.
    pub fn rewrite_config(&self, spec: &GatewaySpec) {
        std::fs::write(&self.config_path, spec.render(&self.placed())).expect("write the config");
    }

    /// Sends `sig` to the process.
    pub fn signal(&self, sig: Signal) {
        let status = Command::new("kill")
            .arg(format!("-{}", sig.name()))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill(1)");
        assert!(status.success(), "kill -{} {} failed", sig.name(), self.pid());
    }

    /// Waits up to `within` for the process to exit.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.exited {
                return Some(s);
            }
            if let Ok(Some(s)) = self.child.try_wait() {
                self.exited = Some(s);
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir_path.join("stderr.log")).unwrap_or_default()
    }

    /// Everything the process wrote to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir_path.join("stdout.log")).unwrap_or_default()
    }

    /// Panics when the process printed `panicked` (also checked on drop).
    #[track_caller]
    pub fn assert_no_panic(&mut self) {
        self.panic_checked = true;
        let (err, out) = (self.stderr(), self.stdout());
        assert!(
            !err.contains("panicked") && !out.contains("panicked"),
            "ssegate (pid {}) panicked:\n---- stderr ----\n{err}\n---- stdout ----\n{out}",
            self.pid()
        );
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- ssegate stderr ----\n{}\n---- ssegate stdout ----\n{}",
                self.stderr(),
                self.stdout()
            );
        } else if !self.panic_checked {
            self.assert_no_panic();
        }
    }
}

/// Spawns `cmd` in `dir` with stdin closed and stdout/stderr into `dir/stdout.log` / `dir/stderr.log` (read
/// back by [`Gateway::stdout`] and [`Gateway::stderr`]).
fn spawn_logged(mut cmd: Command, dir: &Path) -> Child {
    let stdout = File::create(dir.join("stdout.log")).expect("create stdout.log");
    let stderr = File::create(dir.join("stderr.log")).expect("create stderr.log");
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()))
}

/// How long [`run_cli`] waits for the command to exit.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `ssegate <args>` to completion (killed, and a panic, if it does not exit within [`CLI_TIMEOUT`]);
/// returns (exit code, stdout and stderr interleaved as written).
pub fn run_cli(args: &[&str]) -> (Option<i32>, String) {
    run_cli_env(args, &[])
}

/// Like [`run_cli`], with extra environment variables.
pub fn run_cli_env(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("create a temp dir");
    let out_path = dir.path().join("out.log");
    let out = File::create(&out_path).expect("create out.log");
    let mut child = Command::new(binary())
        .envs(env.iter().copied())
        .args(args)
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().expect("clone out.log")))
        .stderr(Stdio::from(out))
        .spawn()
        .expect("run ssegate");
    let deadline = Instant::now() + CLI_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for ssegate") {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    assert!(status.is_some(), "ssegate {args:?} did not exit within {CLI_TIMEOUT:?}:\n{text}");
    (status.and_then(|s| s.code()), text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_and_the_spec_renders_typed_keys() {
        assert_eq!(toml_string("a\"b\\c\nd\u{1}é"), "\"a\\\"b\\\\c\\nd\\u0001é\"");
        assert_eq!(toml_key("X-Org"), "X-Org");
        assert_eq!(toml_key("a b"), "\"a b\"");
        let spec = GatewaySpec::new().server(|s| s.shutdown_drain("1s").raw("# odd")).route(
            RouteSpec::new("r")
                .upstream("http://127.0.0.1:9")
                .heartbeat("0s")
                .done_event(Some("end"), "[DONE]")
                .auth_keys_env(&["A"])
                .auth_keys_env(&["B"])
                .upstream_headers(&[("X-Org", "a\"b")]),
        );
        let placed = Placed {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 1))],
            admin: SocketAddr::from(([127, 0, 0, 1], 2)),
            tls: None,
            dir: PathBuf::from("/d"),
        };
        let text = spec.render(&placed);
        for line in [
            "listen = [\"127.0.0.1:1\"]",
            "pid_file = \"/d/ssegate.pid\"",
            "shutdown_drain = \"1s\"\n# odd\n",
            "[admin]\nlisten = \"127.0.0.1:2\"",
            "path_prefix = \"/r\"",
            "heartbeat_interval = \"0s\"",
            "done_event = { event = \"end\", data = \"[DONE]\" }",
            "auth = { keys_env = [\"A\", \"B\"] }",
            "upstream_headers = { X-Org = \"a\\\"b\" }",
        ] {
            assert!(text.contains(line), "{line:?} not in:\n{text}");
        }
    }
}
