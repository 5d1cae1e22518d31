//! Upstream host names, resolved with a cache: a positive answer is kept for its TTL (hickory-resolver's
//! cache, clamped to [`MAX_POSITIVE_TTL`]), a failed lookup (no such name, no address, a failing or silent
//! name server) for [`NEGATIVE_TTL`]. The name servers are `[server] dns_servers`, or the system's
//! (`/etc/resolv.conf`, with `/etc/hosts` first) when the key is not set.
//!
//! One resolver serves the whole process (both the traffic and the health checks): it is built once, at
//! start, by [`init`]; a reload never changes it (`dns_servers` is restart-only).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::TokioResolver;

/// How long a failed lookup is remembered: requests to that host within it fail at once, without asking
/// the name servers again (an outage is not multiplied by the request rate), and a fixed name is picked
/// up at most this late. Also the longest a negative (`NXDOMAIN`) answer's own TTL is kept.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// The longest a positive answer is kept, whatever its TTL says.
pub const MAX_POSITIVE_TTL: Duration = Duration::from_secs(3600);
/// Cached answers (one per name and record type); an upstream set is small.
const CACHE_SIZE: usize = 1024;
/// Remembered failures; past this, the oldest are dropped first (expired ones always).
const MAX_NEGATIVE: usize = 1024;

/// Why a host name gave no address (the detail is for the log; the client is told only the kind).
#[derive(Debug, Clone, thiserror::Error)]
pub enum DnsError {
    #[error("cannot resolve {host}: {detail}")]
    Failed { host: String, detail: String },
    #[error("resolving {host} took longer than {after:?}")]
    TimedOut { host: String, after: Duration },
    #[error("{host} failed to resolve less than {NEGATIVE_TTL:?} ago ({detail})")]
    Cached { host: String, detail: String },
}

/// The process's resolver and its negative cache.
pub struct Dns {
    resolver: TokioResolver,
    failed: Mutex<HashMap<String, (Instant, String)>>,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns").finish_non_exhaustive()
    }
}

static DNS: OnceLock<Dns> = OnceLock::new();

/// Builds the process's resolver: `servers` (each `ip:port`, UDP with TCP on truncation), or the system's
/// when empty. Only the first call counts.
pub fn init(servers: &[SocketAddr]) {
    DNS.get_or_init(|| Dns::new(servers));
}

/// The process's resolver ([`init`]'s, or the system's when none was built: unit tests).
pub fn get() -> &'static Dns {
    DNS.get_or_init(|| Dns::new(&[]))
}

impl Dns {
    /// A resolver using `servers`, or the system's configuration when empty (if that cannot be read:
    /// a warning, and no name server, so every name not in `/etc/hosts` fails to resolve).
    pub fn new(servers: &[SocketAddr]) -> Dns {
        let provider = TokioConnectionProvider::default();
        let (config, mut opts) = if servers.is_empty() {
            match hickory_resolver::system_conf::read_system_conf() {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the system's DNS configuration; set server.dns_servers");
                    (
                        ResolverConfig::from_parts(None, vec![], NameServerConfigGroup::new()),
                        ResolverOpts::default(),
                    )
                }
            }
        } else {
            let mut group = NameServerConfigGroup::new();
            for s in servers {
                group.merge(NameServerConfigGroup::from_ips_clear(&[s.ip()], s.port(), true));
            }
            (ResolverConfig::from_parts(None, vec![], group), ResolverOpts::default())
        };
        opts.cache_size = CACHE_SIZE;
        opts.positive_max_ttl = Some(MAX_POSITIVE_TTL);
        opts.negative_max_ttl = Some(NEGATIVE_TTL);
        let mut builder = hickory_resolver::Resolver::builder_with_config(config, provider);
        *builder.options_mut() = opts;
        Dns { resolver: builder.build(), failed: Mutex::new(HashMap::new()) }
    }

    /// The first address of `host` (an IP literal is returned as it is), within `timeout`.
    pub async fn resolve(&self, host: &str, port: u16, timeout: Duration) -> Result<SocketAddr, DnsError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        if let Some(detail) = self.recent_failure(host) {
            return Err(DnsError::Cached { host: host.to_owned(), detail });
        }
        let looked_up = tokio::time::timeout(timeout, self.resolver.lookup_ip(host)).await;
        let err = match looked_up {
            Ok(Ok(ips)) => match ips.iter().next() {
                Some(ip) => return Ok(SocketAddr::new(ip, port)),
                None => DnsError::Failed { host: host.to_owned(), detail: "no address".into() },
            },
            Ok(Err(e)) => DnsError::Failed { host: host.to_owned(), detail: e.to_string() },
            Err(_) => DnsError::TimedOut { host: host.to_owned(), after: timeout },
        };
        self.remember_failure(host, &err);
        Err(err)
    }

    fn recent_failure(&self, host: &str) -> Option<String> {
        let failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        match failed.get(host) {
            Some((at, detail)) if at.elapsed() < NEGATIVE_TTL => Some(detail.clone()),
            _ => None,
        }
    }

    fn remember_failure(&self, host: &str, err: &DnsError) {
        let detail = match err {
            DnsError::Failed { detail, .. } | DnsError::Cached { detail, .. } => detail.clone(),
            DnsError::TimedOut { after, .. } => format!("timed out after {after:?}"),
        };
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        failed.retain(|_, (at, _)| at.elapsed() < NEGATIVE_TTL);
        if failed.len() >= MAX_NEGATIVE {
            if let Some(oldest) = failed.iter().min_by_key(|(_, (at, _))| *at).map(|(h, _)| h.clone()) {
                failed.remove(&oldest);
            }
        }
        failed.insert(host.to_owned(), (Instant::now(), detail));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ip_literals_are_not_looked_up() {
        let dns = Dns::new(&["127.0.0.1:9".parse().unwrap()]);
        let t = Duration::from_secs(1);
        assert_eq!(dns.resolve("127.0.0.1", 80, t).await.unwrap(), "127.0.0.1:80".parse().unwrap());
        assert_eq!(dns.resolve("::1", 443, t).await.unwrap(), "[::1]:443".parse().unwrap());
    }

    #[tokio::test]
    async fn localhost_resolves_without_a_name_server() {
        // RFC 6761: `localhost` is answered by the resolver itself (the name server here is a dead port).
        let dns = Dns::new(&["127.0.0.1:9".parse().unwrap()]);
        let a = dns.resolve("localhost", 8080, Duration::from_secs(2)).await.unwrap();
        assert!(a.ip().is_loopback() && a.port() == 8080, "{a}");
    }

    #[test]
    fn the_negative_cache_is_bounded_and_expires() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let dns = rt.block_on(async { Dns::new(&["127.0.0.1:9".parse().unwrap()]) });
        let err = DnsError::Failed { host: "x".into(), detail: "servfail".into() };
        for i in 0..MAX_NEGATIVE + 10 {
            dns.remember_failure(&format!("h{i}.example"), &err);
        }
        assert_eq!(dns.failed.lock().unwrap().len(), MAX_NEGATIVE);
        assert!(dns.recent_failure(&format!("h{}.example", MAX_NEGATIVE + 9)).is_some());
        assert!(dns.recent_failure("h0.example").is_none(), "the oldest was dropped");
        dns.failed.lock().unwrap().insert("old.example".into(), (Instant::now() - NEGATIVE_TTL, "x".into()));
        assert!(dns.recent_failure("old.example").is_none(), "expired");
    }
}
