//! Config hot reload: on `SIGHUP` the config file (and everything it names: key files, `${file:…}`,
//! `${env:…}` of this process, the TLS certificate and key, CA files) is read again and validated with the
//! rules of `ssegate check` ([`Config::load`]); then it is applied as a whole, or not at all.
//!
//! Build-then-swap: a new [`Gateway`] is built from the new config (a route keeping its name keeps its
//! `max_streams` counter, see [`Gateway::build_after`]; metric handles of a name are the same series),
//! the new TLS certificate is loaded and checked, and only then are the gateway pointer and the
//! certificate swapped. A request in flight keeps the gateway snapshot it started with until it ends. The
//! series of a removed route leave `/metrics` at once ([`metrics::retire_route`]).
//!
//! What needs new sockets or a new process (listen addresses, `threads`, the admin listener, the TLS
//! listener's address or its presence, `pid_file`, `upgrade_sock`, a `shutdown_drain` longer than the one
//! pingora's grace period was set from at the start) is refused, naming the key: the old config keeps
//! serving, and a restart or a graceful upgrade (`ssegate run -u`) applies it.
//!
//! `SIGHUP` is caught by [`ReloadService`], a pingora background service listening with tokio's signal
//! handling (pingora itself only handles SIGTERM, SIGINT and SIGQUIT; without a handler SIGHUP would end
//! the process). The service writes `pid_file` once the handler is installed, so `ssegate reload`
//! ([`signal_running`]) never signals a process that cannot take it yet.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::config::{Config, Source, System};
use crate::gateway::{Gateway, SharedGateway};
use crate::metrics;
use crate::tls::{self, CertStore};

/// What a successful reload changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub routes: usize,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// A new TLS certificate was installed (the listener exists).
    pub tls: bool,
}

/// The applied config and the handles a reload swaps.
#[derive(Debug)]
pub struct Reloader {
    /// The config file, absolute: daemon mode changes the working directory to `/` after the start.
    path: PathBuf,
    current: Config,
    /// `shutdown_drain` when the process started: pingora's grace period was derived from it.
    start_drain: Duration,
    gateway: Arc<SharedGateway>,
    certs: Option<Arc<CertStore>>,
}

impl Reloader {
    /// `config` is serving through `gateway` (and `certs`, when there is a TLS listener).
    pub fn new(config: Config, gateway: Arc<SharedGateway>, certs: Option<Arc<CertStore>>) -> Reloader {
        let path = std::path::absolute(&config.path).unwrap_or_else(|_| config.path.clone());
        Reloader { path, start_drain: config.server.shutdown_drain, current: config, gateway, certs }
    }

    /// The config file this process serves.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the config file again (with the process environment and the real file system) and applies
    /// it; on error nothing changed and every problem is returned, each as `file[:line:col]: message`.
    pub fn reload(&mut self) -> Result<Applied, Vec<String>> {
        let new = Config::load(&self.path).map_err(|e| e.0)?;
        self.apply(new, &System)
    }

    /// Applies the validated `new` config (certificate files read through `source`), or nothing.
    pub fn apply(&mut self, new: Config, source: &dyn Source) -> Result<Applied, Vec<String>> {
        let text = config_text(source, &new.path);
        let at = |key: &str, msg: &dyn std::fmt::Display| {
            format!("{}: {msg}", position(&new.path, text.as_deref(), key))
        };
        let refused = needs_restart(&self.current, &new, self.start_drain);
        if !refused.is_empty() {
            return Err(refused.iter().map(|(key, msg)| at(key, msg)).collect());
        }
        let cert = match (&new.server.tls, &self.certs) {
            (Some(t), Some(_)) => Some(tls::load(t, source).map_err(|e| vec![at(e.key, &e)])?),
            _ => None,
        };
        let old = self.gateway.load_full();
        let next = Gateway::build_after(&new, Some(&old));
        let added: Vec<String> = new
            .routes
            .iter()
            .filter(|r| old.route_named(&r.name).is_none())
            .map(|r| r.name.clone())
            .collect();
        let removed: Vec<String> = old
            .router
            .values()
            .filter(|s| next.route_named(&s.cfg.name).is_none())
            .map(|s| s.cfg.name.clone())
            .collect();
        // The swap: every new request from here on sees the new config.
        self.gateway.store(Arc::new(next));
        let tls = match (cert, &self.certs) {
            (Some(c), Some(store)) => {
                store.store(c);
                true
            }
            _ => false,
        };
        for name in &removed {
            metrics::retire_route(name);
        }
        drop(old);
        let applied = Applied { routes: new.routes.len(), added, removed, tls };
        self.current = new;
        Ok(applied)
    }

