//! Starting the real `ssegate` binary.
//!
//! A config is a TOML template with placeholders the harness fills in:
//! `$LISTEN` (traffic listener), `$LISTEN2` (a second one), `$ADMIN` (admin listener), `$TLS_LISTEN` (TLS
//! listener) — each a free `127.0.0.1:PORT` — and `$DIR` (the gateway's temp dir, where extra files such
//! as certificates go).
//! [`config`] and [`config_with`] build the usual template around a list of routes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Signals the harness can send (through `kill(1)`, since the workspace forbids `unsafe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Term,
    Int,
    Quit,
    Kill,
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
        }
    }
}

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The `ssegate` binary: `$SSEGATE_BIN`, else `debug/ssegate` in `$CARGO_TARGET_DIR`, else next to this
/// test executable's profile directory, else `<workspace>/target/debug/ssegate`. Panics when it is missing.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("SSEGATE_BIN") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "SSEGATE_BIN={} does not exist; build it first: cargo build -p ssegate",
            p.display()
        );
        return p;
    }
    let name = format!("ssegate{}", std::env::consts::EXE_SUFFIX);
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        let dir = if dir.is_absolute() { dir } else { workspace_root().join(dir) };
        candidates.push(dir.join("debug").join(&name));
    }
    // The test executable lives in <target>/<profile>/deps/.
    if let Ok(exe) = std::env::current_exe() {
        if let Some(profile_dir) = exe.parent().and_then(Path::parent) {
            candidates.push(profile_dir.join(&name));
        }
    }
    candidates.push(workspace_root().join("target").join("debug").join(&name));
    for c in &candidates {
        if c.is_file() {
            return c.clone();
        }
    }
    panic!(
        "the ssegate binary is missing (looked at {}); build it first: cargo build -p ssegate \
         (or set SSEGATE_BIN)",
        candidates.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", ")
    );
}

/// The usual config template: `[server] listen = ["$LISTEN"]` (pid file and upgrade socket in `$DIR`, so
/// parallel gateways never share them), `[admin] listen = "$ADMIN"`, then `routes`.
pub fn config(routes: &str) -> String {
    config_with("", routes)
}

/// Like [`config`], with extra `[server]` keys (e.g. `shutdown_drain = "1s"`) or tables (e.g. a
/// `[server.tls]` block) right after `listen`.
pub fn config_with(server_extra: &str, routes: &str) -> String {
    format!(
        "[server]\nlisten = [\"$LISTEN\"]\npid_file = \"$DIR/ssegate.pid\"\nupgrade_sock = \"$DIR/upgrade.sock\"\n\
         {server_extra}\n\n[admin]\nlisten = \"$ADMIN\"\n\n{routes}\n"
    )
}

/// One `[[route]]` table: `name`, `path_prefix`, `upstream`, then `extra` lines verbatim.
pub fn route(name: &str, prefix: &str, upstream: &str, extra: &str) -> String {
    format!("[[route]]\nname = \"{name}\"\npath_prefix = \"{prefix}\"\nupstream = \"{upstream}\"\n{extra}\n")
}

/// A running `ssegate run` process; killed (SIGKILL) on drop. When dropped during a panic, its stderr is
/// printed to help diagnose the failure.
#[derive(Debug)]
pub struct Gateway {
    child: Child,
    dir: TempDir,
    config_path: PathBuf,
    addr: SocketAddr,
    addr2: Option<SocketAddr>,
    admin: SocketAddr,
    tls: Option<SocketAddr>,
    exited: Option<ExitStatus>,
}

impl Gateway {
    /// Starts the gateway with `config` (a template, see the module docs) and waits for its listeners.
    pub async fn start(config: &str) -> Gateway {
        Gateway::start_with(config, &[]).await
    }

    /// Like [`Gateway::start`], first writing `files` (name, content) into the gateway's temp dir (`$DIR`).
    pub async fn start_with(config: &str, files: &[(&str, &[u8])]) -> Gateway {
        Gateway::start_full(config, files, &[]).await
    }

    /// Like [`Gateway::start_with`], with extra command line arguments before `run` (e.g.
    /// `["--log-format", "json"]`).
    pub async fn start_full(config: &str, files: &[(&str, &[u8])], args: &[&str]) -> Gateway {
        Gateway::start_env(config, files, args, &[]).await
    }

    /// Like [`Gateway::start_full`], with extra environment variables for the process (e.g. secrets that
    /// `${env:NAME}` references or `auth.keys_env` name, or `RUST_LOG`).
    pub async fn start_env(
        config: &str,
        files: &[(&str, &[u8])],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Gateway {
        assert!(config.contains("$LISTEN"), "a gateway config needs a $LISTEN placeholder");
        let bin = binary();
        let mut last_err = String::new();
        for _attempt in 0..3 {
            match Gateway::try_start(&bin, config, files, args, env).await {
                Ok(gw) => return gw,
                Err((err, retry)) => {
                    if !retry {
                        panic!("{err}");
                    }
                    last_err = err;
                }
            }
        }
        panic!("{last_err}");
    }

    async fn try_start(
        bin: &Path,
        template: &str,
        files: &[(&str, &[u8])],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Gateway, (String, bool)> {
        let dir = tempfile::Builder::new().prefix("ssegate-test-").tempdir().expect("create a temp dir");
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).expect("write a file into the temp dir");
        }
        let addr = crate::free_addr();
        let admin = crate::free_addr();
        let tls = template.contains("$TLS_LISTEN").then(crate::free_addr);
        let addr2 = template.contains("$LISTEN2").then(crate::free_addr);
        let mut text = template.to_string();
        if let Some(a) = addr2 {
            text = text.replace("$LISTEN2", &a.to_string());
        }
        let mut text = text
            .replace("$LISTEN", &addr.to_string())
            .replace("$ADMIN", &admin.to_string())
            .replace("$DIR", &dir.path().display().to_string());
        if let Some(t) = tls {
            text = text.replace("$TLS_LISTEN", &t.to_string());
        }
        let config_path = dir.path().join("ssegate.toml");
        std::fs::write(&config_path, &text).expect("write the config");
        let mut cmd = Command::new(bin);
        cmd.envs(env.iter().copied()).args(args).arg("run").arg("--config").arg(&config_path);
        let child = spawn_logged(cmd, dir.path());
        let mut gw = Gateway { child, dir, config_path, addr, addr2, admin, tls, exited: None };

        let mut wait_for = vec![addr];
        if template.contains("$ADMIN") {
            wait_for.push(admin);
        }
        wait_for.extend(tls);
        wait_for.extend(addr2);
        let deadline = Instant::now() + Duration::from_secs(10);
        for target in wait_for {
            loop {
                if tokio::net::TcpStream::connect(target).await.is_ok() {
                    break;
                }
                if let Ok(Some(status)) = gw.child.try_wait() {
                    gw.exited = Some(status);
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
            dir,
            config_path: self.config_path.clone(),
            addr: self.addr,
            addr2: self.addr2,
            admin: self.admin,
            tls: self.tls,
            exited: None,
        }
    }

    /// The plaintext traffic listener (HTTP/1.1 and h2c).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The second plaintext listener, when the template had `$LISTEN2`.
    pub fn addr2(&self) -> Option<SocketAddr> {
        self.addr2
    }

    /// The admin listener.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The TLS listener, when the template had `$TLS_LISTEN`.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The gateway's temp dir (`$DIR`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
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
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Everything the process wrote to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default()
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
