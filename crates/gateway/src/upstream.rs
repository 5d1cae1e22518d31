//! The upstream side: build the forwarded request, connect (pooled, TLS), and undo any content encoding
//! so that compressed bytes never reach a decoder.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use flate2::write::{GzDecoder, ZlibDecoder};
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession;
use pingora::protocols::ALPN;
use pingora::upstreams::peer::HttpPeer;

use crate::config::{Route, Upstream};
use crate::security::KeyHeaders;

/// Headers that describe one hop, never forwarded (RFC 9110 §7.6.1, plus the de facto ones).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether a header must not cross the proxy: a hop-by-hop header, or one named in the message's own
/// `Connection` header (`connection`, its value). Nothing is allocated: it runs for every forwarded header.
pub fn is_hop_by_hop(name: &str, connection: Option<&[u8]>) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
        || connection.is_some_and(|v| {
            v.split(|b| *b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(name.as_bytes()))
        })
}

/// Builds the request sent upstream from the client's request.
///
/// `Host` is always the upstream's (never the client's); the headers that carried the client's gateway key
/// (`key_headers`) and every client header the route injects itself (`upstream_headers`) are dropped, then
/// the route's `upstream_headers` are added.
pub fn build_request(
    client: &RequestHeader,
    route: &Route,
    path_and_query: &str,
    body_len: usize,
    converting: bool,
    client_addr: Option<String>,
    key_headers: KeyHeaders,
) -> pingora::Result<RequestHeader> {
    let mut req = RequestHeader::build(client.method.clone(), path_and_query.as_bytes(), None)?;
    let connection = client.headers.get(http::header::CONNECTION).map(|v| v.as_bytes());
    for (name, value) in client.headers.iter() {
        let n = name.as_str();
        if is_hop_by_hop(n, connection)
            || n == "host"
            || n == "content-length"
            || (converting && n == "accept-encoding")
            || (key_headers.authorization && n == "authorization")
            || (key_headers.x_api_key && n == "x-api-key")
            || route.upstream_headers.iter().any(|h| h.name == *name)
        {
            continue;
        }
        req.append_header(name.clone(), value.clone())?;
    }
    req.insert_header("host", route.upstream.host_header.as_str())?;
    for h in &route.upstream_headers {
        req.insert_header(h.name.clone(), h.value.clone())?;
    }
    if body_len > 0 || client.method.as_str() == "POST" || client.method.as_str() == "PUT" {
        req.insert_header("content-length", http::HeaderValue::from(body_len))?;
    }
    if converting {
        req.insert_header("accept-encoding", http::HeaderValue::from_static("identity"))?;
    }
    if let Some(ip) = client_addr {
        let xff = match client.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prev) => format!("{prev}, {ip}"),
            None => ip,
        };
        req.insert_header("x-forwarded-for", xff)?;
    }
    Ok(req)
}

/// Why the upstream could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot resolve {host}: {source}")]
    Resolve { host: String, source: std::io::Error },
    #[error("{host} resolved to no address")]
    NoAddress { host: String },
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: SocketAddr, source: Box<pingora::Error> },
}

impl ConnectError {
    /// What the client is told: the kind of failure, without the upstream's host, address or pingora's
    /// internals (those go to the log).
    pub fn public_message(&self) -> &'static str {
        use pingora::ErrorType as E;
        match self {
            ConnectError::Resolve { .. } | ConnectError::NoAddress { .. } => {
                "the upstream's host name could not be resolved"
            }
            ConnectError::Connect { source, .. } => match source.etype() {
                E::ConnectTimedout => "connecting to the upstream timed out",
                E::ConnectRefused => "the upstream refused the connection",
                E::ConnectNoRoute => "no route to the upstream",
                E::TLSHandshakeFailure | E::TLSHandshakeTimedout | E::InvalidCert | E::HandshakeError => {
                    "the TLS handshake with the upstream failed"
                }
                _ => "cannot connect to the upstream",
            },
        }
    }
}

