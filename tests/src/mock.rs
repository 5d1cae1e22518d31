//! A scripted raw HTTP/1.1 upstream.
//!
//! The mock parses requests itself and writes responses with plain socket writes, so a test controls the
//! exact bytes, how they are cut into writes (and HTTP chunks) and when they are sent. hyper is not used here
//! on purpose: it would re-chunk.
//!
//! Every request is recorded ([`RecordedRequest`]); a reader task watches each connection and counts when
//! the peer (the gateway) closes it, so tests can assert that a client disconnect cancels the upstream.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;

/// One step of a response script.
#[derive(Clone, Debug)]
pub enum Step {
    /// One socket write. With chunked framing the bytes are one HTTP chunk (size line, data and CRLF in the
    /// same write). Empty bytes are ignored (an empty chunk would end the body).
    Send(Bytes),
    /// Pause this many milliseconds.
    Sleep(u64),
    /// Wait until the test calls [`Gate::open`] (once per `Wait`).
    Wait(Gate),
    /// Close the connection with an RST (SO_LINGER 0), mid-body.
    Reset,
    /// Close the connection with a FIN without terminating the body.
    Close,
    /// Terminate the body (`0\r\n\r\n` when chunked; a FIN when close-delimited; nothing with
    /// Content-Length). The connection stays open for the next request (keep-alive) unless close-delimited.
    End,
}

impl Step {
    /// `Step::Send` from anything byte-like.
    pub fn send(bytes: impl AsRef<[u8]>) -> Step {
        Step::Send(Bytes::copy_from_slice(bytes.as_ref()))
    }
}

/// A gate the test opens to let a [`Step::Wait`] proceed.
#[derive(Clone, Debug)]
pub struct Gate(Arc<Semaphore>);

impl Default for Gate {
    fn default() -> Self {
        Gate(Arc::new(Semaphore::new(0)))
    }
}

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    /// Lets one waiting (or the next) `Step::Wait` on this gate pass.
    pub fn open(&self) {
        self.0.add_permits(1);
    }

    /// Lets `n` waiting (or next) `Step::Wait`s on this gate pass.
    pub fn open_many(&self, n: usize) {
        self.0.add_permits(n);
    }

    async fn pass(&self) {
        if let Ok(permit) = self.0.acquire().await {
            permit.forget();
        }
    }
}

/// How the response body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `Transfer-Encoding: chunked`; each `Send` is one chunk.
    Chunked,
    /// `Content-Length` = the sum of all `Send`s of the script.
    ContentLength,
    /// Neither header; the body ends when the connection closes (`End` closes it).
    CloseDelimited,
}

/// A scripted response.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    /// Extra headers in order (Content-Type included); the framing header is added by the mock.
    pub headers: Vec<(String, String)>,
    pub framing: Framing,
    /// Delay before the response head is written (a slow upstream).
    pub head_delay: Duration,
    /// Whether the mock writes the response head; when false, the steps write raw bytes from the start
    /// (e.g. a garbage head, or a reset before any head).
    pub head: bool,
    pub steps: Vec<Step>,
}

impl Reply {
    /// `200`, the given Content-Type, chunked, running `steps`. A script that ends without `End`, `Close` or
    /// `Reset` keeps the connection open until the peer closes it.
    pub fn stream(content_type: &str, steps: Vec<Step>) -> Reply {
        Reply {
            status: 200,
            headers: vec![("Content-Type".into(), content_type.into())],
            framing: Framing::Chunked,
            head_delay: Duration::ZERO,
            head: true,
            steps,
        }
    }

    /// A complete response with a Content-Length body sent in one write.
    pub fn full(status: u16, content_type: &str, body: impl AsRef<[u8]>) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            framing: Framing::ContentLength,
            head_delay: Duration::ZERO,
            head: true,
            steps: vec![Step::send(body), Step::End],
        }
    }

    pub fn with_status(mut self, status: u16) -> Reply {
        self.status = status;
        self
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn with_framing(mut self, framing: Framing) -> Reply {
        self.framing = framing;
        self
    }

    pub fn with_head_delay(mut self, delay: Duration) -> Reply {
        self.head_delay = delay;
        self
    }

    /// Raw steps with no response head written by the mock (close-delimited framing for `Send`s).
    pub fn raw(steps: Vec<Step>) -> Reply {
        Reply {
            status: 0,
            headers: Vec::new(),
            framing: Framing::CloseDelimited,
            head_delay: Duration::ZERO,
            head: false,
            steps,
        }
    }
}

