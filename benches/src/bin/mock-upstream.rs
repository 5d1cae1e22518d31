//! The benchmark upstream: streams NDJSON (Ollama `POST /api/chat`), SSE (OpenAI
//! `POST /v1/chat/completions`, ending `data: [DONE]`), a JSON array (`/json-array`) or text lines (`/raw`),
//! paced and chunked as the request's parameters say (see `ssegate_bench::params`). Every message carries
//! `@@<seq>:<send time ns>@@`. HTTP/1.1 with chunked responses and keep-alive; one thread.
//!
//! `mock-upstream --listen 127.0.0.1:0` prints `listening on <addr>` on stdout once it accepts connections.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ssegate_bench::chunked::{encode_chunk, ChunkedDecoder, LAST_CHUNK};
use ssegate_bench::http::{head_end, parse_request, Framing, MAX_HEAD};
use ssegate_bench::marker::now_ns;
use ssegate_bench::msg::Kind;
use ssegate_bench::params::{parse_target, Chunking, Params};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

#[derive(Debug, Parser)]
#[command(about = "Streaming mock upstream for the ssegate load benchmarks")]
struct Args {
    /// Address to listen on (port 0: any free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Default messages per response.
    #[arg(long, default_value_t = 200)]
    n: u64,
    /// Default milliseconds between writes (0: as fast as possible).
    #[arg(long, default_value_t = 10.0)]
    pace_ms: f64,
    /// Default message size in bytes.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Default messages per write (1: one message per write).
    #[arg(long, default_value_t = 1)]
    batch: u64,
    /// Split every message across three writes by default.
    #[arg(long)]
    split: bool,
    /// Write the listening address to this file too.
    #[arg(long)]
    addr_file: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut defaults = Params { n: args.n, pace_ms: args.pace_ms, size: args.size, ..Params::default() };
    if args.batch > 1 {
        defaults.chunk = Chunking::Batch;
        defaults.batch = args.batch;
    }
    if args.split {
        defaults.chunk = Chunking::Split;
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mock-upstream: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(args.listen, args.addr_file, defaults)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mock-upstream: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(
    addr: SocketAddr,
    addr_file: Option<std::path::PathBuf>,
    defaults: Params,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    if let Some(path) = addr_file {
        std::fs::write(path, local.to_string())?;
    }
    println!("listening on {local}");
    std::io::stdout().flush()?;
    loop {
        let (sock, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                eprintln!("mock-upstream: accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let defaults = defaults.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(sock, defaults).await {
                if e.kind() != std::io::ErrorKind::BrokenPipe
                    && e.kind() != std::io::ErrorKind::ConnectionReset
                {
                    eprintln!("mock-upstream: connection: {e}");
                }
            }
        });
    }
}

/// Serves requests on one connection until the peer closes it or asks to.
async fn connection(mut sock: TcpStream, defaults: Params) -> std::io::Result<()> {
    sock.set_nodelay(true)?;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        // Read a request head.
        let end = loop {
            if let Some(end) = head_end(&buf) {
                break end;
            }
            if buf.len() > MAX_HEAD {
                return respond_plain(&mut sock, 431, "request head too large").await;
            }
            if read_more(&mut sock, &mut buf).await? == 0 {
                return Ok(());
            }
        };
        let req = match parse_request(&buf[..end]) {
            Ok(r) => r,
            Err(e) => return respond_plain(&mut sock, 400, &e).await,
        };
        buf.drain(..end);
        skip_body(&mut sock, &mut buf, req.body).await?;
        let (path, params) = match parse_target(&req.target, &defaults) {
            Ok(p) => p,
            Err(e) => return respond_plain(&mut sock, 400, &e).await,
        };
        if path == "/healthz" {
            respond_plain(&mut sock, 200, "ok").await?;
        } else if let Some(kind) = Kind::for_path(&path) {
            if !stream(&mut sock, &mut buf, kind, &params, req.close).await? {
                // The client went away mid-stream.
                return Ok(());
            }
        } else {
            respond_plain(&mut sock, 404, "no such path").await?;
        }
        if req.close {
            return Ok(());
        }
    }
}

/// Reads what is available into the spare capacity of `buf`. Cancel-safe (it is raced against timers while
/// streaming): `buf` only grows by the bytes actually read.
async fn read_more(sock: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    buf.reserve(16 * 1024);
    sock.read_buf(buf).await
}

/// Reads and drops a request body; leaves what follows it in `buf`.
async fn skip_body(sock: &mut TcpStream, buf: &mut Vec<u8>, body: Framing) -> std::io::Result<()> {
    match body {
        Framing::Length(mut left) => loop {
            let take = left.min(buf.len() as u64) as usize;
            buf.drain(..take);
            left -= take as u64;
            if left == 0 {
                return Ok(());
            }
            if read_more(sock, buf).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        },
        Framing::Chunked => {
            let mut dec = ChunkedDecoder::new();
            loop {
                let used = dec.feed(buf, |_| {}).map_err(std::io::Error::other)?;
                buf.drain(..used);
                if dec.is_done() {
                    return Ok(());
                }
                if read_more(sock, buf).await? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
            }
        }
        Framing::Close => Ok(()),
    }
}

async fn respond_plain(sock: &mut TcpStream, status: u16, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(head.as_bytes()).await
}

