//! Clients: a raw HTTP/1.1 client over a plain `TcpStream` (exact bytes, incremental chunked decoding), and
//! h2c (prior knowledge) / TLS + h2 clients on hyper. All of them produce a [`Response`] whose body is read
//! incrementally, with the arrival time of every piece.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A byte stream an HTTP/1.1 exchange runs over (plain TCP or TLS).
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + std::fmt::Debug> Io for T {}

type BoxIo = Box<dyn Io>;

use crate::show;

/// How a response body ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// Properly: the chunked terminator, the full Content-Length, or an h2 END_STREAM.
    Clean,
    /// The connection closed (close-delimited bodies end like this; for chunked bodies it is a truncation).
    Eof,
    /// A read error (e.g. a connection reset, an h2 RST_STREAM).
    Error(String),
}

#[derive(Debug)]
enum ChunkState {
    Size,
    Data(usize),
    DataCrlf,
    Trailers,
}

#[derive(Debug)]
enum H1Framing {
    Chunked(ChunkState),
    Length(usize),
    Close,
}

#[derive(Debug)]
struct H1Body {
    stream: BoxIo,
    raw: Vec<u8>,
    framing: H1Framing,
}

enum Source {
    H1(H1Body),
    H2 { body: Incoming, _sender: Box<dyn std::any::Any + Send> },
    Done,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::H1(_) => f.write_str("H1"),
            Source::H2 { .. } => f.write_str("H2"),
            Source::Done => f.write_str("Done"),
        }
    }
}

/// A response being read. Body bytes accumulate in [`Response::body`]; the reading helpers
/// ([`Response::read_until`], [`Response::next_block`], ...) consume from a cursor.
#[derive(Debug)]
pub struct Response {
    /// `HTTP/1.1`, `HTTP/1.0` or `HTTP/2`.
    pub version: String,
    pub status: u16,
    /// Header names as received (h1 keeps case; h2 is lowercase), in order.
    pub headers: Vec<(String, String)>,
    /// The raw response head (h1 only).
    pub raw_head: Vec<u8>,
    body: Vec<u8>,
    cursor: usize,
    /// (arrival time, body length after that arrival)
    arrivals: Vec<(Instant, usize)>,
    end: Option<End>,
    source: Source,
    /// For a reused h1 connection: the stream after a cleanly ended body.
    leftover_conn: Option<(BoxIo, Vec<u8>, SocketAddr)>,
    peer: Option<SocketAddr>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    /// The body bytes received so far (all of them, regardless of the cursor).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// How the body ended, once it has.
    pub fn end(&self) -> Option<&End> {
        self.end.as_ref()
    }

    /// When the body byte at `offset` arrived.
    pub fn arrival_of(&self, offset: usize) -> Option<Instant> {
        self.arrivals.iter().find(|(_, len)| *len > offset).map(|(t, _)| *t)
    }

    /// Every arrival: (time, body length after it).
    pub fn arrivals(&self) -> &[(Instant, usize)] {
        &self.arrivals
    }

