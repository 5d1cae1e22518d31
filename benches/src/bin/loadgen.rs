//! The benchmark load generator (see benches/README.md).
//!
//! - `loadgen stream`: N concurrent streams, one connection each, opened at a fixed rate; every worker
//!   starts a new stream when its stream ends, until the measured window is over. Per event: latency =
//!   receive time − the send time the mock embedded (`CLOCK_REALTIME`); per stream: time to first event and
//!   the sequence check. Events received during the ramp and the warm-up are checked but not measured.
//!   With `--pid`, CPU time (and RSS) of the proxy over the window gives CPU µs per event.
//! - `loadgen idle`: opens N streams that only get heartbeats, then measures RSS per open stream and the
//!   CPU spent on heartbeats over a hold period.
//! - `loadgen ready`: start → `/readyz` 200 (and → first proxied event) of a command, several times.
//! - `loadgen scrape`: CPU of the system under test per GET of a URL (the admin `/metrics`).
//! - `loadgen report`: the Markdown tables from a directory of result files.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use ssegate_bench::chunked::ChunkedDecoder;
use ssegate_bench::http::{head_end, parse_response, Framing, Url, MAX_HEAD};
use ssegate_bench::marker::{self, now_ns};
use ssegate_bench::params::MAX_WRITE;
use ssegate_bench::seq::{SeqChecker, SeqReport};
use ssegate_bench::{procfs, scrape, stats};
use ssegate_frame::{Decoder, DecoderOptions, Format, Item};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep_until, timeout, Instant};

use ssegate_bench::report;

#[derive(Debug, Parser)]
#[command(about = "Load generator for the ssegate benchmarks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Concurrent streams: latency, time to first event, events/s, CPU per event.
    Stream(StreamArgs),
    /// Idle streams with heartbeats: RSS per open stream, CPU for heartbeats.
    Idle(IdleArgs),
    /// Process start → ready time of a command.
    Ready(ReadyArgs),
    /// CPU of the system under test per GET of a URL (e.g. the admin /metrics), GETs one after another.
    Scrape(ScrapeArgs),
    /// Markdown tables from the result files of a run.
    Report(ReportArgs),
}

#[derive(Debug, clap::Args)]
struct Common {
    /// Stream URL (http://IP:PORT/path?query).
    #[arg(long)]
    url: String,
    /// Request method; POST sends `--body`.
    #[arg(long, default_value = "GET")]
    method: String,
    /// Request body for POST.
    #[arg(
        long,
        default_value = r#"{"model":"x","messages":[{"role":"user","content":"hi"}],"stream":true}"#
    )]
    body: String,
    /// Extra request header lines (`Name: value`), repeatable.
    #[arg(long)]
    header: Vec<String>,
    /// Number of concurrent streams.
    #[arg(long, default_value_t = 1)]
    streams: usize,
    /// Connections opened per second.
    #[arg(long, default_value_t = 1000.0, value_parser = positive)]
    ramp_rate: f64,
    /// PIDs of the system under test (CPU time and RSS are summed over them), repeatable.
    #[arg(long)]
    pid: Vec<u32>,
    /// PID of the mock upstream (its CPU is reported, to show it was not the bottleneck).
    #[arg(long)]
    mock_pid: Option<u32>,
    /// Seconds without any byte from the server before a stream counts as failed.
    #[arg(long, default_value_t = 15.0)]
    read_timeout: f64,
    /// Write the result as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Name of the system under test (e.g. `ssegate-ndjson`).
    #[arg(long, default_value = "target")]
    target: String,
    /// Name of the scenario (e.g. `paced-50`).
    #[arg(long, default_value = "scenario")]
    scenario: String,
    /// The target whose figures are the floor of this one (for added latency in the report).
    #[arg(long)]
    floor: Option<String>,
}

#[derive(Debug, clap::Args)]
struct StreamArgs {
    #[command(flatten)]
    common: Common,
    /// How the response body is framed: sse, ndjson, json-array, lines.
    #[arg(long, default_value = "sse")]
    parse: String,
    /// Messages each stream must deliver (sequence numbers 0..expect).
    #[arg(long)]
    expect: u64,
    /// Length of the measured window in seconds (after the ramp and the warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds after the ramp before measuring starts.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Scrape this URL (e.g. the admin /metrics) during the window.
    #[arg(long)]
    scrape: Option<String>,
    /// Seconds between scrapes.
    #[arg(long, default_value_t = 1.0, value_parser = positive)]
    scrape_interval: f64,
}

