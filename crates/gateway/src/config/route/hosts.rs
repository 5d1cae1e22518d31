//! `hosts = ["api.example.com", "*.example.org"]`: the host names a route answers (the `Host` header on
//! HTTP/1.1, `:authority` on h2). Exact names, or `*.` followed by a domain: the wildcard stands for one
//! or more labels. Case-insensitive; a port in the request's host is ignored. A host only ever picks a
//! configured route, never an upstream address.

use toml::Spanned;

use crate::config::cx::Cx;

/// One `hosts` entry, lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `api.example.com`
    Exact(String),
    /// `*.example.org`: the suffix `.example.org`.
    Wildcard(String),
}

/// How well a host matched a route (more specific wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HostMatch {
    /// By a wildcard, with a suffix of this many bytes.
    Wildcard(usize),
    Exact,
}

impl HostPattern {
    /// How `host` (lowercase, without port) matches.
    pub fn matches(&self, host: &str) -> Option<HostMatch> {
        match self {
            HostPattern::Exact(h) => (h == host).then_some(HostMatch::Exact),
            HostPattern::Wildcard(suffix) => (host.len() > suffix.len() && host.ends_with(suffix.as_str()))
                .then_some(HostMatch::Wildcard(suffix.len())),
        }
    }

    /// As written in the config (lowercase).
    pub fn as_config(&self) -> String {
        match self {
            HostPattern::Exact(h) => h.clone(),
            HostPattern::Wildcard(s) => format!("*{s}"),
        }
    }
}

/// The host of a request, lowercase and without a port: from `authority` (h2 `:authority`, or an
/// absolute-form target) or the `Host` header.
pub fn request_host(authority: Option<&str>, host_header: Option<&[u8]>) -> Option<String> {
    let raw = match authority {
        Some(a) => a,
        None => std::str::from_utf8(host_header?).ok()?,
    };
    let raw = raw.trim();
    let host = if let Some(v6) = raw.strip_prefix('[') {
        &raw[..v6.find(']').map_or(raw.len(), |i| i + 2)]
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, _)| h)
    };
    let host = host.trim_end_matches('.');
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

pub(in crate::config) fn hosts(cx: &mut Cx, raw: Option<Spanned<Vec<Spanned<String>>>>) -> Vec<HostPattern> {
    let Some(raw) = raw else { return Vec::new() };
    let span = raw.span();
    let list = raw.into_inner();
    if list.is_empty() {
        cx.err(span, "hosts must not be empty (leave the key out to match any host)");
        return Vec::new();
    }
    let mut out: Vec<HostPattern> = Vec::new();
    for h in list {
        match parse(h.get_ref()) {
            Ok(p) if out.contains(&p) => {
                cx.err(h.span(), format!("hosts: {:?} is listed twice", h.get_ref()))
            }
            Ok(p) => out.push(p),
            Err(msg) => cx.err(h.span(), msg),
        }
    }
    out
}

fn parse(s: &str) -> Result<HostPattern, String> {
    let lower = s.to_ascii_lowercase();
    let (wild, name) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!(
            "invalid host {s:?} in hosts: use a host name (api.example.com) or a wildcard (*.example.com), \
             without port or scheme"
        ));
    }
    Ok(if wild { HostPattern::Wildcard(format!(".{name}")) } else { HostPattern::Exact(name.to_owned()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_and_matching() {
        let w = parse("*.Example.org").unwrap();
        assert_eq!(w, HostPattern::Wildcard(".example.org".into()));
        assert_eq!(w.matches("a.example.org"), Some(HostMatch::Wildcard(12)));
        assert_eq!(w.matches("a.b.example.org"), Some(HostMatch::Wildcard(12)));
        assert_eq!(w.matches("example.org"), None);
        assert_eq!(w.matches("aexample.org"), None);
        let e = parse("API.example.com").unwrap();
        assert_eq!(e.matches("api.example.com"), Some(HostMatch::Exact));
        assert_eq!(e.matches("x.api.example.com"), None);
        assert!(HostMatch::Exact > HostMatch::Wildcard(100));
        for bad in ["", "*.", "a b", "http://a", "a:80", "*a.b", "a..b", "-a.b", "a.*.b"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn request_hosts() {
        assert_eq!(request_host(None, Some(b"API.Example.com:8080")).as_deref(), Some("api.example.com"));
        assert_eq!(request_host(Some("a.b"), Some(b"c.d")).as_deref(), Some("a.b"));
        assert_eq!(request_host(None, Some(b"[::1]:80")).as_deref(), Some("[::1]"));
        assert_eq!(request_host(None, Some(b"a.example.")).as_deref(), Some("a.example"));
        assert_eq!(request_host(None, None), None);
        assert_eq!(request_host(None, Some(b":80")), None);
    }
}
