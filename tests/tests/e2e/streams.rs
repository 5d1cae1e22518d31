//! What the tests that hold many streams through an upgrade or reloads share (`load.rs`, `resume_upgrade.rs`):
//! numbered NDJSON upstreams held at a gate, the check that a client got every number once and in order, a
//! prober that opens new connections throughout, an `EventSource`-like client, the upgrade step, and the set-up
//! of a 1,000-stream test (one at a time, descriptors raised, a longer bound).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ssegate_tests::client::{Conn, End, Response};
use ssegate_tests::mock::Gate;
use ssegate_tests::sse::{self, Block};
use ssegate_tests::{bounded_for, show, Gateway, Reply, Signal, Step};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// Streams in flight in the 1,000-stream tests (issue 17 items 2 and 3).
pub const STREAMS: usize = 1000;

/// How long a 1,000-stream test may take before it is a hang (alone on an idle 2-core machine each takes
/// 15-25 s with a debug build).
const HEAVY_BOUND: Duration = Duration::from_secs(120);

/// One 1,000-stream test at a time in this process: two at once would ask for twice the descriptors and
/// starve each other's paced upstreams on a small machine.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs a test that holds [`STREAMS`] streams: waits for the other such tests, raises the descriptor limit
/// (about 1,000 client + 1,000 mock descriptors here, 2,000 per gateway process, 1,000 in `redis-server`; each
/// process has its own limit), then runs `f` under [`HEAVY_BOUND`].
pub async fn heavy<F: Future>(f: F) -> F::Output {
    let _one = HEAVY.lock().await;
    ssegate_tests::raise_nofile(3 * STREAMS as u64 + 1024);
    bounded_for(HEAVY_BOUND, f).await
}

/// NDJSON lines `{"n":from}` … `{"n":to}`, `gap_ms` apart (no pause before the first).
pub fn numbered_steps(from: usize, to: usize, gap_ms: u64) -> Vec<Step> {
    let mut steps = Vec::new();
    for n in from..=to {
        if n > from {
            steps.push(Step::Sleep(gap_ms));
        }
        steps.push(Step::send(format!("{{\"n\":{n}}}\n")));
    }
    steps
}

/// NDJSON upstream: `{"n":1}` … `{"n":count}`, `gap_ms` apart, then a clean end.
pub fn numbered(count: usize, gap_ms: u64) -> Reply {
    let mut steps = numbered_steps(1, count, gap_ms);
    steps.push(Step::End);
    Reply::stream("application/x-ndjson", steps)
}

/// NDJSON upstream: `{"n":1}` … `{"n":first}` `gap_ms` apart, then it waits for `gate` and sends the rest up
/// to `{"n":count}` and a clean end. A gate that is never opened holds the stream until the gateway drops it.
pub fn numbered_gated(first: usize, gate: &Gate, count: usize, gap_ms: u64) -> Reply {
    let mut steps = numbered_steps(1, first, gap_ms);
    steps.push(Step::Wait(gate.clone()));
    steps.push(Step::Sleep(gap_ms));
    steps.extend(numbered_steps(first + 1, count, gap_ms));
    steps.push(Step::End);
    Reply::stream("application/x-ndjson", steps)
}

/// Checks that `events` begin with `{"n":1}` … `{"n":k}`, once each and in order, with ids `<stream>.<n>` of
/// one stream when the first has an id (a resumable route) and none otherwise; returns `k` and whatever
/// follows them (the first block with an `event` or `retry` field, or data that is not the next number).
#[track_caller]
pub fn contiguous(i: usize, events: &[Block]) -> (usize, &[Block]) {
    let stream = events.first().and_then(|b| b.id.as_deref()).map(|id| match id.split_once('.') {
        Some((s, _)) => s.to_string(),
        None => panic!("stream {i}: id {id:?} is not <stream>.<seq>"),
    });
    let mut k = 0;
    for b in events {
        if b.event.is_some() || b.retry.is_some() {
            break;
        }
        let n = k + 1;
        assert_eq!(
            b.data.as_deref(),
            Some(format!("{{\"n\":{n}}}").as_str()),
            "stream {i}, event {n}: {events:#?}"
        );
        let id = stream.as_ref().map(|s| format!("{s}.{n}"));
        assert_eq!(b.id, id, "stream {i}, event {n}");
        k = n;
    }
    (k, &events[k..])
}

