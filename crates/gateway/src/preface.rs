//! Telling h2c from HTTP/1 on a plaintext connection without waiting for 24 bytes.
//!
//! pingora's own h2c detection (`apps/mod.rs`) reads exactly the 24 bytes of the HTTP/2 preface before
//! choosing, so a whole HTTP/1 request shorter than that (`GET / HTTP/1.0\r\n\r\n`, 18 bytes) was never
//! answered. [`sniff`] reads only as long as the bytes so far are a prefix of the preface: the first byte
//! that differs means HTTP/1 (for any real request that is the first byte: no method starts with `PRI `…
//! except the preface itself). The bytes read are put back, so the chosen protocol reads them again.

use pingora::protocols::l4::stream::Stream as L4Stream;
use tokio::io::AsyncReadExt;

/// `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`
pub const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a plaintext connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// It sent the whole HTTP/2 preface.
    H2c,
    /// It sent something else (or ended inside a prefix of the preface: the HTTP/1 reader then sees the end).
    Http1,
    /// It closed before sending anything.
    Closed,
}

/// Reads until the first byte that is not the preface's, or the whole preface; puts every byte back.
pub async fn sniff(stream: &mut L4Stream) -> std::io::Result<Sniffed> {
    let mut buf = [0u8; H2_PREFACE.len()];
    let mut len = 0;
    let result = loop {
        let n = match stream.read(&mut buf[len..]).await {
            Ok(n) => n,
            Err(e) => {
                stream.rewind(&buf[..len]);
                return Err(e);
            }
        };
        if n == 0 {
            break if len == 0 { Sniffed::Closed } else { Sniffed::Http1 };
        }
        len += n;
        if buf[..len] != H2_PREFACE[..len] {
            break Sniffed::Http1;
        }
        if len == H2_PREFACE.len() {
            break Sniffed::H2c;
        }
    };
    stream.rewind(&buf[..len]);
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    /// Writes `parts` (each flushed on its own, a pause between) and sniffs the server side; returns what
    /// was sniffed and everything the server side then reads (the bytes put back included).
    async fn sniffed(parts: &[&[u8]], close: bool) -> (Sniffed, Vec<u8>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut server = L4Stream::from(server);
        let owned: Vec<Vec<u8>> = parts.iter().map(|p| p.to_vec()).collect();
        let writer = tokio::spawn(async move {
            for p in owned {
                client.write_all(&p).await.unwrap();
                client.flush().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            if close {
                drop(client);
                None
            } else {
                Some(client)
            }
        });
        let kind = sniff(&mut server).await.unwrap();
        let _client = writer.await.unwrap();
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let mut all = vec![0u8; total];
        server.read_exact(&mut all).await.unwrap();
        (kind, all)
    }

    #[tokio::test]
    async fn a_request_shorter_than_the_preface_is_http1_at_once() {
        let req: &[u8] = b"GET / HTTP/1.0\r\n\r\n";
        assert_eq!(req.len(), 18);
        // The client keeps the connection open: sniffing must not wait for 24 bytes.
        assert_eq!(sniffed(&[req], false).await, (Sniffed::Http1, req.to_vec()));
    }

    #[tokio::test]
    async fn the_preface_at_every_split_is_h2c_and_every_byte_is_kept() {
        let mut frame = H2_PREFACE.to_vec();
        frame.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // an empty SETTINGS frame
        for cut in 1..H2_PREFACE.len() {
            let (kind, bytes) = sniffed(&[&frame[..cut], &frame[cut..]], false).await;
            assert_eq!((kind, bytes.as_slice()), (Sniffed::H2c, frame.as_slice()), "cut at {cut}");
        }
    }

    #[tokio::test]
    async fn a_prefix_of_the_preface_then_something_else_is_http1() {
        let (kind, bytes) = sniffed(&[b"PRI", b" /x HTTP/1.1\r\n\r\n"], false).await;
        assert_eq!((kind, bytes.as_slice()), (Sniffed::Http1, &b"PRI /x HTTP/1.1\r\n\r\n"[..]));
        let (kind, bytes) = sniffed(&[b"PR"], true).await;
        assert_eq!((kind, bytes.as_slice()), (Sniffed::Http1, &b"PR"[..]), "ended inside the preface");
        assert_eq!(sniffed(&[], true).await.0, Sniffed::Closed);
    }
}