    /// Reads the next piece of the body (one socket read / one h2 frame). False once the body has ended.
    pub async fn fill(&mut self) -> bool {
        if self.end.is_some() {
            return false;
        }
        let before = self.body.len();
        match &mut self.source {
            Source::Done => return false,
            Source::H1(h1) => {
                loop {
                    let progressed = h1_decode(h1, &mut self.body, &mut self.end);
                    if self.end.is_some() || progressed {
                        break;
                    }
                    let mut tmp = [0u8; 16 * 1024];
                    match h1.stream.read(&mut tmp).await {
                        Ok(0) => {
                            self.end = Some(End::Eof);
                            break;
                        }
                        Ok(n) => h1.raw.extend_from_slice(&tmp[..n]),
                        Err(e) => {
                            self.end = Some(End::Error(e.to_string()));
                            break;
                        }
                    }
                }
                if self.end == Some(End::Clean) {
                    if let Source::H1(h1) = std::mem::replace(&mut self.source, Source::Done) {
                        self.leftover_conn = self.peer.map(|p| (h1.stream, h1.raw, p));
                    }
                }
            }
            Source::H2 { body, .. } => match body.frame().await {
                None => self.end = Some(End::Clean),
                Some(Err(e)) => self.end = Some(End::Error(format!("{e:?}"))),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.body.extend_from_slice(&data);
                    }
                }
            },
        }
        if self.body.len() > before {
            self.arrivals.push((Instant::now(), self.body.len()));
        }
        true
    }

    /// Reads until the unconsumed body contains `pat`; returns the bytes through `pat` and consumes them.
    /// `None` if the body ends first (nothing consumed).
    pub async fn try_read_until(&mut self, pat: &[u8]) -> Option<Vec<u8>> {
        loop {
            if let Some(i) = find(&self.body[self.cursor..], pat) {
                let out = self.body[self.cursor..self.cursor + i + pat.len()].to_vec();
                self.cursor += i + pat.len();
                return Some(out);
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// Like [`Response::try_read_until`], panicking with what was received if the body ends first.
    pub async fn read_until(&mut self, pat: &[u8]) -> Vec<u8> {
        match self.try_read_until(pat).await {
            Some(v) => v,
            None => panic!(
                "body ended ({:?}) before \"{}\"; unconsumed: \"{}\"",
                self.end,
                show(pat),
                show(&self.body[self.cursor..])
            ),
        }
    }

    /// The next SSE block (everything through the next blank line, `\n\n`), heartbeats included.
    pub async fn next_block(&mut self) -> Option<Vec<u8>> {
        self.try_read_until(b"\n\n").await
    }

    /// The next SSE block that is not a comment-only block (heartbeats skipped).
    pub async fn next_event(&mut self) -> Option<Vec<u8>> {
        loop {
            let block = self.next_block().await?;
            if !block.split(|b| *b == b'\n').filter(|l| !l.is_empty()).all(|l| l.starts_with(b":")) {
                return Some(block);
            }
        }
    }

    /// Reads to the end of the body; returns the unconsumed bytes and consumes them.
    pub async fn body_to_end(&mut self) -> Vec<u8> {
        while self.fill().await {}
        let out = self.body[self.cursor..].to_vec();
        self.cursor = self.body.len();
        out
    }

    /// Reads for `dur` (or until the body ends); returns the unconsumed bytes and consumes them.
    pub async fn read_for(&mut self, dur: Duration) -> Vec<u8> {
        let deadline = tokio::time::Instant::now() + dur;
        while let Ok(true) = tokio::time::timeout_at(deadline, self.fill()).await {}
        let out = self.body[self.cursor..].to_vec();
        self.cursor = self.body.len();
        out
    }

    /// After a cleanly ended HTTP/1.1 body: the connection, for the next request (keep-alive).
    pub fn into_conn(self) -> Option<Conn> {
        self.leftover_conn.map(|(stream, leftover, peer)| Conn { stream, leftover, peer })
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Decodes what it can from `h1.raw` into `body`; true if body bytes were produced.
fn h1_decode(h1: &mut H1Body, body: &mut Vec<u8>, end: &mut Option<End>) -> bool {
    let before = body.len();
    match &mut h1.framing {
        H1Framing::Close => {
            body.append(&mut h1.raw);
        }
        H1Framing::Length(remaining) => {
            let n = (*remaining).min(h1.raw.len());
            body.extend(h1.raw.drain(..n));
            *remaining -= n;
            if *remaining == 0 {
                *end = Some(End::Clean);
            }
        }
        H1Framing::Chunked(state) => loop {
            match state {
                ChunkState::Size => {
                    let Some(i) = find(&h1.raw, b"\r\n") else { break };
                    let line = String::from_utf8_lossy(&h1.raw[..i]).to_string();
                    let hex = line.split(';').next().unwrap_or("").trim();
                    let Ok(size) = usize::from_str_radix(hex, 16) else {
                        *end = Some(End::Error(format!("bad chunk size line {line:?}")));
                        break;
                    };
                    h1.raw.drain(..i + 2);
                    *state = if size == 0 { ChunkState::Trailers } else { ChunkState::Data(size) };
                }
                ChunkState::Data(n) => {
                    if h1.raw.is_empty() {
                        break;
                    }
                    let take = (*n).min(h1.raw.len());
                    body.extend(h1.raw.drain(..take));
                    *n -= take;
                    if *n == 0 {
                        *state = ChunkState::DataCrlf;
                    }
                }
                ChunkState::DataCrlf => {
                    if h1.raw.len() < 2 {
                        break;
                    }
                    if &h1.raw[..2] != b"\r\n" {
                        *end = Some(End::Error(format!("missing CRLF after chunk: {}", show(&h1.raw))));
                        break;
                    }
                    h1.raw.drain(..2);
                    *state = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    let Some(i) = find(&h1.raw, b"\r\n") else { break };
                    h1.raw.drain(..i + 2);
                    if i == 0 {
                        *end = Some(End::Clean);
                        break;
                    }
                }
            }
        },
    }
    body.len() > before
}

/// An HTTP/1.1 connection to send requests on (plain TCP or TLS).
#[derive(Debug)]
pub struct Conn {
    stream: BoxIo,
    leftover: Vec<u8>,
    peer: SocketAddr,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> Conn {
        Conn::try_connect(addr).await.unwrap_or_else(|e| panic!("connect {addr}: {e}"))
    }

    /// [`Conn::connect`], returning the error (a refused connection is what an upgrade test measures).
    pub async fn try_connect(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn { stream: Box::new(stream), leftover: Vec::new(), peer: addr })
    }

    /// TLS offering only ALPN `http/1.1`, trusting only `cert_der`, SNI `localhost`. Panics unless the
    /// server agreed to http/1.1 (or chose no ALPN).
    pub async fn tls(addr: SocketAddr, cert_der: &[u8]) -> Conn {
        let tls = crate::tls::connect(addr, cert_der, &[b"http/1.1"]).await;
        let alpn = tls.get_ref().1.alpn_protocol().map(|p| p.to_vec());
        assert!(alpn.is_none() || alpn.as_deref() == Some(&b"http/1.1"[..]), "ALPN chose {alpn:?}");
        Conn { stream: Box::new(tls), leftover: Vec::new(), peer: addr }
    }

    /// Writes `raw` as the request (exact bytes) and reads the response head.
    pub async fn send_raw(mut self, raw: &[u8], head_request: bool) -> Response {
        self.stream.write_all(raw).await.expect("write request");
        self.stream.flush().await.expect("flush request");
        read_response(self.stream, self.leftover, head_request, self.peer).await
    }

    /// Sends `method path` with `headers` (plus Host, and Content-Length when there is a body or it is a
    /// POST) and reads the response head.
    pub async fn send(self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        let raw = build_request(self.peer, method, path, headers, body);
        self.send_raw(&raw, method == "HEAD").await
    }
}

/// The bytes of a simple HTTP/1.1 request.
pub fn build_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut raw = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        raw.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    let has_len = headers.iter().any(|(k, _)| {
        k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding")
    });
    if !has_len && (!body.is_empty() || method == "POST" || method == "PUT") {
        raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    raw.push_str("\r\n");
    let mut raw = raw.into_bytes();
    raw.extend_from_slice(body);
    raw
}

/// `GET path` with `Accept: text/event-stream` over a new HTTP/1.1 connection.
pub async fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[("Accept", "text/event-stream")], b"").await
}

/// Any request over a new HTTP/1.1 connection.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    Conn::connect(addr).await.send(method, path, headers, body).await
}

