//! The upstream side: build the forwarded request ([`build_request`]), resolve and connect (pooled, TLS:
//! [`connect`]), and undo any content encoding so that compressed bytes never reach a decoder
//! ([`decompress`]).

mod connect;
mod decompress;
pub mod dns;
pub mod health;
pub mod pool;
mod select;

pub use connect::{connect, peer_with_timeout, ConnectError, PeerCache};
pub use decompress::{Decompressor, MAX_STEP_OUTPUT, STEP_OUTPUT};

use pingora::http::RequestHeader;

use crate::config::Route;
pub use crate::headers::is_hop_by_hop;
use crate::headers::{Forwarded, REQUEST_ID};
use crate::security::KeyHeaders;

/// The headers a proxy adds to the request it forwards: `X-Forwarded-*` and `X-Request-Id`.
#[derive(Debug, Clone, Copy)]
pub struct ProxyHeaders<'a> {
    pub forwarded: &'a Forwarded,
    pub request_id: &'a http::HeaderValue,
}

/// Builds the request sent upstream from the client's request.
///
/// `Host` is always the upstream's (never the client's); the headers that carried the client's gateway key
/// (`key_headers`) and every client header the route injects itself (`upstream_headers`) are dropped, then
/// the route's `upstream_headers` are added. `X-Request-Id` is the request's id and
/// `X-Forwarded-For/-Proto/-Host` are as [`Forwarded`] decided them by `[server] trusted_proxies`: the
/// client's own are never passed on as they are, and `Forwarded`/`X-Real-IP` pass only from a trusted proxy.
pub fn build_request(
    client: &RequestHeader,
    route: &Route,
    path_and_query: &str,
    body_len: usize,
    converting: bool,
    proxy: ProxyHeaders<'_>,
    key_headers: KeyHeaders,
) -> pingora::Result<RequestHeader> {
    let mut req = RequestHeader::build(client.method.clone(), path_and_query.as_bytes(), None)?;
    let connection = client.headers.get(http::header::CONNECTION).map(|v| v.as_bytes());
    for (name, value) in client.headers.iter() {
        let n = name.as_str();
        if is_hop_by_hop(n, connection)
            || n == "host"
            || n == "content-length"
            || n == REQUEST_ID
            || n == "x-forwarded-for"
            || n == "x-forwarded-proto"
            || n == "x-forwarded-host"
            || (!proxy.forwarded.trusted_peer && (n == "forwarded" || n == "x-real-ip"))
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
    let forwarded = proxy.forwarded;
    if let Some(xff) = &forwarded.xff {
        req.insert_header("x-forwarded-for", xff.as_str())?;
    }
    req.insert_header("x-forwarded-proto", forwarded.proto.clone())?;
    if let Some(host) = &forwarded.host {
        req.insert_header("x-forwarded-host", host.clone())?;
    }
    req.insert_header(REQUEST_ID, proxy.request_id.clone())?;
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

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
