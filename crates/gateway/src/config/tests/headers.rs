//! Config unit tests: `[server] trusted_proxies`, `[server] upstream_request_id_headers` and a route's
//! `response_headers`.

use super::*;
use crate::headers::{NamePattern, DEFAULT_UPSTREAM_REQUEST_ID_HEADERS};

/// `MINIMAL` with `extra` lines added to `[server]` (starting on line 3).
fn server_with(extra: &str) -> String {
    MINIMAL.replacen("\n\n[[route]]", &format!("\n{extra}\n\n[[route]]"), 1)
}

#[test]
fn server_header_keys_defaults() {
    let c = load(MINIMAL).unwrap();
    assert!(c.server.trusted_proxies.0.is_empty());
    let names: Vec<&str> = c.server.upstream_request_id_headers.iter().map(|n| n.as_str()).collect();
    assert_eq!(names, DEFAULT_UPSTREAM_REQUEST_ID_HEADERS);
    assert!(c.routes[0].response_headers.is_none());
}

#[test]
fn trusted_proxies_valid_and_invalid() {
    let c = load(&server_with("trusted_proxies = [\"127.0.0.0/8\", \"::1\", \"fd00::/8\"]")).unwrap();
    let t = &c.server.trusted_proxies;
    assert_eq!(t.0.len(), 3);
    assert!(t.contains("127.9.9.9".parse().unwrap()) && t.contains("::1".parse().unwrap()));
    assert!(!t.contains("10.0.0.1".parse().unwrap()));

    let src = server_with("trusted_proxies = [\"10.0.0.0/8\", \"10.0.0.1/8\"]");
    one_error(&src, 3, 34, "trusted_proxies: \"10.0.0.1/8\" has host bits set (the block is 10.0.0.0/8)");
    one_error(
        &server_with("trusted_proxies = [\"10.0.0.0/33\"]"),
        3,
        20,
        "trusted_proxies: \"10.0.0.0/33\": the prefix length must be 0-32",
    );
    one_error(
        &server_with("trusted_proxies = [\"proxy.local\"]"),
        3,
        20,
        "trusted_proxies: \"proxy.local\" is not an IP address or CIDR block",
    );
    let errs = errors(&server_with("trusted_proxies = \"10.0.0.0/8\""));
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].starts_with("test.toml:3:19: "), "{errs:#?}");
}

#[test]
fn upstream_request_id_headers_valid_and_invalid() {
    let c = load(&server_with("upstream_request_id_headers = [\"X-Trace\"]")).unwrap();
    assert_eq!(c.server.upstream_request_id_headers, vec![http::HeaderName::from_static("x-trace")]);
    let c = load(&server_with("upstream_request_id_headers = []")).unwrap();
    assert!(c.server.upstream_request_id_headers.is_empty());
    one_error(
        &server_with("upstream_request_id_headers = [\"ok\", \"bad name\"]"),
        3,
        38,
        "upstream_request_id_headers: \"bad name\" is not a valid header name",
    );
}

#[test]
fn response_headers_valid() {
    let src = route_with(
        "response_headers = { remove = [\"Server\", \"x-internal-*\"], set = { \"X-Served-By\" = \"ssegate\" } }",
    );
    let c = load(&src).unwrap();
    let h = c.routes[0].response_headers.as_ref().unwrap();
    assert_eq!(h.remove[0], NamePattern::Exact(http::HeaderName::from_static("server")));
    assert_eq!(h.remove[1], NamePattern::Prefix("x-internal-".into()));
    assert_eq!(
        h.set,
        vec![(http::HeaderName::from_static("x-served-by"), http::HeaderValue::from_static("ssegate"))]
    );
    // An empty policy is no policy.
    let c = load(&route_with("response_headers = {}")).unwrap();
    assert!(c.routes[0].response_headers.is_none());
}

#[test]
fn response_headers_errors() {
    let rh = |body: &str| route_with(&format!("response_headers = {{ {body} }}"));
    // `response_headers = { ` is 21 characters: the first value starts at column 22 + the key.
    one_error(
        &rh("remove = [\"a b\"]"),
        8,
        32,
        "response_headers.remove: \"a b\" is not a valid header name",
    );
    one_error(&rh("remove = [\"x-*-y\"]"), 8, 32, "`*` is only allowed at the end of a name (a prefix glob)");
    one_error(&rh("remove = [\"ok\", \"a b*\"]"), 8, 38, "\"a b*\" is not a valid header name pattern");
    one_error(&rh("remove = [\"*\"]"), 8, 32, "\"*\" would remove every header; name them instead");
    one_error(
        &rh("remove = [\"content-*\"]"),
        8,
        32,
        "response_headers.remove: \"content-*\" would remove content-length, which a client needs to read the body",
    );
    one_error(
        &rh("set = { \"a b\" = \"x\" }"),
        8,
        30,
        "response_headers.set: \"a b\" is not a valid header name",
    );
    one_error(
        &rh("set = { \"Content-Length\" = \"1\" }"),
        8,
        30,
        "response_headers.set: \"Content-Length\" is set by the gateway and cannot be configured",
    );
    one_error(
        &rh("set = { \"x-request-id\" = \"1\" }"),
        8,
        30,
        "response_headers.set: \"x-request-id\" is set by the gateway and cannot be configured",
    );
    one_error(
        &rh("set = { \"X-A\" = \"1\", \"x-a\" = \"2\" }"),
        8,
        43,
        "\"x-a\" is given twice (names are case-insensitive)",
    );
    one_error(
        &rh("set = { \"x-a\" = \"line\\nbreak\" }"),
        8,
        38,
        "response_headers.set.x-a: not a valid header value (control characters or a newline?)",
    );
    let errs = errors(&rh("keep = []"));
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].starts_with("test.toml:8:") && errs[0].contains("unknown field `keep`"), "{errs:#?}");
}