    /// [`Reloader::reload`], logged and counted.
    pub fn reload_and_report(&mut self) -> bool {
        match self.reload() {
            Ok(a) => {
                metrics::reload_succeeded();
                tracing::info!(path = %self.path().display(), routes = a.routes, added = ?a.added,
                    removed = ?a.removed, tls_certificate = a.tls, "config reloaded");
                true
            }
            Err(errors) => {
                metrics::reload_failed();
                for e in &errors {
                    tracing::error!("{e}");
                }
                tracing::error!(path = %self.path().display(), errors = errors.len(),
                    "config reload refused; the running config keeps serving");
                false
            }
        }
    }
}

/// The config file's text, for error positions (`None` when it cannot be read again).
fn config_text(source: &dyn Source, path: &Path) -> Option<String> {
    source.read(path).ok().and_then(|b| String::from_utf8(b).ok())
}

/// `file:line:col` of the dotted `key` (e.g. `server.tls.cert`) in `text`, or `file` when it is not there
/// (a key removed from the file).
fn position(file: &Path, text: Option<&str>, key: &str) -> String {
    match text.and_then(|t| key_offset(t, key).map(|o| line_col(t, o))) {
        Some((line, col)) => format!("{}:{line}:{col}", file.display()),
        None => file.display().to_string(),
    }
}

fn key_offset(text: &str, key: &str) -> Option<usize> {
    let doc = toml::de::DeTable::parse(text).ok()?;
    let mut table = doc.get_ref();
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        let (k, v) = table.iter().find(|(k, _)| k.get_ref().as_ref() == part)?;
        if parts.peek().is_none() {
            return Some(k.span().start);
        }
        match v.get_ref() {
            toml::de::DeValue::Table(t) => table = t,
            _ => return None,
        }
    }
    None
}

/// 1-based line and column (in characters) of a byte offset, as `ssegate check` prints them.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (before.matches('\n').count() + 1, before[line_start..].chars().count() + 1)
}

/// Every difference between the running config and `new` that a reload cannot apply: the key (dotted) and
/// a message naming it.
pub fn needs_restart(old: &Config, new: &Config, start_drain: Duration) -> Vec<(&'static str, String)> {
    const HOW: &str = "needs a restart or a graceful upgrade (`ssegate run -u`), not a reload";
    let (o, n) = (&old.server, &new.server);
    let mut out = Vec::new();
    let mut key = |name: &'static str, from: String, to: String| {
        if from != to {
            out.push((name, format!("{name} changed from {from} to {to}: {HOW}")));
        }
    };
    let addrs = |a: &[std::net::SocketAddr]| format!("{a:?}");
    key("server.listen", addrs(&o.listen), addrs(&n.listen));
    key("server.threads", o.threads.to_string(), n.threads.to_string());
    let tls = |c: &Config| c.server.tls.as_ref().map_or("none".into(), |t| t.listen.to_string());
    key("server.tls.listen", tls(old), tls(new));
    let admin = |c: &Config| c.admin.as_ref().map_or("none".into(), |a| a.listen.to_string());
    key("admin.listen", admin(old), admin(new));
    key("server.pid_file", o.pid_file.display().to_string(), n.pid_file.display().to_string());
    key("server.dns_servers", addrs(&o.dns_servers), addrs(&n.dns_servers));
    key("server.upgrade_sock", o.upgrade_sock.display().to_string(), n.upgrade_sock.display().to_string());
    // pingora waits `shutdown_drain + 1 s` (whole seconds, fixed at the start) before dropping streams.
    if n.shutdown_drain.as_secs() > start_drain.as_secs() {
        out.push((
            "server.shutdown_drain",
            format!(
            "server.shutdown_drain {:?} is longer than the {start_drain:?} the process started with (its \
             shutdown grace period is fixed at the start): {HOW}",
            n.shutdown_drain
        ),
        ));
    }
    out
}

/// The pingora background service that catches `SIGHUP` and reloads.
#[derive(Debug)]
pub struct ReloadService {
    reloader: Mutex<Reloader>,
    /// Written once SIGHUP is handled (`None` in daemon mode: pingora's daemonize wrote it).
    pid_file: Option<PathBuf>,
}

impl ReloadService {
    pub fn new(reloader: Reloader, pid_file: Option<PathBuf>) -> ReloadService {
        ReloadService { reloader: Mutex::new(reloader), pid_file }
    }
}