async fn read_response(
    mut stream: BoxIo,
    mut raw: Vec<u8>,
    head_request: bool,
    peer: SocketAddr,
) -> Response {
    let head_end = loop {
        if let Some(i) = find(&raw, b"\r\n\r\n") {
            // Interim 1xx responses (other than 101) are skipped.
            if raw.starts_with(b"HTTP/1.1 1") && !raw.starts_with(b"HTTP/1.1 101") {
                raw.drain(..i + 4);
                continue;
            }
            break i;
        }
        let mut tmp = [0u8; 16 * 1024];
        match stream.read(&mut tmp).await {
            Ok(0) => panic!("connection closed before a complete response head; got \"{}\"", show(&raw)),
            Ok(n) => raw.extend_from_slice(&tmp[..n]),
            Err(e) => panic!("reading the response head: {e}; got \"{}\"", show(&raw)),
        }
    };
    let raw_head = raw[..head_end + 4].to_vec();
    raw.drain(..head_end + 4);
    let text = String::from_utf8_lossy(&raw_head[..head_end]).to_string();
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default().to_string();
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let hdr = |n: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.clone());
    let framing = if head_request || status == 204 || status == 304 || (100..200).contains(&status) {
        H1Framing::Length(0)
    } else if hdr("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        H1Framing::Chunked(ChunkState::Size)
    } else if let Some(cl) = hdr("content-length") {
        H1Framing::Length(cl.parse().unwrap_or_else(|_| panic!("bad content-length {cl:?}")))
    } else {
        H1Framing::Close
    };
    let empty = matches!(framing, H1Framing::Length(0));
    let mut resp = Response {
        version,
        status,
        headers,
        raw_head,
        body: Vec::new(),
        cursor: 0,
        arrivals: Vec::new(),
        end: None,
        source: Source::H1(H1Body { stream, raw, framing }),
        leftover_conn: None,
        peer: Some(peer),
    };
    if empty {
        resp.end = Some(End::Clean);
        if let Source::H1(h1) = std::mem::replace(&mut resp.source, Source::Done) {
            resp.leftover_conn = Some((h1.stream, h1.raw, peer));
        }
    }
    resp
}