#[derive(Debug, clap::Args)]
struct IdleArgs {
    #[command(flatten)]
    common: Common,
    /// Seconds to wait after the last stream opened before sampling.
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
    /// Seconds to hold the streams open while counting heartbeats and CPU.
    #[arg(long, default_value_t = 10.0)]
    hold: f64,
}

#[derive(Debug, clap::Args)]
struct ReadyArgs {
    /// Admin address whose `/readyz` must answer 200.
    #[arg(long)]
    admin: String,
    /// A stream URL through the proxy: also time the first proxied event.
    #[arg(long)]
    probe: Option<String>,
    /// Starts to measure.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Write the result as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Name of the system under test.
    #[arg(long, default_value = "ssegate")]
    target: String,
    /// The command to start (after `--`).
    #[arg(last = true, required = true)]
    cmd: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct ScrapeArgs {
    /// URL to GET (http://IP:PORT/path), e.g. the admin `/metrics`.
    #[arg(long)]
    url: String,
    /// GETs, one after another.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    count: u64,
    /// PIDs whose CPU time is summed, repeatable.
    #[arg(long)]
    pid: Vec<u32>,
    /// Write the result as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Name of the system under test.
    #[arg(long, default_value = "ssegate")]
    target: String,
}

#[derive(Debug, clap::Args)]
struct ReportArgs {
    /// Directory of result files (`*.json`, `meta.json`).
    #[arg(long)]
    dir: PathBuf,
    /// Write the Markdown here too.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Stream(a) => run_local(run_streams(a)),
        Cmd::Idle(a) => run_local(run_idle(a)),
        Cmd::Ready(a) => run_ready(a),
        Cmd::Scrape(a) => run_local(async move {
            let result = scrape::cost(&Url::parse(&a.url)?, a.count, &a.pid, &a.target).await?;
            finish(&result, a.json.as_deref())
        }),
        Cmd::Report(a) => report::run(&a.dir, a.out.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a future on a single-threaded runtime with a `LocalSet` (all state is `Rc`).
fn run_local(fut: impl std::future::Future<Output = Result<(), String>>) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let local = tokio::task::LocalSet::new();
    rt.block_on(local.run_until(fut))
}

/// Seconds from the command line or arithmetic on them: negative and NaN give 0, anything above 10^9 s (an
/// infinite ramp, say) is cut there, so that neither `Duration` nor `Instant` arithmetic can panic.
fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.clamp(0.0, 1e9)).unwrap_or_default()
}

/// A rate or an interval that must be above zero (`--ramp-rate 0` would never open a stream, `--scrape-interval
/// 0` would scrape in a busy loop).
fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("{s:?} is not a number above 0")),
    }
}

/// Everything the streams of one run add up.
#[derive(Debug)]
struct Agg {
    latency: Histogram<u64>,
    ttfe: Histogram<u64>,
    events_window: u64,
    bytes_window: u64,
    events_total: u64,
    other_events: u64,
    heartbeats: u64,
    heartbeats_window: u64,
    decode_errors: u64,
    streams_started: u64,
    streams_completed: u64,
    streams_failed: u64,
    streams_open: u64,
    seq: SeqReport,
    errors: BTreeMap<String, u64>,
    error_samples: Vec<String>,
}

impl Agg {
    fn new() -> Self {
        Agg {
            latency: stats::histogram(),
            ttfe: stats::histogram(),
            events_window: 0,
            bytes_window: 0,
            events_total: 0,
            other_events: 0,
            heartbeats: 0,
            heartbeats_window: 0,
            decode_errors: 0,
            streams_started: 0,
            streams_completed: 0,
            streams_failed: 0,
            streams_open: 0,
            seq: SeqReport::default(),
            errors: BTreeMap::new(),
            error_samples: Vec::new(),
        }
    }

    fn error(&mut self, kind: &str, detail: String) {
        self.streams_failed += 1;
        *self.errors.entry(kind.to_string()).or_default() += 1;
        if self.error_samples.len() < 5 {
            self.error_samples.push(format!("{kind}: {detail}"));
        }
    }
}

/// The measured window (and the heartbeat-counting window of idle mode).
#[derive(Clone, Copy, Debug)]
struct Window {
    start: Instant,
    end: Instant,
}