#[async_trait]
impl BackgroundService for ReloadService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot handle SIGHUP; config reload is off");
                return;
            }
        };
        if let Some(p) = &self.pid_file {
            if let Err(e) = write_pid_file(p) {
                tracing::warn!(path = %p.display(), error = %e, "cannot write pid_file");
            }
        }
        loop {
            tokio::select! {
                got = hup.recv() => {
                    if got.is_none() {
                        return;
                    }
                    tracing::info!("SIGHUP received: reloading the config");
                    self.reloader.lock().unwrap_or_else(PoisonError::into_inner).reload_and_report();
                }
                _ = shutdown.changed() => {
                    if let Some(p) = &self.pid_file {
                        remove_own_pid_file(p);
                    }
                    return;
                }
            }
        }
    }
}

/// Writes this process's id to `path` (through a temporary file and a rename: readers never see half).
fn write_pid_file(path: &Path) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, format!("{}\n", std::process::id()))?;
    std::fs::rename(&tmp, path)
}

/// Removes `path` if it still names this process (after a graceful upgrade it names the new one).
fn remove_own_pid_file(path: &Path) {
    if read_pid(path).ok() == Some(std::process::id() as i32) {
        let _ = std::fs::remove_file(path);
    }
}

fn read_pid(path: &Path) -> Result<i32, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read pid_file {}: {e}", path.display()))?;
    text.trim()
        .parse::<i32>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("pid_file {} does not hold a process id: {:?}", path.display(), text.trim()))
}

