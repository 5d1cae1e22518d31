//! [`Pump::read`] over a real pingora HTTP/1 client session (an in-memory duplex as its socket): every
//! event once, whole and in order, however the body is framed, chunked and split into socket writes —
//! reads larger than pingora's 64 KiB body buffer, messages spanning reads, multibyte characters and CRLF
//! across reads, events kept past later reads (as a resume store keeps them) — and when the read is
//! cancelled whenever another branch of a `select!` is ready.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use pingora::protocols::http::v1::client::HttpSession as H1;
use ssegate_frame::{Decoder, DecoderOptions, Format, Item};
use tokio::io::{AsyncWriteExt, DuplexStream};

use super::*;

/// The NDJSON lines of the test body (compact JSON: each event's data is its line without the break):
/// short ones, multibyte ones, ones longer than [`REUSE_MAX`] and than pingora's 64 KiB buffer, with LF
/// and CRLF breaks.
fn lines() -> Vec<String> {
    (0..400)
        .map(|i| match i % 9 {
            0 => format!("{{\"n\":{i},\"s\":\"{}\"}}", "\u{20ac}x".repeat(i % 50)),
            3 => format!("{{\"n\":{i},\"long\":\"{}\"}}", "ab\u{e9}".repeat(300 + i)),
            6 if i % 4 == 2 => format!("{{\"n\":{i},\"huge\":\"{}\"}}", "z\u{1f600}".repeat(14_000)),
            _ => format!("{{\"n\":{i}}}"),
        })
        .collect()
}

fn body(lines: &[String]) -> Vec<u8> {
    let mut b = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        b.extend_from_slice(l.as_bytes());
        b.extend_from_slice(if i % 5 == 1 { b"\r\n" } else { b"\n" });
    }
    b
}

/// `body` as an HTTP/1 response: chunked (chunks of the sizes `sizes` cycles through) or with a length.
fn response(body: &[u8], chunk_sizes: Option<&[usize]>) -> Vec<u8> {
    let Some(sizes) = chunk_sizes else {
        let mut r = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        return r;
    };
    let mut r =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n"
            .to_vec();
    let mut rest = body;
    for &n in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(n.min(rest.len()));
        r.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        r.extend_from_slice(chunk);
        r.extend_from_slice(b"\r\n");
        rest = tail;
    }
    r.extend_from_slice(b"0\r\n\r\n");
    r
}

/// Writes `bytes` to `to` in writes of the sizes `sizes` cycles through, yielding between them.
async fn write_split(mut to: DuplexStream, bytes: Vec<u8>, sizes: Vec<usize>) {
    let mut rest = &bytes[..];
    for &n in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (w, tail) = rest.split_at(n.min(rest.len()));
        to.write_all(w).await.unwrap();
        rest = tail;
        tokio::task::yield_now().await;
    }
}

/// A pump over a pingora HTTP/1 session whose upstream writes `response` as `writes` splits it; the head
/// is read (as the attempt reads it) before the pump gets the session.
async fn pump(response: Vec<u8>, writes: Vec<usize>) -> (Pump, tokio::task::JoinHandle<()>) {
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let writer = tokio::spawn(write_split(theirs, response, writes));
    let mut h1 = H1::new(Box::new(ours));
    h1.read_response().await.unwrap();
    let dec = Decoder::new(Format::Ndjson, DecoderOptions::default());
    (Pump::new(HttpSession::H1(h1), Some(dec), None), writer)
}

/// What a consumer saw: every event's data in order, the body bytes the reads reported, and every 7th
/// event's data kept (not copied) until the end.
#[derive(Default)]
struct Seen {
    data: Vec<Vec<u8>>,
    read: usize,
    kept: Vec<(usize, Bytes)>,
    cancelled: usize,
}

impl Seen {
    fn take(&mut self, items: &mut Vec<Item>) {
        for item in items.drain(..) {
            match item {
                Item::Event(ev) => {
                    if self.data.len().is_multiple_of(7) {
                        self.kept.push((self.data.len(), ev.data.clone()));
                    }
                    self.data.push(ev.data.to_vec());
                }
                other => panic!("unexpected item {other:?}"),
            }
        }
    }

