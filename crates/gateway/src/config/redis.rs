//! `[redis]`: the Redis server that `resume = { store = "redis" }` routes keep their streams in.
//!
//! ```toml
//! [redis]
//! url = "redis://127.0.0.1:6379/0"   # rediss:// for TLS; ${env:NAME} / ${file:PATH} are resolved
//! key_prefix = "ssegate:"
//! ```
//!
//! The table is optional; a route with `store = "redis"` needs it (checked with the routes).

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::cx::Cx;
use crate::security::Secret;

/// Default `key_prefix`.
pub const DEFAULT_KEY_PREFIX: &str = "ssegate:";
/// Longest accepted `key_prefix`, in bytes.
pub const MAX_KEY_PREFIX: usize = 128;

/// `[redis]`
#[derive(Debug, Clone)]
pub struct Redis {
    /// `url` with its references resolved: `redis://` or `rediss://` (TLS), `[user:password@]host[:port][/db]`.
    /// It may hold a password: never printed (see [`Redis::shown`]).
    pub url: Secret,
    /// `url` with any password replaced by `***`: for logs and errors.
    pub shown: String,
    /// `key_prefix` (default `"ssegate:"`): starts every key ssegate writes, so several gateways (or other
    /// applications) can share one Redis database.
    pub key_prefix: String,
    /// `rediss://`: TLS (rustls; the system's roots, or `SSL_CERT_FILE` / `SSL_CERT_DIR` when set).
    pub tls: bool,
}

/// `[redis]` as serde reads it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRedis {
    url: Option<Spanned<String>>,
    key_prefix: Option<Spanned<String>>,
}

/// Validates `[redis]`.
pub(super) fn redis(cx: &mut Cx, raw: Option<Spanned<RawRedis>>) -> Option<Redis> {
    let raw = raw?;
    let header: Range<usize> = raw.span();
    let raw = raw.into_inner();
    let key_prefix = match raw.key_prefix {
        None => DEFAULT_KEY_PREFIX.to_owned(),
        Some(p) => {
            let v = p.get_ref();
            if v.is_empty() {
                cx.err(
                    p.span(),
                    "redis.key_prefix must not be empty (keys of other applications could collide)",
                );
            } else if v.len() > MAX_KEY_PREFIX {
                cx.err(p.span(), format!("redis.key_prefix is longer than {MAX_KEY_PREFIX} bytes"));
            } else if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
                cx.err(p.span(), "redis.key_prefix must not contain whitespace or control characters");
            }
            p.into_inner()
        }
    };
    let Some(url_raw) = raw.url else {
        cx.err(header, "missing key `url` in [redis]");
        return None;
    };
    let url = cx.interpolate("redis.url", &url_raw)?;
    match check_url(&url) {
        Ok(tls) => Some(Redis { shown: shown(&url), url: Secret::new(url), key_prefix, tls }),
        Err(why) => {
            cx.err(url_raw.span(), format!("redis.url {:?}: {why}", shown(&url)));
            None
        }
    }
}

/// `redis://` or `rediss://` with a host, in a form the client accepts; `Ok(true)` for TLS.
pub(super) fn check_url(url: &str) -> Result<bool, String> {
    use redis::IntoConnectionInfo;
    let lower = url.get(..9).unwrap_or(url).to_ascii_lowercase();
    let tls = if lower.starts_with("rediss://") {
        true
    } else if lower.starts_with("redis://") {
        false
    } else {
        return Err("must start with redis:// or rediss://".to_owned());
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace or control characters".to_owned());
    }
    if url.contains('#') {
        return Err(
            "must not contain a fragment (`#insecure` is not supported: the server's certificate is always \
                    verified)"
                .to_owned(),
        );
    }
    match url.into_connection_info() {
        Ok(_) => Ok(tls),
        Err(e) => Err(format!("not a valid Redis URL ({e})")),
    }
}

/// `url` with the password of its userinfo (`user:password@`, `:password@`) replaced by `***`.
pub fn shown(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else { return url.to_owned() };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else { return url.to_owned() };
    let userinfo = &rest[..at];
    let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
    let masked = if userinfo.contains(':') { format!("{user}:***") } else { "***".to_owned() };
    format!("{}{masked}{}", &url[..scheme_end + 3], &rest[at..])
}
