//! The headers a reverse proxy keeps, adds and answers with — everything about a request's headers that is
//! decided once per request, never per event:
//!
//! - the request id ([`request_id`]): the client's `X-Request-Id` when it is a sane token, else a fresh
//!   128-bit random one; sent upstream, returned on every answer, logged, quoted in error bodies;
//! - the upstream's own request id ([`upstream_request_id`]), for the access log;
//! - `X-Forwarded-For/-Proto/-Host` and the client address ([`Forwarded`]), by `[server] trusted_proxies`;
//! - which upstream response headers survive a conversion ([`CONVERSION_DROPS`]) and a route's
//!   `response_headers` policy ([`ResponseHeaders`]), applied to every answer by
//!   [`crate::exchange::downstream`] (the only writer of response heads) through [`Answer`].

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};

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

/// The header that carries the request id, both ways.
pub const REQUEST_ID: &str = "x-request-id";
/// The longest client `X-Request-Id` kept as is.
pub const MAX_REQUEST_ID: usize = 128;

/// Upstream response headers a converted stream never forwards: the conversion makes them false. The
/// stream is a new representation (other bytes, other type, no known length), so every header that
/// describes the upstream's bytes goes:
///
/// - `content-type`, `content-length`, `content-encoding`: replaced by the stream's own framing (SSE is
///   never compressed; the body is decoded before conversion);
/// - `content-range`, `accept-ranges`: byte ranges of the upstream's body mean nothing in the stream;
/// - `etag`, `last-modified`: validators of the upstream's representation (a conditional request against
///   them would compare different bytes);
/// - `content-md5`, `digest`, `content-digest`, `repr-digest`: integrity checks over bytes the client
///   does not get.
///
/// Hop-by-hop headers ([`is_hop_by_hop`]) never cross the proxy at all, and the
/// gateway's own `cache-control` and `x-accel-buffering` (and on a CORS route `access-control-*`) replace
/// the upstream's.
pub const CONVERSION_DROPS: &[&str] = &[
    "content-type",
    "content-length",
    "content-encoding",
    "content-range",
    "accept-ranges",
    "etag",
    "last-modified",
    "content-md5",
    "digest",
    "content-digest",
    "repr-digest",
];

/// Upstream headers a converted stream replaces with the gateway's own.
const GATEWAY_OWNED: &[&str] = &["cache-control", "x-accel-buffering"];

/// Default of `[server] upstream_request_id_headers`.
pub const DEFAULT_UPSTREAM_REQUEST_ID_HEADERS: &[&str] =
    &["x-request-id", "request-id", "cf-ray", "x-amzn-requestid"];

/// A header name pattern of `response_headers.remove`: an exact name, or a prefix (`x-internal-*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamePattern {
    Exact(HeaderName),
    /// Lowercase; the `*` removed.
    Prefix(String),
}

impl NamePattern {
    /// Parses `name` or `prefix*` (a `*` only as the last character); lowercased.
    pub fn parse(s: &str) -> Result<NamePattern, String> {
        let lower = s.to_ascii_lowercase();
        match lower.strip_suffix('*') {
            Some(prefix) => {
                if prefix.contains('*') {
                    return Err(format!("{s:?}: `*` is only allowed at the end of a name (a prefix glob)"));
                }
                if !prefix.is_empty() && HeaderName::from_bytes(prefix.as_bytes()).is_err() {
                    return Err(format!("{s:?} is not a valid header name pattern"));
                }
                if prefix.is_empty() {
                    return Err(format!("{s:?} would remove every header; name them instead"));
                }
                Ok(NamePattern::Prefix(prefix.to_owned()))
            }
            None if lower.contains('*') => {
                Err(format!("{s:?}: `*` is only allowed at the end of a name (a prefix glob)"))
            }
            None => match HeaderName::from_bytes(lower.as_bytes()) {
                Ok(n) => Ok(NamePattern::Exact(n)),
                Err(_) => Err(format!("{s:?} is not a valid header name (or `prefix*` pattern)")),
            },
        }
    }

    pub fn matches(&self, name: &str) -> bool {
        match self {
            NamePattern::Exact(n) => n.as_str() == name,
            NamePattern::Prefix(p) => name.starts_with(p.as_str()),
        }
    }
}

/// A route's `response_headers = { remove = [...], set = { ... } }`.
///
/// `remove` applies to the headers that come from the upstream (on converted and passed-through
/// answers); `set` applies to every answer of the route — converted, passed through, the JSON errors and
/// refusals of the route, CORS preflights — and replaces any header of the same name (except the request
/// id, which is [`Answer`]'s).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseHeaders {
    pub remove: Vec<NamePattern>,
    pub set: Vec<(HeaderName, HeaderValue)>,
}