    fn check(&self, lines: &[String], body_len: usize, what: &str) {
        assert_eq!(self.read, body_len, "{what}: the reads report every body byte");
        assert_eq!(self.data.len(), lines.len(), "{what}: every event once");
        for (i, (got, want)) in self.data.iter().zip(lines).enumerate() {
            assert!(
                got == want.as_bytes(),
                "{what}: event {i} differs ({} bytes, want {})",
                got.len(),
                want.len()
            );
        }
        for (i, kept) in &self.kept {
            assert!(kept == lines[*i].as_bytes(), "{what}: event {i}, kept past later reads, changed");
        }
    }
}

/// Reads `pump` to its end, taking the items after each read (as delivery does).
async fn read_all(p: &mut Pump, seen: &mut Seen) {
    while let Some(produced) = p.read().await.unwrap() {
        match produced {
            Produced::Items(n) => seen.read += n,
            Produced::Bytes(_) => panic!("a decoding pump produced raw bytes"),
        }
        seen.take(p.items());
    }
    p.finish().unwrap();
    seen.take(p.items());
}

#[tokio::test]
async fn every_event_once_whole_and_in_order_however_the_body_is_split() {
    let lines = lines();
    let body = body(&lines);
    let chunkings: [Option<&[usize]>; 5] = [
        None,
        Some(&[1 << 20]),
        Some(&[70_000, 3, 65_536, 65_535]),
        Some(&[1, 2, 3, 5, 8, 13, 997]),
        Some(&[100]),
    ];
    let writes: [&[usize]; 4] = [&[1 << 22], &[1, 2, 3, 4, 5, 6, 7, 1000, 65_537], &[65_536], &[311]];
    for (c, chunking) in chunkings.iter().enumerate() {
        for (w, split) in writes.iter().enumerate() {
            let (mut p, writer) = pump(response(&body, *chunking), split.to_vec()).await;
            let mut seen = Seen::default();
            read_all(&mut p, &mut seen).await;
            seen.check(&lines, body.len(), &format!("chunking {c}, writes {w}"));
            writer.await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_cancelled_read_loses_nothing() {
    let lines = lines();
    let body = body(&lines);
    let (mut p, writer) =
        pump(response(&body, Some(&[1, 2, 3, 5, 8, 13, 997, 70_000])), vec![1, 7, 64, 4096]).await;
    let mut seen = Seen::default();
    loop {
        // The read is polled once, then dropped whenever it did not complete at once: another branch (the
        // client, a timer) won the turn.
        let read = tokio::select! {
            biased;
            r = p.read() => r.unwrap(),
            () = std::future::ready(()) => {
                seen.cancelled += 1;
                tokio::task::yield_now().await;
                continue;
            }
        };
        match read {
            Some(Produced::Items(n)) => seen.read += n,
            Some(Produced::Bytes(_)) => panic!("a decoding pump produced raw bytes"),
            None => break,
        }
        seen.take(p.items());
    }
    p.finish().unwrap();
    seen.take(p.items());
    assert!(seen.cancelled > 100, "reads were cancelled ({} times)", seen.cancelled);
    seen.check(&lines, body.len(), "cancelled reads");
    writer.await.unwrap();
}

#[test]
fn short_reads_share_one_buffer_and_long_ones_get_their_own() {
    let mut buf = BytesMut::new();
    let a = own(&mut buf, b"first");
    let b = own(&mut buf, b"second");
    assert_eq!((&a[..], &b[..]), (&b"first"[..], &b"second"[..]));
    drop((a, b));
    let cap = buf.capacity();
    let c = own(&mut buf, b"third");
    assert_eq!(&c[..], b"third");
    drop(c);
    let long = vec![b'x'; REUSE_MAX + 1];
    assert_eq!(&own(&mut buf, &long)[..], &long[..]);
    assert!(buf.capacity() <= cap.max(2 * REUSE_MAX), "a long read does not grow the shared buffer");
    for n in 1..=REUSE_MAX {
        let piece = own(&mut buf, &long[..n]);
        assert_eq!(piece.len(), n);
    }
    assert!(buf.capacity() < 2 * REUSE_MAX, "the buffer stays under twice REUSE_MAX ({})", buf.capacity());
}