impl Window {
    fn contains(&self, t: Instant) -> bool {
        t >= self.start && t < self.end
    }
}

/// What one stream needs to know.
#[derive(Debug)]
struct StreamCtx {
    url: Url,
    request: Vec<u8>,
    format: Format,
    expect: u64,
    read_timeout: Duration,
}

/// A stream failure: a short kind (the error table key) and a detail.
type StreamError = (&'static str, String);

/// Reads the response body incrementally: transfer framing → framing-core decoder → items.
struct BodyReader {
    framing: Framing,
    chunked: ChunkedDecoder,
    left: u64,
    body: BytesMut,
    decoder: Decoder,
    items: Vec<Item>,
}

impl BodyReader {
    fn new(framing: Framing, format: Format) -> Self {
        let opts = DecoderOptions { max_event_size: MAX_WRITE as usize, event_field: None, comments: true };
        BodyReader {
            framing,
            chunked: ChunkedDecoder::new(),
            left: match framing {
                Framing::Length(n) => n,
                _ => 0,
            },
            body: BytesMut::with_capacity(16 * 1024),
            decoder: Decoder::new(format, opts),
            items: Vec::new(),
        }
    }

    /// Feeds received bytes; the decoded items are in `self.items`. Returns true at the end of the body.
    fn feed(&mut self, data: &[u8]) -> Result<bool, StreamError> {
        let done = match self.framing {
            Framing::Chunked => {
                let body = &mut self.body;
                self.chunked
                    .feed(data, |b| body.extend_from_slice(b))
                    .map_err(|e| ("framing", e.to_string()))?;
                self.chunked.is_done()
            }
            Framing::Length(_) => {
                let take = self.left.min(data.len() as u64) as usize;
                self.body.extend_from_slice(&data[..take]);
                self.left -= take as u64;
                self.left == 0
            }
            Framing::Close => {
                self.body.extend_from_slice(data);
                false
            }
        };
        if !self.body.is_empty() {
            let chunk: Bytes = self.body.split().freeze();
            self.decoder.push(&chunk, &mut self.items);
        }
        if done {
            self.decoder.finish(&mut self.items);
        }
        Ok(done)
    }

    /// The connection closed: fine for a close-delimited body, an error otherwise.
    fn eof(&mut self) -> Result<(), StreamError> {
        if self.framing == Framing::Close {
            self.decoder.finish(&mut self.items);
            Ok(())
        } else {
            Err(("eof", "connection closed before the end of the body".into()))
        }
    }
}

/// Connects, sends the request and reads the response head. Returns the socket, the body reader and the
/// bytes after the head.
async fn open(ctx: &StreamCtx) -> Result<(TcpStream, BodyReader, BytesMut), StreamError> {
    let mut sock = timeout(ctx.read_timeout, TcpStream::connect(ctx.url.addr))
        .await
        .map_err(|_| ("connect", "timeout".to_string()))?
        .map_err(|e| ("connect", e.to_string()))?;
    sock.set_nodelay(true).map_err(|e| ("connect", e.to_string()))?;
    sock.write_all(&ctx.request).await.map_err(|e| ("write", e.to_string()))?;
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let end = loop {
        if let Some(end) = head_end(&buf) {
            break end;
        }
        if buf.len() > MAX_HEAD {
            return Err(("http", format!("no end of the response head in {} bytes", buf.len())));
        }
        let n = read(&mut sock, &mut buf, ctx.read_timeout).await?;
        if n == 0 {
            return Err(("eof", "connection closed before the response head".into()));
        }
    };
    let head = buf.split_to(end);
    let resp = parse_response(&head).map_err(|e| ("http", e))?;
    if resp.status != 200 {
        let _ = timeout(Duration::from_millis(200), sock.read_buf(&mut buf)).await;
        let body = String::from_utf8_lossy(&buf[..buf.len().min(300)]).into_owned();
        return Err((status_kind(resp.status), body));
    }
    Ok((sock, BodyReader::new(resp.body, ctx.format), buf))
}

fn status_kind(status: u16) -> &'static str {
    match status {
        400..=499 => "status 4xx",
        502 => "status 502",
        503 => "status 503",
        504 => "status 504",
        _ => "status other",
    }
}

async fn read(sock: &mut TcpStream, buf: &mut BytesMut, limit: Duration) -> Result<usize, StreamError> {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(16 * 1024);
    }
    match timeout(limit, sock.read_buf(buf)).await {
        Err(_) => Err(("timeout", format!("no data for {limit:?}"))),
        Ok(Err(e)) => Err(("read", e.to_string())),
        Ok(Ok(n)) => Ok(n),
    }
}

