//! Resolving the upstream's host and opening (or reusing) a connection to it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;

use pingora::connectors::http::Connector;
use pingora::protocols::http::client::HttpSession;
use pingora::protocols::ALPN;
use pingora::upstreams::peer::HttpPeer;

use super::dns::DnsError;
use crate::config::{Route, Upstream};
use crate::error::ErrorType;

/// Why the upstream could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Dns(#[from] DnsError),
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: SocketAddr, source: Box<pingora::Error> },
}

impl ConnectError {
    /// How it is reported: `upstream_dns` when the host name gave no address, else `upstream_connect`.
    pub fn error_type(&self) -> ErrorType {
        match self {
            ConnectError::Dns(_) => ErrorType::UpstreamDns,
            ConnectError::Connect { .. } => ErrorType::UpstreamConnect,
        }
    }

    /// What the client is told: the kind of failure, without the upstream's host, address or pingora's
    /// internals (those go to the log).
    pub fn public_message(&self) -> &'static str {
        use pingora::ErrorType as E;
        match self {
            ConnectError::Dns(_) => "the upstream's host name could not be resolved",
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

/// The peer one backend's streams share: the last one built for it, kept while its resolved address and
/// the route's connect timeout stay the same. A stream holds its peer for its whole life (to return the
/// connection to the pool at the end), and an `HttpPeer` is ~670 bytes: shared, an open stream holds a
/// pointer.
#[derive(Debug, Default)]
pub struct PeerCache(ArcSwapOption<HttpPeer>);

impl PeerCache {
    /// Resolves the upstream (cached, see [`super::dns`]) and returns the peer for that address with the
    /// route's timeouts: the cached one when it matches, else a new one, which replaces it.
    pub async fn peer(&self, upstream: &Upstream, route: &Route) -> Result<Arc<HttpPeer>, ConnectError> {
        let timeout = route.connect_timeout;
        let addr = resolve(upstream, timeout).await?;
        if let Some(p) = self.0.load_full() {
            if peer_addr(&p) == addr && p.options.connection_timeout == Some(timeout) {
                return Ok(p);
            }
        }
        let p = Arc::new(new_peer(addr, upstream, timeout));
        self.0.store(Some(p.clone()));
        Ok(p)
    }
}

/// A peer for the upstream with an explicit connect timeout, not shared (health checks).
pub async fn peer_with_timeout(
    upstream: &Upstream,
    connect_timeout: Duration,
) -> Result<HttpPeer, ConnectError> {
    let addr = resolve(upstream, connect_timeout).await?;
    Ok(new_peer(addr, upstream, connect_timeout))
}

async fn resolve(upstream: &Upstream, connect_timeout: Duration) -> Result<SocketAddr, ConnectError> {
    // The lookup is bounded by the connect timeout too (a silent name server must not hold the request).
    Ok(super::dns::get().resolve(&upstream.host, upstream.port, connect_timeout).await?)
}

fn new_peer(addr: SocketAddr, upstream: &Upstream, connect_timeout: Duration) -> HttpPeer {
    let mut peer = HttpPeer::new(addr, upstream.tls, upstream.host.clone());
    peer.options.connection_timeout = Some(connect_timeout);
    peer.options.total_connection_timeout = Some(connect_timeout);
    peer.options.alpn = if upstream.tls { ALPN::H2H1 } else { ALPN::H1 };
    peer
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
