//! The edge checks every request passes before anything is sent upstream, all resolved at config load so
//! that a request costs no allocation here:
//!
//! - [`Secret`]: a secret value (client key, injected credential) whose `Debug` / `Display` print
//!   `<redacted>`, so no `{:?}` of a config can leak it;
//! - [`KeySet`]: a route's client keys, matched in constant time against `Authorization: Bearer …` or
//!   `x-api-key`;
//! - [`check_target`]: the request-target rule that keeps every request inside its route's prefix on the
//!   configured upstream (no absolute-form, no dot-segments raw or encoded, no encoded `/` or `\`, no `//`);
//! - [`Cors`]: a route's CORS policy, with its response header values pre-built.

use std::fmt;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use subtle::ConstantTimeEq;

/// A secret string. Its `Debug` and `Display` never show the value; only [`Secret::expose`] does.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The secret value itself: for matching or sending it, never for printing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A route's accepted client keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySet {
    keys: Vec<Secret>,
}

/// Which request header carried the accepted key (it is not forwarded upstream).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyHeaders {
    pub authorization: bool,
    pub x_api_key: bool,
}

impl KeySet {
    /// `keys` must not be empty (the config refuses a route with `auth` and no keys).
    pub fn new(keys: Vec<Secret>) -> KeySet {
        KeySet { keys }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether `candidate` is one of the keys. Every key is compared in full (no early exit, not even on
    /// a length mismatch): the time taken depends on the configured keys' lengths only, never on where or
    /// whether the candidate differs.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let mut found = subtle::Choice::from(0u8);
        for key in &self.keys {
            found |= ct_matches(key.expose().as_bytes(), candidate);
        }
        bool::from(found)
    }

    /// Checks the request's `Authorization: Bearer <key>` and `x-api-key: <key>` headers. `None`: no valid
    /// key; `Some(headers)`: accepted, and which headers carried a valid key.
    pub fn check(
        &self,
        authorization: Option<&HeaderValue>,
        x_api_key: Option<&HeaderValue>,
    ) -> Option<KeyHeaders> {
        let bearer = authorization.and_then(|v| bearer_token(v.as_bytes()));
        let out = KeyHeaders {
            authorization: bearer.is_some_and(|t| self.matches(t)),
            x_api_key: x_api_key.is_some_and(|v| self.matches(trim(v.as_bytes()))),
        };
        (out.authorization || out.x_api_key).then_some(out)
    }
}

/// The key a request presented, in the header [`KeySet::check`] found valid (`Authorization`'s bearer token
/// first): what a resumable stream binds itself to (as a hash).
pub fn presented_key<'h>(
    authorization: Option<&'h HeaderValue>,
    x_api_key: Option<&'h HeaderValue>,
    valid: KeyHeaders,
) -> Option<&'h [u8]> {
    if valid.authorization {
        authorization.and_then(|v| bearer_token(v.as_bytes()))
    } else if valid.x_api_key {
        x_api_key.map(|v| trim(v.as_bytes()))
    } else {
        None
    }
}

/// `key == candidate` in constant time over `key`'s length: every byte of `key` is compared with the
/// candidate's byte at the same position (cycled when shorter), and the lengths are compared too.
fn ct_matches(key: &[u8], candidate: &[u8]) -> subtle::Choice {
    let mut eq = (key.len() as u64).ct_eq(&(candidate.len() as u64));
    for (i, k) in key.iter().enumerate() {
        let c = if candidate.is_empty() { 0 } else { candidate[i % candidate.len()] };
        eq &= k.ct_eq(&c);
    }
    eq
}

/// The token of `Bearer <token>` (scheme case-insensitive, surrounding whitespace ignored).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let v = trim(value);
    let (scheme, rest) = v.split_at(v.iter().position(|b| *b == b' ' || *b == b'\t')?);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = trim(rest);
    (!token.is_empty()).then_some(token)
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |i| i + 1);
    &v[start..end]
}