/// Resolves the upstream (DNS off the blocking path) and returns a peer with the route's timeouts.
pub async fn peer(upstream: &Upstream, route: &Route) -> Result<HttpPeer, ConnectError> {
    let addr = match upstream.host.parse::<std::net::IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, upstream.port),
        Err(_) => {
            let mut addrs = tokio::net::lookup_host((upstream.host.as_str(), upstream.port))
                .await
                .map_err(|source| ConnectError::Resolve { host: upstream.host.clone(), source })?;
            addrs.next().ok_or_else(|| ConnectError::NoAddress { host: upstream.host.clone() })?
        }
    };
    let mut peer = HttpPeer::new(addr, upstream.tls, upstream.host.clone());
    peer.options.connection_timeout = Some(route.connect_timeout);
    peer.options.total_connection_timeout = Some(route.connect_timeout);
    peer.options.alpn = if upstream.tls { ALPN::H2H1 } else { ALPN::H1 };
    Ok(peer)
}

/// Opens (or reuses) a session to `peer`; `true` when it is a reused pooled connection.
pub async fn connect(
    connector: &Arc<Connector>,
    peer: &HttpPeer,
) -> Result<(HttpSession, bool), ConnectError> {
    match connector.get_http_session(peer).await {
        Ok(pair) => Ok(pair),
        Err(source) => Err(ConnectError::Connect { addr: peer_addr(peer), source }),
    }
}

fn peer_addr(peer: &HttpPeer) -> SocketAddr {
    match peer._address {
        pingora::protocols::l4::socket::SocketAddr::Inet(a) => a,
        _ => SocketAddr::from(([0, 0, 0, 0], 0)),
    }
}

/// Undoes `Content-Encoding: gzip | deflate` chunk by chunk.
#[derive(Debug)]
pub enum Decompressor {
    Gzip(GzDecoder<Vec<u8>>),
    Zlib(ZlibDecoder<Vec<u8>>),
}

impl Decompressor {
    /// A decompressor for a `Content-Encoding` value; `Ok(None)` for identity.
    pub fn for_encoding(value: Option<&str>) -> Result<Option<Decompressor>, String> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("identity") => Ok(None),
            Some("gzip") | Some("x-gzip") => Ok(Some(Decompressor::Gzip(GzDecoder::new(Vec::new())))),
            Some("deflate") => Ok(Some(Decompressor::Zlib(ZlibDecoder::new(Vec::new())))),
            Some(other) => Err(other.to_string()),
        }
    }

    /// Feeds compressed bytes; returns what they decompress to (possibly empty).
    pub fn push(&mut self, chunk: &[u8]) -> std::io::Result<Bytes> {
        match self {
            Decompressor::Gzip(d) => {
                d.write_all(chunk)?;
                d.flush()?;
                Ok(Bytes::from(std::mem::take(d.get_mut())))
            }
            Decompressor::Zlib(d) => {
                d.write_all(chunk)?;
                d.flush()?;
                Ok(Bytes::from(std::mem::take(d.get_mut())))
            }
        }
    }

    /// Ends the compressed stream; returns the remaining bytes.
    pub fn finish(&mut self) -> std::io::Result<Bytes> {
        match self {
            Decompressor::Gzip(d) => {
                d.try_finish()?;
                Ok(Bytes::from(std::mem::take(d.get_mut())))
            }
            Decompressor::Zlib(d) => {
                d.try_finish()?;
                Ok(Bytes::from(std::mem::take(d.get_mut())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;

    #[test]
    fn gzip_round_trip_in_small_pieces() {
        let text = b"{\"a\":1}\n{\"b\":2}\n".repeat(50);
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(&text).unwrap();
        let gz = enc.finish().unwrap();
        let mut d = Decompressor::for_encoding(Some("gzip")).unwrap().unwrap();
        let mut out = Vec::new();
        for piece in gz.chunks(7) {
            out.extend_from_slice(&d.push(piece).unwrap());
        }
        out.extend_from_slice(&d.finish().unwrap());
        assert_eq!(out, text);
    }

    #[test]
    fn unknown_encoding_is_refused() {
        assert!(Decompressor::for_encoding(Some("br")).is_err());
        assert!(Decompressor::for_encoding(Some("identity")).unwrap().is_none());
    }

    #[test]
    fn hop_by_hop_includes_connection_tokens() {
        let t = Some(&b"close, X-Secret"[..]);
        assert!(is_hop_by_hop("x-secret", t));
        assert!(is_hop_by_hop("Transfer-Encoding", t));
        assert!(!is_hop_by_hop("authorization", t));
        assert!(!is_hop_by_hop("x-secre", t));
        assert!(!is_hop_by_hop("x-secret", None));
    }
}
