//! Resolving the upstream's host and opening (or reusing) a connection to it.

use std::net::SocketAddr;
use std::sync::Arc;

use pingora::connectors::http::Connector;
use pingora::protocols::http::client::HttpSession;
use pingora::protocols::ALPN;
use pingora::upstreams::peer::HttpPeer;

use crate::config::{Route, Upstream};

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
    peer_with_timeout(upstream, route.connect_timeout).await
}

/// [`peer`] with an explicit connect timeout.
pub async fn peer_with_timeout(
    upstream: &Upstream,
    connect_timeout: std::time::Duration,
) -> Result<HttpPeer, ConnectError> {
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
    peer.options.connection_timeout = Some(connect_timeout);
    peer.options.total_connection_timeout = Some(connect_timeout);
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