/// How a stream's body ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every event 1..=n, once and in order, and nothing else.
    Complete,
    /// Events 1..=k in order (k < n), then `retry:` and `event: error` of type `shutdown`.
    Shutdown(usize),
}

/// Checks a whole SSE body of numbered events (heartbeats aside): every number once and in order, then
/// either the end (all `n`) or the shutdown ending. Panics with the body otherwise.
#[track_caller]
pub fn check_body(i: usize, body: &[u8], n: usize) -> Outcome {
    let blocks: Vec<_> = sse::parse_all(body).into_iter().filter(|b| !b.is_heartbeat()).collect();
    let (k, rest) = contiguous(i, &blocks);
    if rest.is_empty() {
        assert_eq!(k, n, "stream {i} ended cleanly after {k} of {n} events: {}", show(body));
        return Outcome::Complete;
    }
    assert!(k < n, "stream {i}: something after its last event: {rest:?}");
    assert!(rest[0].retry.is_some(), "stream {i}: no retry before the error: {rest:?}");
    sse::assert_error_event(rest.last().unwrap(), "shutdown");
    assert!(rest.len() <= 2, "stream {i}: more than retry + error after the events: {rest:?}");
    Outcome::Shutdown(k)
}

/// `GET path` on a new connection, the body read to its clean end: the status and body, or what went wrong.
pub async fn read_stream(addr: SocketAddr, path: &str) -> Result<(u16, Vec<u8>), String> {
    let conn = Conn::try_connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    let mut resp = conn.send("GET", path, &[("Accept", "text/event-stream")], b"").await;
    let body = resp.body_to_end().await;
    match resp.end() {
        Some(End::Clean) => Ok((resp.status, body)),
        end => Err(format!("{} then {end:?}: {}", resp.status, show(&body))),
    }
}

/// What a [`Prober`] saw.
#[derive(Debug, Default)]
pub struct Probes {
    /// Complete, correct answers.
    pub ok: usize,
    /// Connections refused (`ECONNREFUSED`), with when.
    pub refused: Vec<String>,
    /// Any other failure: reset, timeout, a status other than 200, a wrong body.
    pub failed: Vec<String>,
}

/// A client opening a new connection for one request every few milliseconds, one after another, until
/// stopped: what a service sees from new users during an upgrade or a reload.
#[derive(Debug)]
pub struct Prober {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Probes>,
}

impl Prober {
    /// Probes `GET path` on `addr`; a probe is ok when its body contains `want` and ends cleanly.
    pub fn start(addr: SocketAddr, path: &'static str, want: &'static [u8]) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut probes = Probes::default();
            let t = Instant::now();
            while !stopped.load(Ordering::Relaxed) {
                let at = t.elapsed().as_secs_f64();
                match tokio::time::timeout(Duration::from_secs(5), probe(addr, path)).await {
                    Ok(Ok(body)) if body.windows(want.len()).any(|w| w == want) => probes.ok += 1,
                    Ok(Ok(body)) => probes.failed.push(format!("{at:.3}s: body {}", show(&body))),
                    Ok(Err(e)) if e.kind() == ErrorKind::ConnectionRefused => {
                        probes.refused.push(format!("{at:.3}s: {e}"))
                    }
                    Ok(Err(e)) => probes.failed.push(format!("{at:.3}s: {e}")),
                    Err(_) => probes.failed.push(format!("{at:.3}s: no answer within 5 s")),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            probes
        });
        Prober { stop, task }
    }

    /// Stops after the probe under way; what was seen.
    pub async fn stop(self) -> Probes {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// One request with `Connection: close` on a new connection: the body (the response read to EOF and
/// de-chunked is not needed: `want` is looked for in the raw bytes), or the error; a status other than 200
/// is an error of kind `Other`.
async fn probe(addr: SocketAddr, path: &str) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr).await?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    if !out.starts_with(b"HTTP/1.1 200") || !out.ends_with(b"0\r\n\r\n") {
        return Err(std::io::Error::other(format!("not a complete 200: {}", show(&out))));
    }
    Ok(out)
}