/// One stream from connect to the end of the body.
async fn one_stream(ctx: &StreamCtx, agg: &RefCell<Agg>, window: Window) -> Result<(), StreamError> {
    let started = Instant::now();
    agg.borrow_mut().streams_started += 1;
    let (mut sock, mut body, mut buf) = open(ctx).await?;
    let mut checker = SeqChecker::new(ctx.expect);
    let mut first = true;
    let result = loop {
        let recv_ns = now_ns();
        let now = Instant::now();
        let done = if buf.is_empty() { Ok(false) } else { body.feed(&buf) };
        let in_window = window.contains(now);
        {
            let mut a = agg.borrow_mut();
            if in_window {
                a.bytes_window += buf.len() as u64;
            }
            for item in body.items.drain(..) {
                match item {
                    Item::Event(ev) => match marker::find(&ev.data) {
                        Some((seq, sent)) => {
                            checker.push(seq);
                            a.events_total += 1;
                            if first {
                                first = false;
                                stats::record(&mut a.ttfe, (now - started).as_nanos() as u64);
                            }
                            if in_window {
                                a.events_window += 1;
                                stats::record(&mut a.latency, marker::latency_ns(sent, recv_ns));
                            }
                        }
                        None => a.other_events += 1,
                    },
                    Item::Comment(_) => a.heartbeats += 1,
                    Item::Retry(_) => {}
                    Item::Error(_) => a.decode_errors += 1,
                }
            }
        }
        buf.clear();
        match done {
            Ok(true) => break Ok(()),
            Ok(false) => {}
            Err(e) => break Err(e),
        }
        match read(&mut sock, &mut buf, ctx.read_timeout).await {
            Ok(0) => break body.eof(),
            Ok(_) => {}
            Err(e) => break Err(e),
        }
    };
    agg.borrow_mut().seq.add(&checker.report());
    result
}

fn request_bytes(c: &Common) -> Result<(Url, Vec<u8>), String> {
    let url = Url::parse(&c.url)?;
    let mut req = if c.method == "GET" {
        url.request("GET", None, &c.header)
    } else {
        url.request(&c.method, Some(c.body.len()), &c.header)
    };
    if c.method != "GET" {
        req.extend_from_slice(c.body.as_bytes());
    }
    Ok((url, req))
}

fn parse_format(name: &str) -> Result<Format, String> {
    match name {
        "sse" => Ok(Format::Sse),
        "ndjson" => Ok(Format::Ndjson),
        "json-array" => Ok(Format::JsonArray),
        "lines" => Ok(Format::Lines),
        _ => Err(format!("unknown --parse {name:?}: sse, ndjson, json-array or lines")),
    }
}

/// CPU seconds of the system under test, the mock and this process at one moment.
#[derive(Clone, Copy, Debug)]
struct CpuSample {
    at: Instant,
    proxy_ns: u64,
    mock_ns: u64,
    me_ns: u64,
}

fn cpu_sample(c: &Common) -> CpuSample {
    CpuSample {
        at: Instant::now(),
        proxy_ns: procfs::cpu_ns_all(&c.pid),
        mock_ns: c.mock_pid.map(|p| procfs::cpu_ns(p).unwrap_or(0)).unwrap_or(0),
        me_ns: procfs::cpu_ns(std::process::id()).unwrap_or(0),
    }
}

fn cpu_json(a: CpuSample, b: CpuSample, c: &Common) -> Value {
    let wall = (b.at - a.at).as_secs_f64().max(1e-9);
    let s = |x: u64, y: u64| y.saturating_sub(x) as f64 / 1e9;
    json!({
        "proxy_pids": c.pid,
        "proxy_cpu_s": s(a.proxy_ns, b.proxy_ns),
        "proxy_cpu_util": s(a.proxy_ns, b.proxy_ns) / wall,
        "mock_cpu_util": if c.mock_pid.is_some() { json!(s(a.mock_ns, b.mock_ns) / wall) } else { Value::Null },
        "loadgen_cpu_util": s(a.me_ns, b.me_ns) / wall,
    })
}

