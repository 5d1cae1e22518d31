//! Route matching: the longest `path_prefix` matching whole path segments wins.

use crate::config::Route;

/// Routes ordered for matching.
#[derive(Debug)]
pub struct Router<T> {
    /// (prefix, value), longest prefix first.
    entries: Vec<(String, T)>,
}

impl<T> Router<T> {
    /// Builds a router over `(prefix, value)` pairs.
    pub fn new(mut entries: Vec<(String, T)>) -> Self {
        entries.sort_by_key(|e| std::cmp::Reverse(e.0.len()));
        Router { entries }
    }

    /// Every value, longest prefix first.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().map(|(_, v)| v)
    }

    /// The value whose prefix matches `path`, and the path with the prefix removed (always starting with `/`).
    pub fn find<'p>(&self, path: &'p str) -> Option<(&T, &'p str)> {
        self.entries.iter().find_map(|(prefix, v)| strip(prefix, path).map(|rest| (v, rest)))
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
    fn no_match() {
        let r = Router::new(vec![("/x".to_string(), 1)]);
        assert_eq!(r.find("/y"), None);
        assert_eq!(r.find("/xy"), None);
    }
}
