//! Upstream pools in tests: one `upstreams` entry as a typed builder, and a port where nothing listens.

use crate::gateway::{Toml, UpstreamUrl};

/// One entry of a route's `upstreams`.
#[derive(Debug, Clone)]
pub struct BackendSpec {
    keys: Vec<(String, Toml)>,
}

impl BackendSpec {
    /// A backend at `upstream` (a mock or a URL) named `name`.
    pub fn new<U: UpstreamUrl + ?Sized>(name: &str, upstream: &U) -> BackendSpec {
        BackendSpec {
            keys: vec![("url".into(), Toml::Str(upstream.upstream_url())), ("name".into(), Toml::from(name))],
        }
    }

    pub fn weight(mut self, w: i64) -> Self {
        self.keys.push(("weight".into(), Toml::Int(w)));
        self
    }

    pub fn backup(mut self) -> Self {
        self.keys.push(("backup".into(), Toml::Bool(true)));
        self
    }

    /// `headers`
    pub fn headers(mut self, headers: &[(&str, &str)]) -> Self {
        self.keys.push(("headers".into(), Toml::table(headers.iter().map(|(k, v)| (*k, *v)))));
        self
    }
}

impl From<BackendSpec> for Toml {
    fn from(b: BackendSpec) -> Toml {
        Toml::Table(b.keys)
    }
}

/// `http://127.0.0.1:PORT` where a listener was bound and closed: connections are refused.
pub fn refusing_url() -> String {
    crate::mock::dead_upstream_url()
}