impl ResponseHeaders {
    pub fn removes(&self, name: &str) -> bool {
        self.remove.iter().any(|p| p.matches(name))
    }
}

/// What every answer of one request carries besides its own headers: the request id and the route's
/// `response_headers` (none before a route is chosen).
#[derive(Debug, Clone)]
pub struct Answer {
    pub request_id: HeaderValue,
    pub policy: Option<Arc<ResponseHeaders>>,
}

impl Answer {
    /// An answer before a route was chosen: only the request id.
    pub fn bare(request_id: HeaderValue) -> Answer {
        Answer { request_id, policy: None }
    }

    /// The request id as text (it is always visible ASCII).
    pub fn request_id(&self) -> &str {
        self.request_id.to_str().unwrap_or("")
    }

    /// Whether the route's policy removes an upstream header named `name`.
    pub fn removes(&self, name: &str) -> bool {
        self.policy.as_deref().is_some_and(|p| p.removes(name))
    }

    /// Finishes a head: `X-Request-Id` unless the head already has one (an upstream's own id wins on the
    /// answers that carry the upstream's head: it is the one SDKs report and providers ask for; the access
    /// log has both), then the route's `set` headers, replacing any of the same name.
    pub fn finish(&self, head: &mut ResponseHeader) {
        if !head.headers.contains_key(REQUEST_ID) {
            let _ = head.insert_header(REQUEST_ID, self.request_id.clone());
        }
        if let Some(p) = &self.policy {
            for (name, value) in &p.set {
                let _ = head.insert_header(name.clone(), value.clone());
            }
        }
    }

    /// Copies the upstream's end-to-end headers onto a converted stream's head: every header but the
    /// hop-by-hop ones, [`CONVERSION_DROPS`], the gateway's own (`cache-control`, `x-accel-buffering`, and
    /// `access-control-*` on a CORS route) and the route's `remove` patterns. Repeated headers
    /// (`set-cookie`) stay separate lines.
    pub fn copy_upstream(&self, from: &ResponseHeader, to: &mut ResponseHeader, cors_route: bool) {
        for (name, value) in self.upstream_kept(from, cors_route) {
            let _ = to.append_header(name.clone(), value.clone());
        }
    }

    /// The upstream headers [`Answer::copy_upstream`] copies.
    pub fn upstream_kept<'h>(
        &'h self,
        from: &'h ResponseHeader,
        cors_route: bool,
    ) -> impl Iterator<Item = (&'h HeaderName, &'h HeaderValue)> + 'h {
        let connection = from.headers.get(http::header::CONNECTION).map(|v| v.as_bytes());
        from.headers.iter().filter(move |(name, _)| {
            let n = name.as_str();
            !(is_hop_by_hop(n, connection)
                || CONVERSION_DROPS.contains(&n)
                || GATEWAY_OWNED.contains(&n)
                || (cors_route && n.starts_with("access-control-"))
                || self.removes(n))
        })
    }

    /// The most headers [`Answer::finish`] adds.
    pub fn added(&self) -> usize {
        1 + self.policy.as_deref().map_or(0, |p| p.set.len())
    }
}

/// Whether `v` is kept as a request id: 1 to [`MAX_REQUEST_ID`] visible ASCII characters (no space, no
/// control character).
pub fn sane_request_id(v: &[u8]) -> bool {
    !v.is_empty() && v.len() <= MAX_REQUEST_ID && v.iter().all(|b| b.is_ascii_graphic())
}

/// The request's id: the client's `X-Request-Id` when it is sane ([`sane_request_id`]; the first one if
/// several), else a new one ([`new_request_id`]).
pub fn request_id(req: &RequestHeader) -> HeaderValue {
    match req.headers.get(REQUEST_ID) {
        Some(v) if sane_request_id(v.as_bytes()) => v.clone(),
        _ => new_request_id(),
    }
}

/// 128 random bits as 32 lowercase hex digits (from the OS's generator; a counter mixed with the clock
/// should it ever fail, so that a request is never refused for want of an id).
pub fn new_request_id() -> HeaderValue {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        bytes[..8].copy_from_slice(&n.to_le_bytes());
        bytes[8..].copy_from_slice(&(t.as_nanos() as u64).to_le_bytes());
    }
    let mut hex = [0u8; 32];
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().enumerate() {
        hex[2 * i] = DIGITS[usize::from(b >> 4)];
        hex[2 * i + 1] = DIGITS[usize::from(b & 15)];
    }
    HeaderValue::from_bytes(&hex).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// The upstream's own request id: the first of `names` the upstream's head has (a sane token only).