/// A request as the mock received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    pub version: String,
    /// Header names as sent (case preserved), in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked when it was sent chunked.
    pub body: Vec<u8>,
    /// Whether the body came with `Transfer-Encoding: chunked`.
    pub chunked: bool,
}

impl RecordedRequest {
    /// The first header of this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every header of this name (case-insensitive).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }
}

type Handler = dyn Fn(&RecordedRequest) -> Reply + Send + Sync;

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<RecordedRequest>>,
    send_times: Mutex<Vec<Instant>>,
    peer_closed_at: Mutex<Vec<Instant>>,
    sni: Mutex<Vec<Option<String>>>,
    connections: AtomicUsize,
}

/// A running mock upstream; stops accepting when dropped.
pub struct MockUpstream {
    addr: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    requests_rx: watch::Receiver<usize>,
    closed_rx: watch::Receiver<usize>,
    accept_task: JoinHandle<()>,
}

impl std::fmt::Debug for MockUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockUpstream").field("addr", &self.addr).finish()
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

struct Signals {
    requests: watch::Sender<usize>,
    closed: watch::Sender<usize>,
}

impl MockUpstream {
    /// Answers every request with a clone of `reply`.
    pub async fn serve(reply: Reply) -> MockUpstream {
        MockUpstream::start(move |_| reply.clone()).await
    }

    /// Answers each request with what `handler` returns for it.
    pub async fn start(handler: impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static) -> MockUpstream {
        MockUpstream::start_inner(None, handler).await
    }

    /// Like [`MockUpstream::serve`], over TLS with `cert` (no ALPN: HTTP/1.1).
    pub async fn serve_tls(cert: &crate::tls::TestCert, reply: Reply) -> MockUpstream {
        MockUpstream::start_tls(cert, move |_| reply.clone()).await
    }

    /// Like [`MockUpstream::start`], over TLS with `cert` (no ALPN: HTTP/1.1).
    pub async fn start_tls(
        cert: &crate::tls::TestCert,
        handler: impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static,
    ) -> MockUpstream {
        MockUpstream::start_inner(Some(Arc::new(cert.server_config())), handler).await
    }

