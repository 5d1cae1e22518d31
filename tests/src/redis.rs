//! A private `redis-server` for a test: on 127.0.0.1 with a free port, no persistence (`--save ""
//! --appendonly no`), in its own temp dir, killed on drop. It can be killed and restarted mid-test on the same
//! port (the port stays reserved for the server's whole life, see [`crate::ReservedAddr`]).
//!
//! `redis-server` is the Debian package that `scripts/setup.sh` installs; a machine without it fails the test
//! with that hint (never a silent skip). [`RedisServer::command`] is a tiny RESP client for assertions on what
//! the gateway left in Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::{reserve_addr, ReservedAddr};

/// How long a started server may take to answer `PING`.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running (or killed) `redis-server` owned by one test.
#[derive(Debug)]
pub struct RedisServer {
    reserved: ReservedAddr,
    /// The TLS port, when started with [`RedisServer::start_tls`] (the plain port stays for [`RedisServer::command`]).
    tls: Option<ReservedAddr>,
    dir: TempDir,
    child: Option<Child>,
    starts: u32,
}

impl RedisServer {
    /// Starts a server and waits until it answers `PING`.
    pub fn start() -> RedisServer {
        let dir = tempfile::Builder::new().prefix("ssegate-redis-").tempdir().expect("temp dir");
        let mut server = RedisServer { reserved: reserve_addr(), tls: None, dir, child: None, starts: 0 };
        server.restart();
        server
    }

    /// [`RedisServer::start`] with a TLS port as well, presenting `cert` (no client certificates asked).
    pub fn start_tls(cert: &crate::tls::TestCert) -> RedisServer {
        let dir = tempfile::Builder::new().prefix("ssegate-redis-").tempdir().expect("temp dir");
        std::fs::write(dir.path().join("cert.pem"), &cert.cert_pem).expect("write cert.pem");
        std::fs::write(dir.path().join("key.pem"), &cert.key_pem).expect("write key.pem");
        let tls = Some(reserve_addr());
        let mut server = RedisServer { reserved: reserve_addr(), tls, dir, child: None, starts: 0 };
        server.restart();
        server
    }

    /// `rediss://localhost:<tls port>/0` (the certificate names `localhost`); panics without TLS.
    pub fn tls_url(&self) -> String {
        let port = self.tls.as_ref().expect("started with start_tls").addr().port();
        format!("rediss://localhost:{port}/0")
    }

    pub fn addr(&self) -> SocketAddr {
        self.reserved.addr()
    }

    /// `redis://127.0.0.1:<port>/0`
    pub fn url(&self) -> String {
        format!("redis://{}/0", self.addr())
    }

    /// Whether the server process is running (started and not killed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server at once (SIGKILL: no shutdown, every connection reset) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A paused server dies from SIGKILL as well.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open and nothing is answered — a Redis that hangs.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a [`RedisServer::pause`]d server go on (SIGCONT).
    pub fn unpause(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("redis-server is running").id().to_string();
        let status = Command::new("kill").args([sig, &pid]).status().expect("run kill");
        assert!(status.success(), "kill {sig} {pid}: {status}");
    }