pub fn upstream_request_id(resp: &ResponseHeader, names: &[HeaderName]) -> Option<String> {
    names
        .iter()
        .filter_map(|n| resp.headers.get(n))
        .find(|v| sane_request_id(v.as_bytes()))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// One CIDR block of `trusted_proxies` (`10.0.0.0/8`, `::1/128`; a bare address is a single host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    bits: u8,
}

impl Cidr {
    /// Parses `addr/bits` or `addr`; host bits must be zero.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (a, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| format!("{s:?} is not an IP address or CIDR block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => match b.parse::<u8>() {
                Ok(n) if n <= max && b.bytes().all(|c| c.is_ascii_digit()) => n,
                _ => return Err(format!("{s:?}: the prefix length must be 0-{max}")),
            },
        };
        let c = Cidr { addr, bits };
        if c.network(addr) != addr {
            let net = c.network(addr);
            return Err(format!("{s:?} has host bits set (the block is {net}/{bits})"));
        }
        Ok(c)
    }

    /// `ip` with the bits past the prefix cleared.
    fn network(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                IpAddr::V4((u32::from(v) & mask).into())
            }
            IpAddr::V6(v) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.bits)).unwrap_or(0);
                IpAddr::V6((u128::from(v) & mask).into())
            }
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.addr.is_ipv4() && self.network(ip) == self.addr
    }
}

/// `[server] trusted_proxies`: the peers whose `X-Forwarded-*` headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<Cidr>);

impl TrustedProxies {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }
}

/// The `X-Forwarded-*` headers sent upstream and the client address the access log records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// The client: the peer; behind trusted proxies, the rightmost `X-Forwarded-For` address that is not
    /// a trusted proxy.
    pub client: Option<IpAddr>,
    /// `X-Forwarded-For`: the incoming list extended with the peer when the peer is trusted, else the
    /// peer alone (a client cannot make ssegate forward or log an address of its choosing).
    pub xff: Option<String>,
    /// `X-Forwarded-Proto`: `https` or `http` as the client reached ssegate, or a trusted peer's value.
    pub proto: HeaderValue,
    /// `X-Forwarded-Host`: the client's `Host` (or h2 `:authority`), or a trusted peer's value.
    pub host: Option<HeaderValue>,
    /// Whether the peer is a trusted proxy: only then are its `Forwarded` (RFC 7239) and `X-Real-IP`
    /// headers passed on (from anyone else they would be a client's claim about itself).
    pub trusted_peer: bool,
}