/// Splits a key source (an environment variable's value or a keys file) into keys: separated by commas,
/// whitespace or newlines; in files, lines starting with `#` are comments.
pub fn parse_keys(text: &str, comments: bool) -> Vec<Secret> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if comments && line.starts_with('#') {
            continue;
        }
        for key in line.split(|c: char| c == ',' || c.is_whitespace()) {
            if !key.is_empty() {
                out.push(Secret::new(key.to_owned()));
            }
        }
    }
    out
}

/// A header the gateway sets on every upstream request of a route (its value may hold a secret).
#[derive(Clone, PartialEq, Eq)]
pub struct InjectedHeader {
    pub name: HeaderName,
    /// Marked sensitive (HPACK never-index; its `Debug` is `Sensitive`).
    pub value: HeaderValue,
}

impl fmt::Debug for InjectedHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: <redacted>", self.name)
    }
}

/// Why a request target is refused (the message of the 400 `bad_request` answer).
pub type TargetError = &'static str;

/// Checks an origin-form request target (`/path?query`) and splits it into (path, query). The path is
/// what routing matches and what is forwarded (after the prefix), so the check and the forwarded bytes are
/// the same string.
///
/// Refused: anything not starting with `/` (absolute-form `http://host/…`, authority-form, `*`); a
/// fragment; bytes that are not visible ASCII (spaces, controls, non-ASCII: browsers percent-encode them);
/// malformed `%` escapes; in the path: a backslash, `.` or `..` segments (also with `;params`, as in
/// Tomcat's `..;/`), any percent-encoded `.`, `/` or `\` or overlong byte (`%2e`, `%2f`, `%5c`, `%c0`,
/// `%c1`, any case), `%00`, and empty segments (`//`) except a single trailing `/`.
pub fn check_target(target: &[u8]) -> Result<(&str, Option<&str>), TargetError> {
    if target.first() != Some(&b'/') {
        return Err("the request target must be a path starting with `/` (ssegate is not a forward proxy)");
    }
    let (path, query) = match target.iter().position(|b| *b == b'?') {
        Some(i) => (&target[..i], Some(&target[i + 1..])),
        None => (target, None),
    };
    check_chars(path, false)?;
    if let Some(q) = query {
        check_chars(q, true)?;
    }
    let mut i = 0;
    while i < path.len() {
        if path[i] == b'%' {
            let (hi, lo) = (path[i + 1].to_ascii_lowercase(), path[i + 2].to_ascii_lowercase());
            let bad = matches!(
                (hi, lo),
                (b'2', b'e') | (b'2', b'f') | (b'5', b'c') | (b'0', b'0') | (b'c', b'0' | b'1')
            );
            if bad {
                return Err(
                    "the path must not contain percent-encoded `.`, `/`, `\\`, NUL or overlong bytes",
                );
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    let segments = &path[1..];
    // Counted once: per segment it made a target of many short segments cost quadratic time.
    let last = segments.iter().filter(|b| **b == b'/').count();
    for (n, seg) in segments.split(|b| *b == b'/').enumerate() {
        // `..;x` is `..` to servlet containers (path parameters), and so is `..%3b` after their decoding.
        let head = seg.split(|b| *b == b';').next().unwrap_or(seg);
        let head = match head.windows(3).position(|w| w.eq_ignore_ascii_case(b"%3b")) {
            Some(i) => &head[..i],
            None => head,
        };
        if head == b"." || head == b".." {
            return Err("the path must not contain `.` or `..` segments");
        }
        if seg.is_empty() && n != last {
            return Err("the path must not contain empty segments (`//`)");
        }
    }
    // Only ASCII passed `check_chars`.
    let path = std::str::from_utf8(path).map_err(|_| "the request target must be ASCII")?;
    let query = match query {
        Some(q) => Some(std::str::from_utf8(q).map_err(|_| "the request target must be ASCII")?),
        None => None,
    };
    Ok((path, query))
}

/// Visible ASCII with well-formed `%XX` escapes; no `#`; no `\` in the path. (Not RFC 3986 strict:
/// browsers leave `[ ] { } | ^` unescaped in WHATWG URLs.)
fn check_chars(s: &[u8], query: bool) -> Result<(), TargetError> {
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b == b'%' {
            let hex = |j: usize| s.get(j).is_some_and(|b| b.is_ascii_hexdigit());
            if !(hex(i + 1) && hex(i + 2)) {
                return Err("malformed percent escape in the request target");
            }
            i += 3;
            continue;
        }
        if b == b'#' {
            return Err("the request target must not contain a fragment (`#`)");
        }
        if b == b'\\' && !query {
            return Err("the path must not contain a backslash");
        }
        if !(0x21..=0x7e).contains(&b) {
            return Err("the request target contains a character that must be percent-encoded");
        }
        i += 1;
    }
    Ok(())
}

/// A route's CORS policy (`cors = { ... }`), with its response header values built once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cors {
    /// `None`: any origin (`allow_origins = ["*"]`); otherwise the exact origins (ASCII-lowercase scheme
    /// and host, as browsers send them).
    pub origins: Option<Vec<String>>,
    /// Lowercase header names.
    pub allow_headers: Vec<String>,
    pub allow_methods: Vec<String>,
    pub max_age: Duration,
    pub allow_credentials: bool,
    /// Pre-built values.
    pub allow_methods_value: HeaderValue,
    pub allow_headers_value: HeaderValue,
    pub max_age_value: HeaderValue,
}

/// `Access-Control-Expose-Headers` on actual responses: what a `fetch` caller may read besides the
/// CORS-safelisted response headers.
pub const EXPOSE_HEADERS: &str =
    "retry-after, www-authenticate, content-type, x-request-id, ssegate-stream-id";

impl Cors {
    /// The `Access-Control-Allow-Origin` value for a request's `Origin`, or `None` when the origin is not
    /// allowed. With a wildcard and no credentials it is `*`; otherwise the origin is echoed.
    pub fn allow_origin(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        match &self.origins {
            None if !self.allow_credentials => Some(HeaderValue::from_static("*")),
            None => Some(origin.clone()),
            Some(list) => {
                let o = origin.as_bytes();
                list.iter().any(|a| a.as_bytes().eq_ignore_ascii_case(o)).then(|| origin.clone())
            }
        }
    }

    /// Whether a preflight's `Access-Control-Request-Method` and `-Headers` are allowed.
    pub fn preflight_allows(&self, method: &[u8], headers: Option<&HeaderValue>) -> bool {
        if !self.allow_methods.iter().any(|m| m.as_bytes() == method) {
            return false;
        }
        let Some(headers) = headers else { return true };
        headers
            .as_bytes()
            .split(|b| *b == b',')
            .map(trim)
            .filter(|h| !h.is_empty())
            .all(|h| self.allow_headers.iter().any(|a| a.as_bytes().eq_ignore_ascii_case(h)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("sk-very-secret".into());
        assert_eq!(format!("{s:?} {s} {:?}", vec![s.clone()]), "<redacted> <redacted> [<redacted>]");
        assert_eq!(s.expose(), "sk-very-secret");
        let k = KeySet::new(vec![s]);
        assert!(!format!("{k:?}").contains("secret"));
        let mut v = HeaderValue::from_static("Bearer sk-x");
        v.set_sensitive(true);
        let h = InjectedHeader { name: HeaderName::from_static("authorization"), value: v };
        assert_eq!(format!("{h:?}"), "authorization: <redacted>");
    }

    #[test]
    fn keys_match_bearer_or_x_api_key() {
        let k = KeySet::new(parse_keys("alpha, beta\n gamma", false));
        assert_eq!(k.len(), 3);
        let hv = |s: &'static str| HeaderValue::from_static(s);
        assert!(k.matches(b"beta"));
        assert!(!k.matches(b"bet"));
        assert!(!k.matches(b"betab"));
        assert!(!k.matches(b"betabeta"));
        assert!(!k.matches(b"b"));
        assert!(!k.matches(b""));
        assert!(bool::from(ct_matches(b"abc", b"abc")));
        assert!(!bool::from(ct_matches(b"abc", b"abd")));
        assert!(!bool::from(ct_matches(b"", b"a")));
        assert!(bool::from(ct_matches(b"", b"")));
        let both = KeyHeaders { authorization: true, x_api_key: false };
        assert_eq!(k.check(Some(&hv("Bearer gamma")), None), Some(both));
        assert_eq!(k.check(Some(&hv("bearer   gamma ")), None), Some(both));
        assert_eq!(k.check(Some(&hv("Basic gamma")), None), None);
        assert_eq!(k.check(Some(&hv("gamma")), None), None);
        assert_eq!(k.check(Some(&hv("Bearer")), None), None);
        assert_eq!(
            k.check(Some(&hv("Bearer sk-provider")), Some(&hv("alpha"))),
            Some(KeyHeaders { authorization: false, x_api_key: true })
        );
        assert_eq!(k.check(None, None), None);
        assert_eq!(k.check(None, Some(&hv("delta"))), None);
    }

    #[test]
    fn keys_files_skip_comments() {
        let keys = parse_keys("# team a\nk1\n\n  # old\nk2 k3\n", true);
        let keys: Vec<_> = keys.iter().map(Secret::expose).collect();
        assert_eq!(keys, ["k1", "k2", "k3"]);
    }

    #[test]
    fn target_rule() {
        for ok in [
            "/",
            "/r",
            "/r/",
            "/r/x?q=1",
            "/r/a.b/c..d/...",
            "/r/%20x",
            "/r?a=../b&c=%2f",
            "/r/x?",
            "/r/x?filter[a]={1}|2^\\",
            "/r/a;b=1/c",
            "/r/...;x",
        ] {
            assert!(check_target(ok.as_bytes()).is_ok(), "{ok}");
        }
        assert_eq!(check_target(b"/r/x?q=1").unwrap(), ("/r/x", Some("q=1")));
        // Many short segments (the size a large max_header_size allows).
        let long = "/a".repeat(100_000);
        assert!(check_target(long.as_bytes()).is_ok());
        assert!(check_target(format!("{long}//a").as_bytes()).is_err());
        for bad in [
            "",
            "*",
            "http://127.0.0.1:1/r",
            "127.0.0.1:443",
            "//evil.example/r",
            "/r//x",
            "/r/../x",
            "/r/./x",
            "/r/..",
            "/..",
            "/r/%2e%2e/x",
            "/r/%2E%2e/x",
            "/r/%2e/x",
            "/r/.%2e/x",
            "/r/%2fx",
            "/r/%2Fx",
            "/r/%5cx",
            "/r/%5C..",
            "/r/\\..\\x",
            "/r/a b",
            "/r/x#frag",
            "/r/%zz",
            "/r/%2",
            "/r/%00",
            "/r/%c0%ae%c0%ae/x",
            "/r/..;/x",
            "/r/.;x/y",
            "/r/..%3b/x",
            "/r/..%3Bjsessionid/x",
            "/r/x?a b",
            "/r/x?\u{1}",
            "/r/\u{e9}",
        ] {
            assert!(check_target(bad.as_bytes()).is_err(), "{bad:?} passed");
        }
    }

    fn cors(origins: Option<Vec<&str>>, credentials: bool) -> Cors {
        Cors {
            origins: origins.map(|o| o.into_iter().map(String::from).collect()),
            allow_headers: vec!["content-type".into(), "authorization".into()],
            allow_methods: vec!["GET".into(), "POST".into()],
            max_age: Duration::from_secs(600),
            allow_credentials: credentials,
            allow_methods_value: HeaderValue::from_static("GET, POST"),
            allow_headers_value: HeaderValue::from_static("content-type, authorization"),
            max_age_value: HeaderValue::from_static("600"),
        }
    }

    #[test]
    fn cors_origins_and_preflight() {
        let o = HeaderValue::from_static("https://app.example");
        let other = HeaderValue::from_static("https://evil.example");
        let c = cors(Some(vec!["https://app.example"]), false);
        assert_eq!(c.allow_origin(&o), Some(o.clone()));
        assert_eq!(c.allow_origin(&other), None);
        let any = cors(None, false);
        assert_eq!(any.allow_origin(&other), Some(HeaderValue::from_static("*")));
        assert!(c.preflight_allows(b"POST", Some(&HeaderValue::from_static("Content-Type, authorization"))));
        assert!(c.preflight_allows(b"GET", None));
        assert!(!c.preflight_allows(b"PUT", None));
        assert!(!c.preflight_allows(b"POST", Some(&HeaderValue::from_static("x-other"))));
    }
}