/// `ssegate reload`: sends `SIGHUP` to the process named by `config`'s `pid_file`, after checking that
/// it is a running ssegate. Returns its pid.
pub fn signal_running(config: &Config) -> Result<i32, String> {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let pid_file = &config.server.pid_file;
    let pid = read_pid(pid_file).map_err(|e| format!("{e} (is ssegate running with this config?)"))?;
    match kill(Pid::from_raw(pid), None) {
        Ok(()) => {}
        Err(nix::errno::Errno::ESRCH) => {
            return Err(format!("stale pid_file {}: no process {pid} is running", pid_file.display()))
        }
        Err(e) => return Err(format!("cannot signal process {pid} (from {}): {e}", pid_file.display())),
    }
    // A pid file left by a gateway that died may name a process that took the id over since.
    let cmdline = Path::new("/proc").join(pid.to_string()).join("cmdline");
    if let Ok(cmd) = std::fs::read(&cmdline) {
        if !String::from_utf8_lossy(&cmd).contains("ssegate") {
            return Err(format!(
                "stale pid_file {}: process {pid} is not ssegate; nothing was signalled",
                pid_file.display()
            ));
        }
    }
    kill(Pid::from_raw(pid), Signal::SIGHUP)
        .map_err(|e| format!("cannot send SIGHUP to process {pid}: {e}"))?;
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MapSource;

    const BASE: &str = r#"
[server]
listen = "127.0.0.1:8080"
threads = 2
pid_file = "/run/a.pid"
shutdown_drain = "10s"
[admin]
listen = "127.0.0.1:9090"
[[route]]
name = "r"
path_prefix = "/r"
upstream = "http://127.0.0.1:9000"
"#;

    fn cfg(src: &str) -> Config {
        Config::from_str_with(Path::new("/etc/ssegate.toml"), src, &MapSource::new()).unwrap()
    }

    fn refused(new: &str) -> Vec<String> {
        needs_restart(&cfg(BASE), &cfg(new), Duration::from_secs(10)).into_iter().map(|(_, m)| m).collect()
    }

    #[test]
    fn routes_and_per_request_limits_are_applicable() {
        let new = BASE
            .replace("\"10s\"", "\"5s\"\nwrite_timeout = \"1s\"\nmax_header_size = \"8KiB\"")
            .replace("/r\"", "/s\"")
            + "[[route]]\nname = \"b\"\npath_prefix = \"/b\"\nupstream = \"http://h\"\n";
        assert_eq!(refused(&new), Vec::<String>::new());
    }

    #[test]
    fn each_socket_or_process_key_is_named() {
        for (from, to, key) in [
            ("127.0.0.1:8080", "127.0.0.1:8081", "server.listen"),
            ("threads = 2", "threads = 3", "server.threads"),
            ("127.0.0.1:9090", "127.0.0.1:9091", "admin.listen"),
            ("/run/a.pid", "/run/b.pid", "server.pid_file"),
            ("\"10s\"", "\"11s\"", "server.shutdown_drain"),
            ("pid_file", "dns_servers = [\"127.0.0.1\"]\npid_file", "server.dns_servers"),
        ] {
            let r = refused(&BASE.replace(from, to));
            assert_eq!(r.len(), 1, "{key}: {r:?}");
            assert!(r[0].starts_with(key) && r[0].contains("restart"), "{key}: {r:?}");
        }
        let r = refused(&BASE.replace("pid_file", "upgrade_sock = \"/run/u.sock\"\npid_file"));
        assert!(r[0].starts_with("server.upgrade_sock"), "{r:?}");
        let no_admin = BASE.replace("[admin]\nlisten = \"127.0.0.1:9090\"\n", "");
        let r = refused(&no_admin);
        assert!(r[0].starts_with("admin.listen changed from 127.0.0.1:9090 to none"), "{r:?}");
    }

    #[test]
    fn adding_a_tls_listener_is_refused() {
        let src = MapSource::new().with_file("/c.pem", "-----BEGIN X-----\n-----END X-----\n");
        let src = src.with_file("/k.pem", "-----BEGIN X-----\n-----END X-----\n");
        let tls = BASE.replace(
            "[admin]",
            "[server.tls]\nlisten = \"127.0.0.1:8443\"\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n[admin]",
        );
        let new = Config::from_str_with(Path::new("/etc/ssegate.toml"), &tls, &src).unwrap();
        let r = needs_restart(&cfg(BASE), &new, Duration::from_secs(10));
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].0, "server.tls.listen");
        assert!(r[0].1.starts_with("server.tls.listen changed from none to 127.0.0.1:8443"), "{r:?}");
    }

    #[test]
    fn a_refused_reload_changes_nothing_and_names_the_file() {
        let old = cfg(BASE);
        let gateway = Gateway::build(&old).shared();
        let mut r = Reloader::new(old, gateway.clone(), None);
        let before = gateway.load_full();
        let e = r.apply(cfg(&BASE.replace("8080", "8081")), &MapSource::new()).unwrap_err();
        assert!(e[0].starts_with("/etc/ssegate.toml: server.listen"), "{e:?}");
        // With the file at hand: its position, as `ssegate check` prints it.
        let text = BASE.replace("8080", "8081").replace("threads = 2", "threads = 3");
        let src = MapSource::new().with_file("/etc/ssegate.toml", text.clone());
        let e = r.apply(cfg(&text), &src).unwrap_err();
        assert_eq!(
            e[0],
            "/etc/ssegate.toml:3:1: server.listen changed from [127.0.0.1:8080] to [127.0.0.1:8081]: \
                          needs a restart or a graceful upgrade (`ssegate run -u`), not a reload"
        );
        assert!(e[1].starts_with("/etc/ssegate.toml:4:1: server.threads changed from 2 to 3"), "{e:?}");
        assert!(Arc::ptr_eq(&before, &gateway.load_full()));
    }

    #[test]
    fn slots_carry_over_by_route_name() {
        let old = cfg(&BASE.replace("upstream =", "max_streams = 1\nupstream ="));
        let gateway = Gateway::build(&old).shared();
        let mut r = Reloader::new(old, gateway.clone(), None);
        let first = gateway.load_full();
        let slot = first.route_named("r").unwrap().admit();
        assert!(slot.is_some());
        let new = BASE.replace("upstream =", "max_streams = 1\nheartbeat_interval = \"3s\"\nupstream =")
            + "[[route]]\nname = \"t_reload_new\"\npath_prefix = \"/n\"\nupstream = \"http://h\"\n";
        let a = r.apply(cfg(&new), &MapSource::new()).unwrap();
        assert_eq!(a.added, ["t_reload_new"]);
        assert!(a.removed.is_empty());
        let second = gateway.load_full();
        let route = second.route_named("r").unwrap();
        assert_eq!(route.cfg.heartbeat_interval, Some(Duration::from_secs(3)));
        assert!(route.admit().is_none(), "the open stream still holds the only slot");
        drop(slot);
        assert!(route.admit().is_some());
    }

    #[test]
    fn a_limit_set_by_a_reload_counts_the_streams_already_open() {
        let old = cfg(BASE);
        let gateway = Gateway::build(&old).shared();
        let mut r = Reloader::new(old, gateway.clone(), None);
        let first = gateway.load_full();
        let open = first.route_named("r").unwrap().admit();
        r.apply(cfg(&BASE.replace("upstream =", "max_streams = 1\nupstream =")), &MapSource::new()).unwrap();
        assert!(gateway.load_full().route_named("r").unwrap().admit().is_none());
        drop(open);
        assert!(gateway.load_full().route_named("r").unwrap().admit().is_some());
    }
}
