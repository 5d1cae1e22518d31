//! A route's upstream keys: `upstream` (the URL), `ca_file`, and `upstream_headers` with its `${env:NAME}`
//! and `${file:PATH}` references, resolved at load. Secret values never appear in a message: only the
//! variable, file or header name does.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;

use http::{HeaderName, HeaderValue};
use toml::Spanned;

use crate::config::cx::Cx;
use crate::config::values::{check_path_chars, parse_port, strip_prefix_ci};
use crate::security::{InjectedHeader, Secret};

/// Headers `upstream_headers` may not set: the gateway owns them (framing, hop-by-hop, Host).
const RESERVED_HEADERS: [&str; 12] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "accept-encoding",
    "proxy-authenticate",
    "proxy-authorization",
];

/// A route's upstream, from `upstream = "http(s)://host[:port][/base/path]"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// https
    pub tls: bool,
    /// Host name or IP literal (without brackets), used for DNS and SNI.
    pub host: String,
    /// Explicit port, or 80 / 443.
    pub port: u16,
    /// The path part of the URL without a trailing `/` ("" when none): prepended to the forwarded path.
    pub base_path: String,
    /// The `Host` header sent upstream: `host` plus `:port` when the port is not the scheme's default.
    pub host_header: String,
    /// `ca_file` (https only): extra PEM roots, checked readable at validation.
    pub ca_file: Option<PathBuf>,
}

/// `upstream` (required) and `ca_file` (https only) of the route whose table starts at `header`;
/// `label` (` "name"`) names the route in a missing-key message.
pub(in crate::config) fn upstream(
    cx: &mut Cx,
    header: &Range<usize>,
    label: &str,
    raw: Option<Spanned<String>>,
    ca_file: Option<Spanned<String>>,
) -> Option<Upstream> {
    let upstream = match raw {
        None => {
            cx.err(header.clone(), format!("missing key `upstream` in [[route]]{label}"));
            None
        }
        Some(u) => match parse_upstream(u.get_ref()) {
            Err(msg) => {
                cx.err(u.span(), msg);
                None
            }
            Ok(up) => Some(up),
        },
    };
    let ca_file = match (&upstream, ca_file) {
        (_, None) => None,
        (Some(up), Some(ca)) if !up.tls => {
            cx.err(ca.span(), "ca_file is only used with an https:// upstream");
            None
        }
        (_, Some(ca)) => cx.readable_file("[[route]]", "ca_file", Some(ca), header.clone(), true),
    };
    upstream.map(|mut u| {
        u.ca_file = ca_file;
        u
    })
}

/// `upstream_headers`: valid, non-reserved, distinct names; values with their references resolved.
pub(in crate::config) fn upstream_headers(
    cx: &mut Cx,
    raw: Spanned<BTreeMap<Spanned<String>, Spanned<String>>>,
) -> Vec<InjectedHeader> {
    let mut out: Vec<InjectedHeader> = Vec::new();
    for (key, value) in raw.into_inner() {
        let k = key.get_ref();
        let taken = |n: &HeaderName| out.iter().any(|h| h.name == *n);
        let Some(name) = cx.header_name("upstream_headers", &key, &RESERVED_HEADERS, taken) else { continue };
        let Some(text) = interpolate(cx, k, &value) else { continue };
        match HeaderValue::from_str(text.expose()) {
            Ok(mut v) => {
                v.set_sensitive(true);
                out.push(InjectedHeader { name, value: v });
            }
            Err(_) => cx.err(
                value.span(),
                format!(
                    "upstream_headers.{k}: the value (after resolving references) is not a valid header \
                     value (control characters or a trailing newline?)"
                ),
            ),
        }
    }
    out
}

/// Resolves `${env:NAME}` and `${file:PATH}` in an `upstream_headers` value.
fn interpolate(cx: &mut Cx, key: &str, raw: &Spanned<String>) -> Option<Secret> {
    cx.interpolate(&format!("upstream_headers.{key}"), raw).map(Secret::new)
}

/// `http(s)://host[:port][/path]`.
pub(in crate::config) fn parse_upstream(url: &str) -> Result<Upstream, String> {
    let fail = |why: &str| Err(format!("invalid upstream {url:?}: {why}"));
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return fail("must not contain whitespace or control characters");
    }
    let (tls, rest) = if let Some(rest) = strip_prefix_ci(url, "http://") {
        (false, rest)
    } else if let Some(rest) = strip_prefix_ci(url, "https://") {
        (true, rest)
    } else {
        return fail("must start with http:// or https://");
    };
    if rest.contains('?') {
        return fail("must not contain a query (`?`); the client's query is forwarded");
    }
    if rest.contains('#') {
        return fail("must not contain a fragment (`#`)");
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return fail("must not contain userinfo (`user@`); credentials belong in request headers");
    }
    if authority.is_empty() {
        return fail("missing host");
    }
    let (host, port, v6) = if let Some(after) = authority.strip_prefix('[') {
        let Some(end) = after.find(']') else { return fail("unterminated IPv6 literal (missing `]`)") };
        let literal = &after[..end];
        if literal.parse::<std::net::Ipv6Addr>().is_err() {
            return fail(&format!("invalid IPv6 address {literal:?}"));
        }
        let tail = &after[end + 1..];
        let port = if tail.is_empty() {
            None
        } else if let Some(p) = tail.strip_prefix(':') {
            Some(p)
        } else {
            return fail("expected `:port` after the IPv6 literal");
        };
        (literal.to_ascii_lowercase(), port, true)
    } else {
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if host.is_empty() {
            return fail("missing host");
        }
        if host.contains(':') {
            return fail("IPv6 addresses must be in brackets, e.g. http://[::1]:8080");
        }
        let host_ok = host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
            && !host.starts_with('.')
            && !host.contains("..");
        if !host_ok {
            return fail(&format!("invalid host {host:?}"));
        }
        (host.to_ascii_lowercase(), port, false)
    };
    let default_port = if tls { 443 } else { 80 };
    let port = match port {
        None => default_port,
        Some(p) => match parse_port(p) {
            Some(p) if p != 0 => p,
            _ => return fail(&format!("invalid port {p:?}: expected 1-65535")),
        },
    };
    if !path.is_empty() {
        if let Err(why) = check_path_chars(path) {
            return fail(&format!("path {why}"));
        }
    }
    let base_path = path.trim_end_matches('/').to_owned();
    let bracketed = if v6 { format!("[{host}]") } else { host.clone() };
    let host_header = if port == default_port { bracketed } else { format!("{bracketed}:{port}") };
    Ok(Upstream { tls, host, port, base_path, host_header, ca_file: None })
}
