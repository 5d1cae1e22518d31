//! Route matching: the request's host first (among the routes that list `hosts`: an exact name before a
//! wildcard, a longer wildcard before a shorter one), then the longest `path_prefix` matching whole path
//! segments; routes without `hosts` are the fallback for every host.

use crate::config::{HostMatch, HostPattern, Route};

/// Routes ordered for matching.
#[derive(Debug)]
pub struct Router<T> {
    /// (prefix, value), longest prefix first: routes without `hosts`.
    entries: Vec<(String, T)>,
    /// (hosts, prefix, value), longest prefix first: routes with `hosts`.
    hosted: Vec<(Vec<HostPattern>, String, T)>,
}

impl<T> Router<T> {
    /// Builds a router over `(prefix, value)` pairs (no hosts).
    pub fn new(entries: Vec<(String, T)>) -> Self {
        Router::with_hosts(entries.into_iter().map(|(p, v)| (Vec::new(), p, v)).collect())
    }

    /// Builds a router over `(hosts, prefix, value)`; empty `hosts`: any host.
    pub fn with_hosts(all: Vec<(Vec<HostPattern>, String, T)>) -> Self {
        let (mut hosted, plain): (Vec<_>, Vec<_>) = all.into_iter().partition(|(h, _, _)| !h.is_empty());
        let mut entries: Vec<(String, T)> = plain.into_iter().map(|(_, p, v)| (p, v)).collect();
        entries.sort_by_key(|e| std::cmp::Reverse(e.0.len()));
        hosted.sort_by_key(|e| std::cmp::Reverse(e.1.len()));
        Router { entries, hosted }
    }

    /// The value whose prefix matches `path` among the routes without hosts, and the path with the prefix
    /// removed (always starting with `/`).
    pub fn find<'p>(&self, path: &'p str) -> Option<(&T, &'p str)> {
        self.entries.iter().find_map(|(prefix, v)| strip(prefix, path).map(|rest| (v, rest)))
    }

    /// Every value, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().map(|(_, v)| v).chain(self.hosted.iter().map(|(_, _, v)| v))
    }

    /// Whether any route lists `hosts` (else the request's host is not looked at).
    pub fn uses_hosts(&self) -> bool {
        !self.hosted.is_empty()
    }

    /// The route for a request to `host` (lowercase, no port; see `config::request_host`) and `path`.
    pub fn find_for<'p>(&self, host: Option<&str>, path: &'p str) -> Option<(&T, &'p str)> {
        if let Some(host) = host.filter(|_| !self.hosted.is_empty()) {
            let mut best: Option<(HostMatch, &T, &'p str)> = None;
            for (hosts, prefix, v) in &self.hosted {
                let Some(m) = hosts.iter().filter_map(|h| h.matches(host)).max() else { continue };
                let Some(rest) = strip(prefix, path) else { continue };
                // Longest prefix first: a later entry wins only with a more specific host match.
                if best.as_ref().is_none_or(|(b, _, _)| m > *b) {
                    best = Some((m, v, rest));
                }
            }
            if let Some((_, v, rest)) = best {
                return Some((v, rest));
            }
        }
        self.find(path)
    }
}

/// `path` without `prefix` if `prefix` matches whole segments of it.
fn strip<'p>(prefix: &str, path: &'p str) -> Option<&'p str> {
    if prefix == "/" {
        return Some(path);
    }
    let rest = path.strip_prefix(prefix)?;
    if rest.is_empty() {
        Some("/")
    } else if rest.starts_with('/') {
        Some(rest)
    } else {
        None
    }
}

/// The path sent upstream for a request `path` (no query) under `route`.
pub fn upstream_path(route: &Route, path: &str, rest: &str, query: Option<&str>) -> String {
    let tail = if route.strip_prefix { rest } else { path };
    let base = &route.upstream.base_path;
    let mut out = String::with_capacity(base.len() + tail.len() + query.map_or(0, |q| q.len() + 1));
    out.push_str(base);
    out.push_str(tail);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_whole_segment_prefix_wins() {
        let r = Router::new(vec![("/a".to_string(), 1), ("/a/b".to_string(), 2), ("/".to_string(), 0)]);
        assert_eq!(r.find("/a/b/c"), Some((&2, "/c")));
        assert_eq!(r.find("/a/b"), Some((&2, "/")));
        assert_eq!(r.find("/a/bc"), Some((&1, "/bc")));
        assert_eq!(r.find("/ab"), Some((&0, "/ab")));
        assert_eq!(r.find("/a"), Some((&1, "/")));
    }

    #[test]
    fn host_then_prefix_then_fallback() {
        let exact = |h: &str| HostPattern::Exact(h.into());
        let wild = |s: &str| HostPattern::Wildcard(s.into());
        let r = Router::with_hosts(vec![
            (vec![exact("api.a.com")], "/".to_string(), 1),
            (vec![wild(".a.com")], "/v1".to_string(), 2),
            (vec![wild(".b.a.com")], "/".to_string(), 3),
            (vec![], "/".to_string(), 0),
            (vec![], "/v1".to_string(), 4),
        ]);
        assert_eq!(r.find_for(Some("api.a.com"), "/v1/x"), Some((&1, "/v1/x")), "exact beats a wildcard");
        assert_eq!(r.find_for(Some("x.a.com"), "/v1/x"), Some((&2, "/x")));
        assert_eq!(r.find_for(Some("x.a.com"), "/v2"), Some((&0, "/v2")), "no hosted prefix: fallback");
        assert_eq!(r.find_for(Some("c.b.a.com"), "/v1/x"), Some((&3, "/v1/x")), "longer wildcard wins");
        assert_eq!(r.find_for(Some("other.org"), "/v1/x"), Some((&4, "/x")));
        assert_eq!(r.find_for(None, "/v1/x"), Some((&4, "/x")));
    }

    #[test]
    fn no_match() {
        let r = Router::new(vec![("/x".to_string(), 1)]);
        assert_eq!(r.find("/y"), None);
        assert_eq!(r.find("/xy"), None);
    }
}