async fn run_streams(args: StreamArgs) -> Result<(), String> {
    let c = &args.common;
    if args.expect == 0 {
        return Err("--expect must be at least 1".into());
    }
    let (url, request) = request_bytes(c)?;
    let ctx = Rc::new(StreamCtx {
        url,
        request,
        format: parse_format(&args.parse)?,
        expect: args.expect,
        read_timeout: secs(c.read_timeout),
    });
    let agg = Rc::new(RefCell::new(Agg::new()));
    let t0 = Instant::now();
    let ramp = secs(c.streams as f64 / c.ramp_rate);
    let window =
        Window { start: t0 + ramp + secs(args.warmup), end: t0 + ramp + secs(args.warmup + args.duration) };
    // Workers: each runs streams back to back until the window is over.
    let mut workers = Vec::new();
    for i in 0..c.streams {
        let (ctx, agg) = (ctx.clone(), agg.clone());
        let start = t0 + secs(i as f64 / c.ramp_rate);
        workers.push(tokio::task::spawn_local(async move {
            sleep_until(start).await;
            loop {
                agg.borrow_mut().streams_open += 1;
                let r = one_stream(&ctx, &agg, window).await;
                let failed = {
                    let mut a = agg.borrow_mut();
                    a.streams_open -= 1;
                    match r {
                        Ok(()) => {
                            a.streams_completed += 1;
                            false
                        }
                        Err((kind, detail)) => {
                            a.error(kind, detail);
                            true
                        }
                    }
                };
                if failed {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                if Instant::now() >= window.end {
                    break;
                }
            }
        }));
    }
    // Scraper.
    let scrapes = Rc::new(RefCell::new((0u64, 0u64, 0u64)));
    if let Some(scrape) = &args.scrape {
        let url = Url::parse(scrape)?;
        let scrapes = scrapes.clone();
        let every = secs(args.scrape_interval);
        tokio::task::spawn_local(async move {
            let mut at = window.start;
            while at < window.end {
                sleep_until(at).await;
                match scrape::get_once(&url).await {
                    Ok(n) => {
                        let mut s = scrapes.borrow_mut();
                        s.0 += 1;
                        s.1 += n as u64;
                    }
                    Err(_) => scrapes.borrow_mut().2 += 1,
                }
                at += every;
            }
        });
    }
    sleep_until(window.start).await;
    let cpu_a = cpu_sample(c);
    let rss_a = procfs::rss_kib_all(&c.pid);
    let open_at_start = agg.borrow().streams_open;
    sleep_until(window.end).await;
    let cpu_b = cpu_sample(c);
    let rss_b = procfs::rss_kib_all(&c.pid);
    // Let the streams in flight finish (bounded by the read timeout per read and the stream length).
    let deadline = Instant::now() + secs(c.read_timeout * 2.0 + 30.0);
    let mut aborted = 0;
    for w in workers {
        let abort = w.abort_handle();
        if timeout(deadline.saturating_duration_since(Instant::now()), w).await.is_err() {
            abort.abort();
            aborted += 1;
        }
    }
    let a = agg.borrow();
    let wall = (window.end - window.start).as_secs_f64();
    let cpu = cpu_json(cpu_a, cpu_b, c);
    let proxy_cpu_s = cpu["proxy_cpu_s"].as_f64().unwrap_or(0.0);
    let ev = a.events_window as f64;
    let (scrape_ok, scrape_bytes, scrape_err) = *scrapes.borrow();
    let result = json!({
        "kind": "stream",
        "target": c.target,
        "scenario": args.common.scenario,
        "floor": c.floor,
        "url": c.url,
        "method": c.method,
        "parse": args.parse,
        "streams": c.streams,
        "expect": args.expect,
        "ramp_rate": c.ramp_rate,
        "warmup_s": args.warmup,
        "window_s": wall,
        "streams_open_at_window_start": open_at_start,
        "events_window": a.events_window,
        "events_per_s": ev / wall,
        "bytes_per_s": a.bytes_window as f64 / wall,
        "events_total": a.events_total,
        "other_events": a.other_events,
        "heartbeats": a.heartbeats,
        "decode_errors": a.decode_errors,
        "streams_started": a.streams_started,
        "streams_completed": a.streams_completed,
        "streams_failed": a.streams_failed,
        "streams_aborted": aborted,
        "errors": a.errors,
        "error_samples": a.error_samples,
        "seq": {
            "received": a.seq.received, "lost": a.seq.lost, "duplicated": a.seq.duplicated,
            "reordered": a.seq.reordered, "unexpected": a.seq.unexpected,
        },
        "latency": stats::summary(&a.latency),
        "ttfe": stats::summary(&a.ttfe),
        "cpu": cpu,
        "cpu_us_per_event": if ev > 0.0 && !c.pid.is_empty() { json!(proxy_cpu_s * 1e6 / ev) } else { Value::Null },
        "events_per_cpu_s": if proxy_cpu_s > 0.0 { json!(ev / proxy_cpu_s) } else { Value::Null },
        "rss_kib": { "window_start": rss_a, "window_end": rss_b },
        "loadavg_end": loadavg(),
        "scrape": { "url": args.scrape, "ok": scrape_ok, "failed": scrape_err, "bytes": scrape_bytes },
    });
    finish(&result, c.json.as_deref())
}

/// The 1-minute load average (other work on the machine during the run).
fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// Prints a human summary on stderr and the JSON on stdout (and into `path`).
fn finish(result: &Value, path: Option<&std::path::Path>) -> Result<(), String> {
    let text = serde_json::to_string_pretty(result).map_err(|e| e.to_string())?;
    if let Some(path) = path {
        std::fs::write(path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    eprintln!("{}", report::human(result));
    println!("{text}");
    Ok(())
}

async fn run_idle(args: IdleArgs) -> Result<(), String> {
    let c = &args.common;
    let (url, request) = request_bytes(c)?;
    let ctx = Rc::new(StreamCtx {
        url,
        request,
        format: Format::Sse,
        expect: 0,
        read_timeout: secs(c.read_timeout),
    });
    let agg = Rc::new(RefCell::new(Agg::new()));
    let rss_base = procfs::rss_kib_all(&c.pid);
    let t0 = Instant::now();
    // The heartbeat window is set once every stream is open.
    let window = Rc::new(RefCell::new(Window { start: t0 + secs(1e6), end: t0 + secs(1e6) }));
    let mut tasks = Vec::new();
    for i in 0..c.streams {
        let (ctx, agg, window) = (ctx.clone(), agg.clone(), window.clone());
        let start = t0 + secs(i as f64 / c.ramp_rate);
        tasks.push(tokio::task::spawn_local(async move {
            sleep_until(start).await;
            agg.borrow_mut().streams_started += 1;
            let r = idle_stream(&ctx, &agg, &window).await;
            let mut a = agg.borrow_mut();
            match r {
                Ok(()) => {
                    a.streams_open -= 1;
                    a.error("ended", "the stream ended while it should stay open".into())
                }
                Err((kind, detail)) => a.error(kind, detail),
            }
        }));
    }
    sleep_until(t0 + secs(c.streams as f64 / c.ramp_rate)).await;
    let give_up = Instant::now() + secs(30.0);
    loop {
        let settled = {
            let a = agg.borrow();
            a.streams_open + a.streams_failed >= c.streams as u64
        };
        if settled || Instant::now() > give_up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let opened_in = t0.elapsed().as_secs_f64();
    tokio::time::sleep(secs(args.settle)).await;
    let rss_open = procfs::rss_kib_all(&c.pid);
    let open = agg.borrow().streams_open;
    let cpu_a = cpu_sample(c);
    let start = Instant::now();
    *window.borrow_mut() = Window { start, end: start + secs(args.hold) };
    sleep_until(start + secs(args.hold)).await;
    let cpu_b = cpu_sample(c);
    let rss_end = procfs::rss_kib_all(&c.pid);
    let open_end = agg.borrow().streams_open;
    for t in &tasks {
        t.abort();
    }
    let a = agg.borrow();
    let cpu = cpu_json(cpu_a, cpu_b, c);
    let cpu_s = cpu["proxy_cpu_s"].as_f64().unwrap_or(0.0);
    let hb = a.heartbeats_window;
    let per_stream =
        if open > 0 { json!(rss_open.saturating_sub(rss_base) as f64 / open as f64) } else { Value::Null };
    let result = json!({
        "kind": "idle",
        "target": c.target,
        "scenario": c.scenario,
        "url": c.url,
        "streams": c.streams,
        "ramp_rate": c.ramp_rate,
        "opened_in_s": opened_in,
        "streams_open": open,
        "streams_open_at_end": open_end,
        "streams_failed": a.streams_failed,
        "errors": a.errors,
        "error_samples": a.error_samples,
        "rss_kib": { "base": rss_base, "open": rss_open, "end": rss_end },
        "kib_per_stream": per_stream,
        "hold_s": args.hold,
        "heartbeats_window": hb,
        "heartbeats_per_s": hb as f64 / args.hold.max(1e-9),
        "heartbeats_total": a.heartbeats,
        "events": a.events_total + a.other_events,
        "cpu": cpu,
        "cpu_us_per_heartbeat": if hb > 0 && !c.pid.is_empty() { json!(cpu_s * 1e6 / hb as f64) } else { Value::Null },
    });
    finish(&result, c.json.as_deref())
}

/// Opens a stream and reads heartbeats until the task is aborted (`Ok` if the server ends it).
async fn idle_stream(
    ctx: &StreamCtx,
    agg: &RefCell<Agg>,
    window: &RefCell<Window>,
) -> Result<(), StreamError> {
    let (mut sock, mut body, mut buf) = open(ctx).await?;
    agg.borrow_mut().streams_open += 1;
    // Idle streams may stay silent longer than the read timeout (nginx sends no heartbeats).
    let forever = Duration::from_secs(3600);
    loop {
        let now = Instant::now();
        let done = if buf.is_empty() { false } else { body.feed(&buf)? };
        buf.clear();
        let in_window = window.borrow().contains(now);
        {
            let mut a = agg.borrow_mut();
            for item in body.items.drain(..) {
                match item {
                    Item::Comment(_) => {
                        a.heartbeats += 1;
                        if in_window {
                            a.heartbeats_window += 1;
                        }
                    }
                    Item::Event(_) => a.events_total += 1,
                    _ => {}
                }
            }
        }
        if done {
            return Ok(());
        }
        if read(&mut sock, &mut buf, forever).await? == 0 {
            return body.eof().and(Ok(()));
        }
    }
}

/// Start → ready, `--runs` times.
fn run_ready(args: ReadyArgs) -> Result<(), String> {
    use std::io::{Read, Write};
    use std::net::TcpStream as StdStream;
    use std::time::Instant as StdInstant;

    fn get(addr: &str, target: &str, until: &[u8]) -> bool {
        let Ok(mut s) = StdStream::connect(addr) else { return false };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let req = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        if s.write_all(req.as_bytes()).is_err() {
            return false;
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            if !got.starts_with(b"HTTP/1.1 200") && got.len() >= 12 {
                return false;
            }
            if memchr::memmem::find(&got, until).is_some() {
                return got.starts_with(b"HTTP/1.1 200");
            }
            if got.len() > MAX_HEAD {
                return false; // a probe answer is small: `until` is not coming
            }
        }
        got.starts_with(b"HTTP/1.1 200") && memchr::memmem::find(&got, until).is_some()
    }

    let probe = args.probe.as_deref().map(Url::parse).transpose()?;
    let (mut ready, mut first) = (Vec::new(), Vec::new());
    let mut failures = 0;
    for _ in 0..args.runs {
        let t0 = StdInstant::now();
        let mut child = std::process::Command::new(&args.cmd[0])
            .args(&args.cmd[1..])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", args.cmd[0]))?;
        let mut ok = false;
        while t0.elapsed() < Duration::from_secs(10) {
            if get(&args.admin, "/readyz", b"ready") {
                ok = true;
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                eprintln!("loadgen ready: {} exited early: {status}", args.cmd[0]);
                break;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        if ok {
            ready.push(t0.elapsed().as_secs_f64() * 1e3);
            if let Some(p) = &probe {
                let addr = p.addr.to_string();
                while t0.elapsed() < Duration::from_secs(10) {
                    if get(&addr, &p.target, b"@@") {
                        first.push(t0.elapsed().as_secs_f64() * 1e3);
                        break;
                    }
                    std::thread::sleep(Duration::from_micros(500));
                }
            }
        } else {
            failures += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        std::thread::sleep(Duration::from_millis(50));
    }
    let summary = |v: &[f64]| {
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(0.0, f64::max);
        json!({ "runs": v.len(), "median_ms": stats::median(v), "min_ms": if v.is_empty() { Value::Null } else { json!(min) }, "max_ms": max, "all_ms": v })
    };
    let result = json!({
        "kind": "ready",
        "target": args.target,
        "scenario": "ready",
        "command": args.cmd.join(" "),
        "failures": failures,
        "readyz": summary(&ready),
        "first_event": summary(&first),
    });
    finish(&result, args.json.as_deref())
}
