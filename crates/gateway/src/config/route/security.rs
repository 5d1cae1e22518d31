//! A route's client-facing security keys: `auth` (the client keys, read from environment variables and
//! key files, never written in the config) and `cors`. Secret values never appear in a message: only the
//! variable or file name does.

use std::time::Duration;

use http::{HeaderName, HeaderValue};
use serde::Deserialize;
use toml::Spanned;

use crate::config::cx::Cx;
use crate::config::values::{strip_prefix_ci, DurationStr};
use crate::security::{self, Cors, KeySet};

/// `cors.allow_headers` default.
pub const CORS_DEFAULT_HEADERS: [&str; 4] = ["content-type", "authorization", "x-api-key", "last-event-id"];
/// `cors.allow_methods` default.
pub const CORS_DEFAULT_METHODS: [&str; 3] = ["GET", "POST", "OPTIONS"];

// ---- the file's tables, as serde reads them (see `RawConfig` for the conventions) ---------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    keys_env: Option<Vec<Spanned<String>>>,
    keys_file: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCors {
    allow_origins: Option<Spanned<Vec<Spanned<String>>>>,
    allow_headers: Option<Vec<Spanned<String>>>,
    allow_methods: Option<Vec<Spanned<String>>>,
    max_age: Option<Spanned<DurationStr>>,
    allow_credentials: Option<Spanned<bool>>,
}

/// `auth`: at least one entry in `keys_env` / `keys_file`; each variable and file must hold at least one
/// key. Empty lists (`auth = { keys_env = [] }`) are an error: they would leave the route open.
pub(super) fn auth(cx: &mut Cx, raw: Spanned<RawAuth>) -> Option<KeySet> {
    let header = raw.span();
    let raw = raw.into_inner();
    let none = |l: &Option<Vec<Spanned<String>>>| l.as_ref().is_none_or(Vec::is_empty);
    if none(&raw.keys_env) && none(&raw.keys_file) {
        cx.err(header, "auth needs keys_env and/or keys_file (keys are never written in the config)");
        return None;
    }
    let mut keys = Vec::new();
    let mut ok = true;
    for var in raw.keys_env.unwrap_or_default() {
        let name = var.get_ref();
        let Some(text) = cx.env_var("auth.keys_env", name, var.span()) else {
            ok = false;
            continue;
        };
        let found = security::parse_keys(&text, false);
        if found.is_empty() {
            cx.err(var.span(), format!("auth.keys_env: environment variable {name} holds no key"));
            ok = false;
        }
        keys.extend(found);
    }
    for file in raw.keys_file.unwrap_or_default() {
        if file.get_ref().is_empty() {
            cx.err(file.span(), "auth.keys_file: the path must not be empty");
            ok = false;
            continue;
        }
        let Some((path, text)) = cx.read_text("auth.keys_file", file.get_ref(), file.span()) else {
            ok = false;
            continue;
        };
        let found = security::parse_keys(&text, true);
        if found.is_empty() {
            cx.err(file.span(), format!("auth.keys_file: {} holds no key", path.display()));
            ok = false;
        }
        keys.extend(found);
    }
    (ok && !keys.is_empty()).then(|| KeySet::new(keys))
}

/// `cors`: `allow_origins` (required; `["*"]` or origins), `allow_headers`, `allow_methods`, `max_age`,
/// `allow_credentials`.
pub(super) fn cors(cx: &mut Cx, raw: Spanned<RawCors>) -> Option<Cors> {
    let header = raw.span();
    let raw = raw.into_inner();
    let mut ok = true;
    let credentials = raw.allow_credentials.as_ref().is_some_and(|c| *c.get_ref());
    let origins = match raw.allow_origins {
        None => {
            cx.err(header.clone(), "missing key `allow_origins` in cors (a list of origins, or [\"*\"])");
            return None;
        }
        Some(list) if list.get_ref().is_empty() => {
            cx.err(list.span(), "cors.allow_origins must not be empty");
            return None;
        }
        Some(list) => {
            let span = list.span();
            let list = list.into_inner();
            if list.iter().any(|o| o.get_ref() == "*") {
                if list.len() > 1 {
                    cx.err(span.clone(), "cors.allow_origins: \"*\" must be the only entry");
                    ok = false;
                }
                if credentials {
                    cx.err(
                        span,
                        "cors: allow_origins = [\"*\"] cannot be combined with allow_credentials = true",
                    );
                    ok = false;
                }
                None
            } else {
                let mut out = Vec::new();
                for o in list {
                    match check_origin(o.get_ref()) {
                        Ok(v) => out.push(v),
                        Err(msg) => {
                            cx.err(o.span(), msg);
                            ok = false;
                        }
                    }
                }
                Some(out)
            }
        }
    };
    let allow_headers = match raw.allow_headers {
        None => CORS_DEFAULT_HEADERS.iter().map(|h| (*h).to_owned()).collect(),
        Some(list) => {
            let mut out = Vec::new();
            for h in list {
                match HeaderName::from_bytes(h.get_ref().as_bytes()) {
                    Ok(n) => out.push(n.as_str().to_owned()),
                    Err(_) => {
                        cx.err(
                            h.span(),
                            format!("cors.allow_headers: {:?} is not a header name", h.get_ref()),
                        );
                        ok = false;
                    }
                }
            }
            out
        }
    };
    let allow_methods = match raw.allow_methods {
        None => CORS_DEFAULT_METHODS.iter().map(|m| (*m).to_owned()).collect(),
        Some(list) => {
            let mut out = Vec::new();
            for m in list {
                let v = m.get_ref();
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                    cx.err(m.span(), format!("cors.allow_methods: {v:?} is not an HTTP method"));
                    ok = false;
                } else {
                    out.push(v.clone());
                }
            }
            out
        }
    };
    let max_age = cx.duration("cors.max_age", raw.max_age, Duration::from_secs(600), true);
    if !ok {
        return None;
    }
    let joined = |v: &[String]| HeaderValue::from_str(&v.join(", ")).ok();
    Some(Cors {
        origins,
        allow_methods_value: joined(&allow_methods)?,
        allow_headers_value: joined(&allow_headers)?,
        max_age_value: HeaderValue::from(max_age.as_secs()),
        allow_headers,
        allow_methods,
        max_age,
        allow_credentials: credentials,
    })
}

/// A CORS origin: `http(s)://host[:port]`, no path, no trailing `/`. Returned lowercase.
fn check_origin(o: &str) -> Result<String, String> {
    let fail = |why: &str| Err(format!("cors.allow_origins: invalid origin {o:?}: {why}"));
    let rest = match strip_prefix_ci(o, "https://").or_else(|| strip_prefix_ci(o, "http://")) {
        Some(r) => r,
        None => return fail("expected http://host[:port] or https://host[:port], or \"*\""),
    };
    if rest.is_empty() {
        return fail("missing host");
    }
    if rest.contains('/') {
        return fail("an origin has no path (and no trailing `/`)");
    }
    if !rest.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b)) {
        return fail("unexpected character");
    }
    Ok(o.to_ascii_lowercase())
}