    /// Starts the server again on the same port (empty: nothing was persisted); kills it first if it runs.
    pub fn restart(&mut self) {
        self.kill();
        self.starts += 1;
        let log = self.dir.path().join(format!("redis-{}.log", self.starts));
        let port = self.addr().port().to_string();
        let mut cmd = Command::new("redis-server");
        if let Some(tls) = &self.tls {
            let d = self.dir.path();
            cmd.arg("--tls-port").arg(tls.addr().port().to_string());
            cmd.arg("--tls-cert-file").arg(d.join("cert.pem")).arg("--tls-key-file").arg(d.join("key.pem"));
            cmd.args(["--tls-auth-clients", "no"]);
        }
        let child = cmd
            .args(["--bind", "127.0.0.1", "--port", &port, "--save", "", "--appendonly", "no"])
            .args(["--protected-mode", "no", "--daemonize", "no", "--databases", "4"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => panic!("cannot start redis-server ({e}); scripts/setup.sh installs the Debian package"),
        };
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                panic!("redis-server exited ({status}) before answering PING:\n{}", read_log(&log));
            }
            if matches!(self.try_command(&["PING"]), Ok(Reply::Status(s)) if s == "PONG") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING in time:\n{}",
                read_log(&log)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends one command on a fresh connection and returns its reply; panics when the server cannot be reached.
    pub fn command(&self, args: &[&str]) -> Reply {
        self.try_command(args).unwrap_or_else(|e| panic!("redis {args:?}: {e}"))
    }

    /// Every key (`KEYS *`), sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = match self.command(&["KEYS", "*"]) {
            Reply::Array(items) => items.into_iter().map(|r| r.text()).collect(),
            other => panic!("KEYS: {other:?}"),
        };
        keys.sort();
        keys
    }

    fn try_command(&self, args: &[&str]) -> std::io::Result<Reply> {
        let mut conn = TcpStream::connect_timeout(&self.addr(), Duration::from_secs(2))?;
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            let _ = write!(req, "${}\r\n{a}\r\n", a.len());
        }
        conn.write_all(req.as_bytes())?;
        read_reply(&mut BufReader::new(conn))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<String>),
    Array(Vec<Reply>),
}

impl Reply {
    /// A status or bulk string's text (`""` for a nil bulk); panics on anything else.
    pub fn text(self) -> String {
        match self {
            Reply::Status(s) | Reply::Bulk(Some(s)) => s,
            Reply::Bulk(None) => String::new(),
            other => panic!("not a string reply: {other:?}"),
        }
    }

    /// An integer reply; panics on anything else.
    pub fn int(&self) -> i64 {
        match self {
            Reply::Int(n) => *n,
            other => panic!("not an integer reply: {other:?}"),
        }
    }
}

fn read_reply(r: &mut BufReader<TcpStream>) -> std::io::Result<Reply> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut line = String::new();
    r.read_line(&mut line)?;
    let line = line.strip_suffix("\r\n").ok_or_else(|| bad("a reply line without CRLF"))?;
    let (kind, rest) = line.split_at(1);
    let n = || rest.parse::<i64>().map_err(|_| bad(line));
    Ok(match kind {
        "+" => Reply::Status(rest.to_owned()),
        "-" => Reply::Error(rest.to_owned()),
        ":" => Reply::Int(n()?),
        "$" if n()? < 0 => Reply::Bulk(None),
        "$" => {
            let mut buf = vec![0; usize::try_from(n()?).map_err(|_| bad(line))? + 2];
            r.read_exact(&mut buf)?;
            buf.truncate(buf.len() - 2);
            Reply::Bulk(Some(String::from_utf8_lossy(&buf).into_owned()))
        }
        "*" if n()? < 0 => Reply::Array(Vec::new()),
        "*" => {
            let mut items = Vec::new();
            for _ in 0..n()? {
                items.push(read_reply(r)?);
            }
            Reply::Array(items)
        }
        _ => return Err(bad(line)),
    })
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("(no log: {e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_dies_and_restarts_empty_on_the_same_port() {
        let mut r = RedisServer::start();
        let port = r.addr().port();
        assert_eq!(r.command(&["SET", "k", "v\r\nwith crlf"]), Reply::Status("OK".into()));
        assert_eq!(r.command(&["GET", "k"]).text(), "v\r\nwith crlf");
        assert_eq!(r.command(&["GET", "missing"]), Reply::Bulk(None));
        assert_eq!(
            r.command(&["CONFIG", "GET", "save"]),
            Reply::Array(vec![Reply::Bulk(Some("save".into())), Reply::Bulk(Some(String::new()))])
        );
        assert_eq!(r.keys(), ["k"]);
        r.kill();
        assert!(!r.is_running());
        assert!(TcpStream::connect(r.addr()).is_err(), "killed, yet something listens on {port}");
        r.restart();
        assert_eq!(r.addr().port(), port);
        assert!(r.keys().is_empty(), "nothing persisted across a restart");
        assert!(matches!(r.command(&["NOSUCHCMD"]), Reply::Error(e) if e.contains("unknown command")));
    }
}
