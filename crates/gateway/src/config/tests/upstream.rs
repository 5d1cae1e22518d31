//! Config unit tests: `upstream`, `ca_file`, `upstream_headers`.

use super::*;
use crate::config::route::upstream::parse_upstream;

#[test]
fn upstream_rules() {
    let up = |u: &str| parse_upstream(u);
    let ok = up("https://api.openai.com").unwrap();
    assert_eq!(
        (ok.tls, ok.host.as_str(), ok.port, ok.host_header.as_str()),
        (true, "api.openai.com", 443, "api.openai.com")
    );
    let ok = up("https://h:8443/a/b/").unwrap();
    assert_eq!((ok.port, ok.base_path.as_str(), ok.host_header.as_str()), (8443, "/a/b", "h:8443"));
    let ok = up("http://h:80/").unwrap();
    assert_eq!((ok.base_path.as_str(), ok.host_header.as_str()), ("", "h"));
    let ok = up("HTTP://[::1]").unwrap();
    assert_eq!((ok.host.as_str(), ok.port, ok.host_header.as_str()), ("::1", 80, "[::1]"));
    let ok = up("http://[2001:DB8::1]:8080/x").unwrap();
    assert_eq!((ok.host.as_str(), ok.host_header.as_str()), ("2001:db8::1", "[2001:db8::1]:8080"));

    for (bad, why) in [
        ("ftp://h", "must start with http:// or https://"),
        ("h:80", "must start with http://"),
        ("http://", "missing host"),
        ("http:///x", "missing host"),
        ("http://:80", "missing host"),
        ("http://h?x=1", "query"),
        ("http://h/#f", "fragment"),
        ("http://u:p@h", "userinfo"),
        ("http://h:0", "invalid port \"0\""),
        ("http://h:65536", "invalid port"),
        ("http://h:+80", "invalid port"),
        ("http://h:", "invalid port \"\""),
        ("http://[::1", "unterminated IPv6"),
        ("http://[::g]:80", "invalid IPv6"),
        ("http://[::1]x", "expected `:port`"),
        ("http://::1:80", "brackets"),
        ("http://h h", "whitespace"),
        ("http://h_!x", "invalid host"),
        ("http://h/a b", "whitespace"),
        ("http://h/a\"b", "not allowed"),
        ("http://ü.de", "invalid host"),
    ] {
        let err = up(bad).unwrap_err();
        assert!(err.contains(why), "{bad}: {err}");
    }

    one_error(
        &route_with("").replace("http://127.0.0.1:9000", "htp://x"),
        7,
        12,
        "invalid upstream \"htp://x\"",
    );
    one_error(&route_with("ca_file = \"ca.pem\""), 8, 11, "ca_file is only used with an https:// upstream");
    let dir = Dir::new("ca");
    let src = route_with("ca_file = \"nope.pem\"").replace("http://", "https://");
    let errs = Config::from_str_at(&dir.file(), &src).unwrap_err().0;
    assert_eq!(errs.len(), 1);
    assert!(errs[0].contains(":8:11: cannot read ca_file file \"nope.pem\""), "{errs:#?}");
    let src = route_with("ca_file = \"ca.pem\"").replace("http://", "https://");
    let c = Config::from_str_at(&dir.file(), &src).unwrap();
    assert_eq!(c.routes[0].upstream.ca_file, Some(dir.0.join("ca.pem")));
}

#[test]
fn upstream_headers_resolve_references_and_never_print_them() {
    let file = Path::new("/etc/ssegate/ssegate.toml");
    let source = MapSource::new()
        .with_env("SSEGATE_T_HDR_KEY", "sk-secret-env")
        .with_file("/etc/ssegate/org", "org-secret-file\n")
        .with_file("/etc/ssegate/bad", "line1\nline2\n");
    let src = format!(
        "{MINIMAL}upstream_headers = {{ \"Authorization\" = \"Bearer ${{env:SSEGATE_T_HDR_KEY}}\", \
         \"x-org\" = \"${{file:org}}\", \"x-plain\" = \"v\" }}\n"
    );
    let c = Config::from_str_with(file, &src, &source).unwrap();
    let h = &c.routes[0].upstream_headers;
    let got: Vec<_> = h.iter().map(|h| (h.name.as_str(), h.value.to_str().unwrap())).collect();
    assert_eq!(
        got,
        [("authorization", "Bearer sk-secret-env"), ("x-org", "org-secret-file"), ("x-plain", "v")]
    );
    assert!(h.iter().all(|h| h.value.is_sensitive()));
    let debug = format!("{c:?}");
    assert!(!debug.contains("secret"), "{debug}");

    let src = format!(
        "{MINIMAL}[route.upstream_headers]\n\"A\" = \"${{env:SSEGATE_T_HDR_UNSET}}\"\n\
         \"B\" = \"${{file:missing}}\"\n\"C\" = \"${{vault:x}}\"\n\"D\" = \"${{env:SSEGATE_T_HDR_KEY\"\n\
         \"E\" = \"${{file:bad}}\"\n\"Host\" = \"x\"\n\"bad name\" = \"x\"\n\"x-dup\" = \"1\"\n\"X-Dup\" = \"2\"\n"
    );
    let errs = Config::from_str_with(file, &src, &source).unwrap_err().0;
    let all = errs.join("\n");
    assert!(!all.contains("sk-secret-env"), "{all}");
    for needle in [
        "upstream_headers.A: environment variable SSEGATE_T_HDR_UNSET is not set",
        "upstream_headers.B: cannot read",
        "upstream_headers.C: unknown reference",
        "upstream_headers.D: unterminated",
        "upstream_headers.E: the value (after resolving references) is not a valid header value",
        "\"Host\" is set by the gateway",
        "\"bad name\" is not a valid header name",
        "given twice",
    ] {
        assert!(all.contains(needle), "{needle:?} not in\n{all}");
    }
    assert_eq!(errs.len(), 8, "{all}");
}