impl Forwarded {
    /// Decides the forwarded headers of `req`, which arrived from `peer` (over TLS when `tls`).
    pub fn new(req: &RequestHeader, peer: Option<IpAddr>, tls: bool, trusted: &TrustedProxies) -> Forwarded {
        let peer = peer.map(|p| p.to_canonical());
        let proto = HeaderValue::from_static(if tls { "https" } else { "http" });
        let own_host = req
            .headers
            .get(http::header::HOST)
            .cloned()
            .or_else(|| req.uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()));
        let Some(peer) = peer else {
            return Forwarded { client: None, xff: None, proto, host: own_host, trusted_peer: false };
        };
        if !trusted.contains(peer) {
            let xff = Some(peer.to_string());
            return Forwarded { client: Some(peer), xff, proto, host: own_host, trusted_peer: false };
        }
        // A trusted peer: believe its headers.
        let incoming: Vec<&str> = req
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let mut client = peer;
        for entry in incoming.iter().rev() {
            if !trusted.contains(client) {
                break;
            }
            match entry.parse::<IpAddr>() {
                Ok(ip) => client = ip.to_canonical(),
                Err(_) => break,
            }
        }
        let xff =
            if incoming.is_empty() { peer.to_string() } else { format!("{}, {peer}", incoming.join(", ")) };
        let theirs = |name: &str| req.headers.get(name).filter(|v| !v.is_empty()).cloned();
        Forwarded {
            client: Some(client),
            xff: Some(xff),
            proto: theirs("x-forwarded-proto").unwrap_or(proto),
            host: theirs("x-forwarded-host").or(own_host),
            trusted_peer: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/x", None).unwrap();
        for (n, v) in headers {
            r.append_header(n.to_string(), *v).unwrap();
        }
        r
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn request_id_kept_when_sane_else_new() {
        assert_eq!(request_id(&req(&[("x-request-id", "abc-123_X.y")])), "abc-123_X.y");
        for bad in ["a b", "", &"x".repeat(129)] {
            let id = request_id(&req(&[("x-request-id", bad)]));
            assert_eq!(id.len(), 32, "{bad:?}");
            assert!(id.as_bytes().iter().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        }
        assert!(sane_request_id("x".repeat(128).as_bytes()));
        assert!(!sane_request_id("é".as_bytes()));
        assert_ne!(new_request_id(), new_request_id());
    }

    #[test]
    fn name_patterns() {
        assert_eq!(
            NamePattern::parse("Server").unwrap(),
            NamePattern::Exact(HeaderName::from_static("server"))
        );
        let p = NamePattern::parse("X-Internal-*").unwrap();
        assert!(p.matches("x-internal-a") && p.matches("x-internal-") && !p.matches("x-interna"));
        assert!(NamePattern::parse("x-*-a").unwrap_err().contains("only allowed at the end"));
        assert!(NamePattern::parse("*").unwrap_err().contains("every header"));
        assert!(NamePattern::parse("a b").unwrap_err().contains("not a valid header name"));
    }

    #[test]
    fn cidr_parse_and_contains() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(ip("10.1.2.3")) && !c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.0.0.1")));
        assert!(Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(!Cidr::parse("0.0.0.0/0").unwrap().contains(ip("::1")));
        assert!(Cidr::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("2001:db8::1")));
        assert_eq!(
            Cidr::parse("10.0.0.1/8").unwrap_err(),
            "\"10.0.0.1/8\" has host bits set (the block is 10.0.0.0/8)"
        );
        assert!(Cidr::parse("10.0.0.0/33").unwrap_err().contains("0-32"));
        assert!(Cidr::parse("10.0.0.0/+8").unwrap_err().contains("0-32"));
        assert!(Cidr::parse("localhost").unwrap_err().contains("not an IP address"));
    }

    #[test]
    fn forwarded_untrusted_peer_replaces() {
        let r = req(&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-proto", "https"), ("host", "gw")]);
        let f = Forwarded::new(&r, Some(ip("127.0.0.1")), false, &TrustedProxies::default());
        assert_eq!(f.client, Some(ip("127.0.0.1")));
        assert_eq!(f.xff.as_deref(), Some("127.0.0.1"));
        assert_eq!(f.proto, "http");
        assert_eq!(f.host.unwrap(), "gw");
    }

    #[test]
    fn forwarded_trusted_peer_extends() {
        let trusted = TrustedProxies(vec![Cidr::parse("10.0.0.0/8").unwrap()]);
        let r = req(&[
            ("x-forwarded-for", "6.6.6.6, 1.2.3.4"),
            ("x-forwarded-for", "10.0.0.9"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "api.example"),
        ]);
        let f = Forwarded::new(&r, Some(ip("10.0.0.1")), false, &trusted);
        assert_eq!(f.xff.as_deref(), Some("6.6.6.6, 1.2.3.4, 10.0.0.9, 10.0.0.1"));
        assert_eq!(f.client, Some(ip("1.2.3.4")), "the rightmost untrusted address");
        assert_eq!(f.proto, "https");
        assert_eq!(f.host.unwrap(), "api.example");
        let f = Forwarded::new(&req(&[("x-forwarded-for", "junk")]), Some(ip("10.0.0.1")), true, &trusted);
        assert_eq!(f.client, Some(ip("10.0.0.1")));
        assert_eq!(f.xff.as_deref(), Some("junk, 10.0.0.1"));
        assert_eq!(f.proto, "https");
    }

    #[test]
    fn converted_copy_drops_what_the_conversion_falsifies() {
        let mut up = ResponseHeader::build(200, None).unwrap();
        for (n, v) in [
            ("content-type", "application/x-ndjson"),
            ("content-length", "10"),
            ("content-encoding", "gzip"),
            ("etag", "\"x\""),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("cache-control", "max-age=60"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("x-ratelimit-remaining", "9"),
            ("server", "up"),
            ("x-internal-a", "1"),
            ("access-control-allow-origin", "*"),
        ] {
            up.append_header(n.to_string(), v).unwrap();
        }
        let policy = ResponseHeaders {
            remove: vec![NamePattern::parse("server").unwrap(), NamePattern::parse("x-internal-*").unwrap()],
            set: vec![(HeaderName::from_static("x-served-by"), HeaderValue::from_static("ssegate"))],
        };
        let a = Answer { request_id: HeaderValue::from_static("rid"), policy: Some(Arc::new(policy)) };
        let mut to = ResponseHeader::build(200, None).unwrap();
        a.copy_upstream(&up, &mut to, true);
        a.finish(&mut to);
        let names: Vec<&str> = to.headers.keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["set-cookie", "x-ratelimit-remaining", "x-request-id", "x-served-by"]);
        assert_eq!(to.headers.get_all("set-cookie").iter().count(), 2);
    }
}