    async fn start_inner(
        tls: Option<Arc<rustls::ServerConfig>>,
        handler: impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static,
    ) -> MockUpstream {
        let is_tls = tls.is_some();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("mock: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("mock: local_addr");
        let shared = Arc::new(Shared::default());
        let (req_tx, requests_rx) = watch::channel(0usize);
        let (closed_tx, closed_rx) = watch::channel(0usize);
        let signals = Arc::new(Signals { requests: req_tx, closed: closed_tx });
        let handler: Arc<Handler> = Arc::new(handler);
        let task_shared = shared.clone();
        let accept_task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                task_shared.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve_conn(
                    stream,
                    tls.clone(),
                    task_shared.clone(),
                    signals.clone(),
                    handler.clone(),
                ));
            }
        });
        MockUpstream { addr, tls: is_tls, shared, requests_rx, closed_rx, accept_task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (`https://` for a TLS mock).
    pub fn url(&self) -> String {
        format!("{}://{}", if self.tls { "https" } else { "http" }, self.addr)
    }

    /// The TLS server name (SNI) each TLS connection asked for, in accept order (`None`: no SNI).
    pub fn sni(&self) -> Vec<Option<String>> {
        self.shared.sni.lock().unwrap().clone()
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// How many TCP connections were accepted.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// When each `Send` step was written, in order (all connections).
    pub fn send_times(&self) -> Vec<Instant> {
        self.shared.send_times.lock().unwrap().clone()
    }

    /// How many connections the peer (the gateway) has closed so far.
    pub fn peer_closed(&self) -> usize {
        *self.closed_rx.borrow()
    }

    /// When the peer closed each connection it closed.
    pub fn peer_closed_at(&self) -> Vec<Instant> {
        self.shared.peer_closed_at.lock().unwrap().clone()
    }

    /// Waits until `n` requests have arrived; false if not within `within`.
    pub async fn wait_requests(&self, n: usize, within: Duration) -> bool {
        let mut rx = self.requests_rx.clone();
        let ok = tokio::time::timeout(within, rx.wait_for(|c| *c >= n)).await.is_ok();
        ok
    }

    /// Waits until the peer has closed `n` connections; false if not within `within`.
    pub async fn wait_peer_closed(&self, n: usize, within: Duration) -> bool {
        let mut rx = self.closed_rx.clone();
        let ok = tokio::time::timeout(within, rx.wait_for(|c| *c >= n)).await.is_ok();
        ok
    }
}

/// `http://127.0.0.1:PORT` where nothing listens: a port reserved (bound, never listening: connections are
/// refused) for the rest of the test process, so no mock of a parallel test can come to listen there.
pub fn dead_upstream_url() -> String {
    static HELD: std::sync::Mutex<Vec<crate::ReservedAddr>> = std::sync::Mutex::new(Vec::new());
    let r = crate::reserve_addr();
    let url = format!("http://{}", r.addr());
    HELD.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(r);
    url
}

/// Gzip `messages` as one gzip stream, cut into pieces: one piece per message (each ending with a sync
/// flush, so it decompresses on its own) plus a last piece with the gzip trailer.
pub fn gzip_pieces(messages: &[&[u8]]) -> Vec<Bytes> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut pieces = Vec::new();
    for m in messages {
        enc.write_all(m).unwrap();
        enc.flush().unwrap();
        pieces.push(Bytes::from(std::mem::take(enc.get_mut())));
    }
    pieces.push(Bytes::from(enc.finish().unwrap()));
    pieces.retain(|p| !p.is_empty());
    pieces
}

enum After {
    KeepAlive,
    Closed,
    Reset,
}

async fn serve_conn(
    tcp: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    shared: Arc<Shared>,
    signals: Arc<Signals>,
    handler: Arc<Handler>,
) {
    let _ = tcp.set_nodelay(true);
    // A second descriptor of the same socket, to set SO_LINGER 0 for `Reset` after the stream is split.
    let ctl = socket2::SockRef::from(&tcp).try_clone().ok();
    match tls {
        None => serve_io(tcp, ctl, shared, signals, handler).await,
        Some(cfg) => match tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await {
            Ok(stream) => {
                let sni = stream.get_ref().1.server_name().map(str::to_string);
                shared.sni.lock().unwrap().push(sni);
                serve_io(stream, ctl, shared, signals, handler).await
            }
            Err(e) => eprintln!("mock upstream: TLS handshake failed: {e}"),
        },
    }
}

async fn serve_io<S>(
    io: S,
    ctl: Option<socket2::Socket>,
    shared: Arc<Shared>,
    signals: Arc<Signals>,
    handler: Arc<Handler>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, mut wr) = tokio::io::split(io);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (closed_tx, closed_rx) = watch::channel(false);
    let mut reader = tokio::spawn(read_loop(rd, tx, shared.clone(), signals.clone(), closed_tx));
    while let Some(req) = rx.recv().await {
        let reply = handler(&req);
        shared.requests.lock().unwrap().push(req);
        signals.requests.send_modify(|n| *n += 1);
        match run_reply(&mut wr, &reply, &shared, closed_rx.clone()).await {
            Ok(After::KeepAlive) => continue,
            Ok(After::Closed) => break,
            Ok(After::Reset) => {
                if let Some(ctl) = &ctl {
                    let _ = ctl.set_linger(Some(Duration::ZERO));
                }
                break;
            }
            Err(_) => {
                // A failed write means the peer closed or reset the connection; the reader may not have
                // noticed yet (it must not be aborted before it records that).
                match tokio::time::timeout(Duration::from_secs(2), &mut reader).await {
                    Ok(_) => return,
                    Err(_) => eprintln!("mock upstream: a write failed but the reader saw no close"),
                }
                break;
            }
        }
    }
    // Close for real: the reader holds the read half.
    if !reader.is_finished() {
        reader.abort();
    }
    let _ = reader.await;
    drop(wr);
    drop(ctl);
}

