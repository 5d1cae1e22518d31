//! Header keys shared by the sections: `[server] trusted_proxies` and `upstream_request_id_headers`, and a
//! route's `response_headers`. The runtime types live in [`crate::headers`]; this file only validates.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use serde::Deserialize;
use toml::Spanned;

use super::cx::Cx;
use crate::headers::{
    Cidr, NamePattern, ResponseHeaders, TrustedProxies, DEFAULT_UPSTREAM_REQUEST_ID_HEADERS, REQUEST_ID,
};

/// Headers `response_headers.set` may not name: framing and hop-by-hop headers are the gateway's (and
/// pingora's), the request id is the gateway's.
const SET_RESERVED: &[&str] = &[
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    REQUEST_ID,
];

/// Headers `response_headers.remove` may not match: a passed-through body cannot be read without them.
const REMOVE_RESERVED: &[&str] = &["content-length", "content-encoding", "content-type", "transfer-encoding"];

/// `response_headers = { remove = [...], set = { ... } }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawResponseHeaders {
    remove: Option<Vec<Spanned<String>>>,
    set: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
}

/// A route's `response_headers`; `None` when it changes nothing.
pub(super) fn response_headers(cx: &mut Cx, raw: RawResponseHeaders) -> Option<Arc<ResponseHeaders>> {
    let mut out = ResponseHeaders::default();
    for item in raw.remove.unwrap_or_default() {
        match NamePattern::parse(item.get_ref()) {
            Ok(p) => match REMOVE_RESERVED.iter().find(|r| p.matches(r)) {
                Some(r) => cx.err(
                    item.span(),
                    format!(
                        "response_headers.remove: {:?} would remove {r}, which a client needs to read the body",
                        item.get_ref()
                    ),
                ),
                None => out.remove.push(p),
            },
            Err(e) => cx.err(item.span(), format!("response_headers.remove: {e}")),
        }
    }
    for (key, value) in raw.set.unwrap_or_default() {
        let k = key.get_ref();
        let taken = |n: &HeaderName| out.set.iter().any(|(m, _)| m == n);
        let Some(name) = cx.header_name("response_headers.set", &key, SET_RESERVED, taken) else { continue };
        match HeaderValue::from_str(value.get_ref()) {
            Ok(v) => out.set.push((name, v)),
            Err(_) => cx.err(
                value.span(),
                format!(
                    "response_headers.set.{k}: not a valid header value (control characters or a newline?)"
                ),
            ),
        }
    }
    (out != ResponseHeaders::default()).then(|| Arc::new(out))
}

/// `[server] trusted_proxies = ["10.0.0.0/8", "::1"]` (default: none).
pub(super) fn trusted_proxies(cx: &mut Cx, raw: Option<Vec<Spanned<String>>>) -> TrustedProxies {
    let mut out = Vec::new();
    for item in raw.unwrap_or_default() {
        match Cidr::parse(item.get_ref()) {
            Ok(c) => out.push(c),
            Err(e) => cx.err(item.span(), format!("trusted_proxies: {e}")),
        }
    }
    TrustedProxies(out)
}

/// `[server] upstream_request_id_headers` (default `x-request-id`, `request-id`, `cf-ray`,
/// `x-amzn-requestid`; `[]` logs none).
pub(super) fn upstream_request_id_headers(cx: &mut Cx, raw: Option<Vec<Spanned<String>>>) -> Vec<HeaderName> {
    let Some(raw) = raw else {
        return DEFAULT_UPSTREAM_REQUEST_ID_HEADERS.iter().map(|n| HeaderName::from_static(n)).collect();
    };
    let mut out = Vec::new();
    for item in raw {
        match HeaderName::from_bytes(item.get_ref().as_bytes()) {
            Ok(n) => out.push(n),
            Err(_) => cx.err(
                item.span(),
                format!("upstream_request_id_headers: {:?} is not a valid header name", item.get_ref()),
            ),
        }
    }
    out
}