/// Waits until `due`; meanwhile bytes from the client are kept in `buf` (a pipelined request). Returns false
/// when the client closed the connection, so that a stream paced for minutes does not hold the socket (and
/// the proxy's side of it) after its client has gone.
async fn wait_until(sock: &mut TcpStream, buf: &mut Vec<u8>, due: Instant) -> std::io::Result<bool> {
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(due) => return Ok(true),
            n = read_more(sock, buf) => {
                if n? == 0 {
                    return Ok(false);
                }
                if buf.len() > MAX_HEAD {
                    return Err(std::io::Error::other("client sends data while streaming"));
                }
            }
        }
    }
}

/// One streamed response. Returns false if the client closed the connection before the end.
async fn stream(
    sock: &mut TcpStream,
    buf: &mut Vec<u8>,
    kind: Kind,
    p: &Params,
    close: bool,
) -> std::io::Result<bool> {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n{}\r\n",
        kind.content_type(),
        if close { "Connection: close\r\n" } else { "" }
    );
    let mut out = head.into_bytes();
    encode_chunk(kind.prelude(), &mut out);
    sock.write_all(&out).await?;
    let start = Instant::now() + Duration::from_millis(p.first_ms);
    let pace = Duration::from_secs_f64(p.pace_ms / 1_000.0);
    let per_write = p.per_write();
    let mut msgs = Vec::with_capacity(p.size * per_write as usize + 64);
    let mut seq = 0;
    let mut write_no: u32 = 0;
    while seq < p.n {
        let due = start + pace * write_no;
        if due > Instant::now() && !wait_until(sock, buf, due).await? {
            return Ok(false);
        }
        msgs.clear();
        let last = (seq + per_write).min(p.n);
        for s in seq..last {
            kind.message(s, now_ns(), p.size, &mut msgs);
        }
        seq = last;
        if seq == p.n {
            msgs.extend_from_slice(&kind.epilogue(p.n));
        }
        out.clear();
        if p.chunk == Chunking::Split {
            // Three writes per message: the receiver sees each message arrive in pieces.
            let third = msgs.len().div_ceil(3);
            for part in msgs.chunks(third.max(1)) {
                out.clear();
                encode_chunk(part, &mut out);
                sock.write_all(&out).await?;
            }
        } else {
            encode_chunk(&msgs, &mut out);
            sock.write_all(&out).await?;
        }
        write_no += 1;
    }
    if p.n == 0 {
        out.clear();
        encode_chunk(&kind.epilogue(0), &mut out);
        sock.write_all(&out).await?;
    }
    sock.write_all(LAST_CHUNK).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use ssegate_bench::chunked::ChunkedDecoder;
    use ssegate_bench::http::parse_response;
    use ssegate_bench::marker;

    use super::*;

    /// Reads one chunked response from `sock` (leftover bytes in `buf`); returns its body.
    async fn response(sock: &mut TcpStream, buf: &mut Vec<u8>) -> (u16, Vec<u8>) {
        let end = loop {
            if let Some(end) = head_end(buf) {
                break end;
            }
            assert!(read_more(sock, buf).await.unwrap() > 0, "closed before the head");
        };
        let head = parse_response(&buf[..end]).unwrap();
        buf.drain(..end);
        assert_eq!(head.body, Framing::Chunked);
        let mut dec = ChunkedDecoder::new();
        let mut body = Vec::new();
        loop {
            let used = dec.feed(buf, |b| body.extend_from_slice(b)).unwrap();
            buf.drain(..used);
            if dec.is_done() {
                return (head.status, body);
            }
            assert!(read_more(sock, buf).await.unwrap() > 0, "closed mid-body");
        }
    }

    /// Paced streams on one keep-alive connection: every message of both responses, in order, and the
    /// connection still usable after the pacing timers raced the reads.
    #[tokio::test]
    async fn paced_streams_on_a_keep_alive_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            let _ = connection(sock, Params::default()).await;
        });
        let mut sock = TcpStream::connect(addr).await.unwrap();
        let mut buf = Vec::new();
        for (path, split) in [("/api/chat?n=4&pace_ms=3", b'\n'), ("/raw?n=3&pace_ms=2&chunk=split", b'\n')] {
            let req = format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{{}}");
            sock.write_all(req.as_bytes()).await.unwrap();
            let (status, body) = response(&mut sock, &mut buf).await;
            assert_eq!(status, 200);
            let seqs: Vec<u64> =
                body.split(|&b| b == split).filter_map(marker::find).map(|(seq, _)| seq).collect();
            let n: u64 = path.split("n=").nth(1).unwrap()[..1].parse().unwrap();
            assert_eq!(seqs, (0..n).collect::<Vec<_>>(), "{path}");
        }
        sock.write_all(b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut rest = Vec::new();
        sock.read_to_end(&mut rest).await.unwrap();
        assert!(rest.starts_with(b"HTTP/1.1 404"), "{}", String::from_utf8_lossy(&rest));
    }

    /// A client that leaves while the mock waits for the next message frees the connection at once.
    #[tokio::test]
    async fn a_client_gone_mid_wait_ends_the_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            connection(sock, Params::default()).await
        });
        let mut sock = TcpStream::connect(addr).await.unwrap();
        sock.write_all(b"GET /api/chat?n=1&first_ms=600000 HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut head = [0u8; 12];
        sock.read_exact(&mut head).await.unwrap();
        drop(sock);
        let done = tokio::time::timeout(Duration::from_secs(5), server).await;
        assert!(done.is_ok(), "the mock still holds the connection");
    }
}