/// Runs one scripted reply.
async fn run_reply<W: AsyncWrite>(
    wr: &mut WriteHalf<W>,
    reply: &Reply,
    shared: &Shared,
    peer_closed: watch::Receiver<bool>,
) -> io::Result<After> {
    if !reply.head_delay.is_zero() {
        tokio::select! {
            _ = tokio::time::sleep(reply.head_delay) => {}
            _ = wait_closed(&peer_closed) => return Ok(After::Closed),
        }
    }
    if reply.head {
        write_head(wr, reply).await?;
    }
    run_steps(wr, reply, shared, peer_closed).await
}

async fn wait_closed(rx: &watch::Receiver<bool>) {
    let mut rx = rx.clone();
    let _ = rx.wait_for(|c| *c).await;
}

async fn write_head<W: AsyncWrite>(wr: &mut WriteHalf<W>, reply: &Reply) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    match reply.framing {
        Framing::Chunked => head.push_str("Transfer-Encoding: chunked\r\n"),
        Framing::ContentLength => {
            let len: usize =
                reply.steps.iter().map(|s| if let Step::Send(b) = s { b.len() } else { 0 }).sum();
            head.push_str(&format!("Content-Length: {len}\r\n"));
        }
        Framing::CloseDelimited => head.push_str("Connection: close\r\n"),
    }
    head.push_str("\r\n");
    write_all(wr, head.as_bytes()).await
}

async fn run_steps<W: AsyncWrite>(
    wr: &mut WriteHalf<W>,
    reply: &Reply,
    shared: &Shared,
    peer_closed: watch::Receiver<bool>,
) -> io::Result<After> {
    for step in &reply.steps {
        if *peer_closed.borrow() {
            // The gateway went away: an upstream whose client left stops producing.
            return Ok(After::Closed);
        }
        match step {
            Step::Send(b) if b.is_empty() => {}
            Step::Send(b) => {
                let mut buf = Vec::with_capacity(b.len() + 16);
                if reply.framing == Framing::Chunked {
                    buf.extend_from_slice(format!("{:x}\r\n", b.len()).as_bytes());
                    buf.extend_from_slice(b);
                    buf.extend_from_slice(b"\r\n");
                } else {
                    buf.extend_from_slice(b);
                }
                write_all(wr, &buf).await?;
                shared.send_times.lock().unwrap().push(Instant::now());
            }
            Step::Sleep(ms) => {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(*ms)) => {}
                    _ = wait_closed(&peer_closed) => return Ok(After::Closed),
                }
            }
            Step::Wait(gate) => {
                tokio::select! {
                    _ = gate.pass() => {}
                    _ = wait_closed(&peer_closed) => return Ok(After::Closed),
                }
            }
            Step::Reset => return Ok(After::Reset),
            Step::Close => return Ok(After::Closed),
            Step::End => {
                return match reply.framing {
                    Framing::Chunked => {
                        write_all(wr, b"0\r\n\r\n").await?;
                        Ok(After::KeepAlive)
                    }
                    Framing::ContentLength => Ok(After::KeepAlive),
                    Framing::CloseDelimited => Ok(After::Closed),
                };
            }
        }
    }
    // No terminating step: hold the connection until the peer closes it.
    wait_closed(&peer_closed).await;
    Ok(After::Closed)
}