/// An HTTP/2 connection (h2c with prior knowledge, or TLS with ALPN h2) that can carry several requests.
#[derive(Debug, Clone)]
pub struct H2Conn {
    sender: hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    authority: String,
    scheme: &'static str,
}

impl H2Conn {
    async fn over<IO>(io: IO, authority: String, scheme: &'static str) -> H2Conn
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .expect("h2 handshake");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        H2Conn { sender, authority, scheme }
    }

    /// h2c with prior knowledge (no upgrade).
    pub async fn h2c(addr: SocketAddr) -> H2Conn {
        let stream = TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_nodelay(true).unwrap();
        H2Conn::over(stream, addr.to_string(), "http").await
    }

    /// h2c with prior knowledge, sending `authority` as `:authority` instead of the address connected to.
    pub async fn h2c_with_authority(addr: SocketAddr, authority: &str) -> H2Conn {
        let stream = TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_nodelay(true).unwrap();
        H2Conn::over(stream, authority.to_string(), "http").await
    }

    /// TLS with ALPN `h2`, trusting only `cert_der`, SNI `localhost`. Panics unless h2 was negotiated.
    pub async fn tls(addr: SocketAddr, cert_der: &[u8]) -> H2Conn {
        let tls = crate::tls::connect(addr, cert_der, &[b"h2"]).await;
        let alpn = tls.get_ref().1.alpn_protocol().map(|p| p.to_vec());
        assert_eq!(alpn.as_deref(), Some(&b"h2"[..]), "ALPN did not negotiate h2");
        H2Conn::over(tls, format!("localhost:{}", addr.port()), "https").await
    }

    /// Sends a request (with `accept: text/event-stream`) and reads the response head.
    pub async fn request(&self, method: &str, path: &str, body: &[u8]) -> Response {
        let mut sender = self.sender.clone();
        sender.ready().await.expect("h2 connection ready");
        let req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}://{}{path}", self.scheme, self.authority))
            .header("accept", "text/event-stream")
            .body(Full::new(Bytes::copy_from_slice(body)))
            .unwrap();
        let resp = sender.send_request(req).await.expect("h2 request");
        let (parts, body) = resp.into_parts();
        let headers = parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).to_string()))
            .collect();
        Response {
            version: format!("{:?}", parts.version),
            status: parts.status.as_u16(),
            headers,
            raw_head: Vec::new(),
            body: Vec::new(),
            cursor: 0,
            arrivals: Vec::new(),
            end: None,
            source: Source::H2 { body, _sender: Box::new(sender) },
            leftover_conn: None,
            peer: None,
        }
    }
}

/// A request over a new h2c (prior knowledge) connection.
pub async fn h2c_request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Response {
    H2Conn::h2c(addr).await.request(method, path, body).await
}

/// A request over a new TLS + h2 connection trusting only `cert_der`.
pub async fn h2_tls_request(
    addr: SocketAddr,
    cert_der: &[u8],
    method: &str,
    path: &str,
    body: &[u8],
) -> Response {
    H2Conn::tls(addr, cert_der).await.request(method, path, body).await
}