/// Starts the upgrade of `old` (`run -u`) and sends it SIGQUIT once the new process listens for the
/// hand-over; the new process.
pub async fn upgrade(old: &Gateway) -> Gateway {
    let mut new = old.spawn_upgrade();
    let sock = old.dir().join("upgrade.sock");
    let t = Instant::now();
    while !sock.exists() {
        assert!(t.elapsed() < Duration::from_secs(10), "the new process never opened {}", sock.display());
        if let Some(s) = new.wait_exit(Duration::from_millis(10)).await {
            panic!("the upgrading process exited ({s}):\n{}", new.stderr());
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    old.signal(Signal::Quit);
    new
}

/// What one `EventSource`-like client saw over all its connections.
#[derive(Debug, Default)]
pub struct Seen {
    /// Every block with data, in arrival order, over all connections.
    pub events: Vec<Block>,
    /// The status of each response.
    pub statuses: Vec<u16>,
    /// How each 200 response's body ended.
    pub ends: Vec<Option<End>>,
    /// The body of the last response that was not 200 or 204.
    pub refused_body: Option<String>,
}

/// An `EventSource`: `GET path`, reads events until the body ends, then waits the last `retry:` (3 s by
/// default) and reconnects with `Last-Event-ID` (the last id seen); stops on a status other than 200, like a
/// browser. A connection that cannot be made is an error (it would be a refused connection).
#[derive(Debug, Default)]
pub struct EventSource {
    seen: Seen,
    last_id: Option<String>,
    retry: Option<Duration>,
    /// Counts this client's first body end (see [`EventSource::counting`]).
    first_ends: Option<Arc<AtomicUsize>>,
}

impl EventSource {
    /// An `EventSource` that adds one to `first_ends` when its first response's body ends.
    pub fn counting(first_ends: Arc<AtomicUsize>) -> EventSource {
        EventSource { first_ends: Some(first_ends), ..EventSource::default() }
    }

    /// Reads one response; whether to reconnect (it was a 200).
    pub async fn read(&mut self, mut resp: Response) -> bool {
        self.seen.statuses.push(resp.status);
        if resp.status != 200 {
            self.seen.refused_body = Some(show(&resp.body_to_end().await));
            return false;
        }
        while let Some(raw) = resp.next_event().await {
            let block = sse::parse_block(std::str::from_utf8(&raw).unwrap());
            if let Some(ms) = block.retry.as_deref().and_then(|r| r.parse().ok()) {
                self.retry = Some(Duration::from_millis(ms));
            }
            if let Some(id) = &block.id {
                self.last_id = Some(id.clone());
            }
            if block.data.is_some() {
                self.seen.events.push(block);
            }
        }
        self.seen.ends.push(resp.end().cloned());
        if self.seen.ends.len() == 1 {
            if let Some(c) = &self.first_ends {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        true
    }

    /// Connects (again, after the first response was read by [`EventSource::read`]) until a non-200 answer.
    pub async fn run(mut self, addr: SocketAddr, path: &str) -> Result<Seen, String> {
        for _ in 0..6 {
            if !self.seen.statuses.is_empty() {
                tokio::time::sleep(self.retry.unwrap_or(Duration::from_secs(3))).await;
            }
            let conn = Conn::try_connect(addr)
                .await
                .map_err(|e| format!("connect #{}: {e}", self.seen.statuses.len()))?;
            let mut headers = vec![("Accept", "text/event-stream")];
            if let Some(id) = &self.last_id {
                headers.push(("Last-Event-ID", id.as_str()));
            }
            if !self.read(conn.send("GET", path, &headers, b"").await).await {
                return Ok(self.seen);
            }
        }
        Err(format!("still reconnecting after 6 connections: {:?}", self.seen))
    }
}

/// Waits (up to `within`) until `count` reaches `n`; panics with `what` and the count otherwise.
pub async fn wait_count(count: &AtomicUsize, n: usize, within: Duration, what: &str) {
    let t = Instant::now();
    while count.load(Ordering::Relaxed) < n {
        assert!(t.elapsed() < within, "{what}: {} of {n} within {within:?}", count.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