async fn read_loop<R: AsyncRead>(
    mut rd: ReadHalf<R>,
    tx: mpsc::UnboundedSender<RecordedRequest>,
    shared: Arc<Shared>,
    signals: Arc<Signals>,
    closed_tx: watch::Sender<bool>,
) {
    let mut buf: Vec<u8> = Vec::new();
    let mut tmp = vec![0u8; 64 * 1024];
    'outer: loop {
        loop {
            match parse_request(&buf) {
                Ok(Some((req, used))) => {
                    buf.drain(..used);
                    let _ = tx.send(req);
                }
                Ok(None) => break,
                Err(e) => {
                    eprintln!("mock upstream: unparsable request ({e}): {}", crate::show(&buf));
                    break 'outer;
                }
            }
        }
        match rd.read(&mut tmp).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
    shared.peer_closed_at.lock().unwrap().push(Instant::now());
    let _ = closed_tx.send(true);
    signals.closed.send_modify(|n| *n += 1);
}

/// One write of `buf` (as far as the socket allows), then a flush (one TLS record batch for TLS).
async fn write_all<W: AsyncWrite>(wr: &mut WriteHalf<W>, buf: &[u8]) -> io::Result<()> {
    wr.write_all(buf).await?;
    wr.flush().await
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses one complete request from the front of `buf`: `Ok(None)` when more bytes are needed.
fn parse_request(buf: &[u8]) -> Result<Option<(RecordedRequest, usize)>, String> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else { return Ok(None) };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|e| e.to_string())?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("bad request line {request_line:?}"));
    };
    let mut headers = Vec::new();
    for line in lines {
        let (k, v) = line.split_once(':').ok_or_else(|| format!("bad header line {line:?}"))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut req = RecordedRequest {
        method: method.into(),
        target: target.into(),
        version: version.into(),
        headers,
        body: Vec::new(),
        chunked: false,
    };
    let mut pos = head_end + 4;
    let te_chunked =
        req.header_all("transfer-encoding").iter().any(|v| v.to_ascii_lowercase().contains("chunked"));
    if te_chunked {
        req.chunked = true;
        loop {
            let Some(line_end) = find(&buf[pos..], b"\r\n") else { return Ok(None) };
            let size_line = std::str::from_utf8(&buf[pos..pos + line_end]).map_err(|e| e.to_string())?;
            let size_hex = size_line.split(';').next().unwrap_or("").trim();
            let size =
                usize::from_str_radix(size_hex, 16).map_err(|e| format!("chunk size {size_line:?}: {e}"))?;
            pos += line_end + 2;
            if size == 0 {
                // Trailers until an empty line.
                loop {
                    let Some(end) = find(&buf[pos..], b"\r\n") else { return Ok(None) };
                    pos += end + 2;
                    if end == 0 {
                        return Ok(Some((req, pos)));
                    }
                }
            }
            if buf.len() < pos + size + 2 {
                return Ok(None);
            }
            req.body.extend_from_slice(&buf[pos..pos + size]);
            pos += size + 2;
        }
    } else if let Some(cl) = req.header("content-length") {
        let n: usize = cl.parse().map_err(|_| format!("bad content-length {cl:?}"))?;
        if buf.len() < pos + n {
            return Ok(None);
        }
        req.body = buf[pos..pos + n].to_vec();
        pos += n;
    }
    Ok(Some((req, pos)))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_chunked_and_length_bodies() {
        let raw = b"POST /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n\
Transfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n1;ext=1\r\n!\r\n0\r\n\r\n";
        let (r1, used) = parse_request(raw).unwrap().unwrap();
        assert_eq!((r1.method.as_str(), r1.target.as_str(), &r1.body[..]), ("POST", "/a?b=1", &b"abc"[..]));
        let (r2, used2) = parse_request(&raw[used..]).unwrap().unwrap();
        assert_eq!(&r2.body[..], b"hi!");
        assert_eq!(used + used2, raw.len());
        assert!(parse_request(&raw[..raw.len() - 1][used..]).unwrap().is_none());
    }

    #[test]
    fn gzip_pieces_decode_back() {
        use std::io::Read;
        let pieces = gzip_pieces(&[b"hello ", b"world"]);
        let all: Vec<u8> = pieces.concat();
        let mut out = String::new();
        flate2::read::GzDecoder::new(&all[..]).read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello world");
    }
}
