//! A route's upstream pool: `upstream` (the one-backend shorthand) or `upstreams` (many backends, with
//! `name`, `weight`, `backup` and per-backend `headers`), and the keys that govern them: `balance`,
//! `health` (active checks), `passive` (ejection after failures) and `retry` (failover before the first
//! event). Also `hosts`, the route's host names (matched by `crate::route`).

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;
use toml::Spanned;

use super::upstream::{self, Upstream};
use crate::config::cx::Cx;
use crate::config::values::DurationStr;
use crate::security::InjectedHeader;

/// Most backends in one route (attempts are tracked in a 64-bit set).
pub const MAX_BACKENDS: usize = 64;
/// Largest `weight`.
pub const MAX_WEIGHT: u32 = 1000;

/// The backends of a route and how they are chosen, checked and retried.
#[derive(Debug, Clone)]
pub struct Pool {
    /// In file order; at least one is not a backup.
    pub backends: Vec<Backend>,
    /// `balance` (default round_robin)
    pub balance: Balance,
    /// `health = { path, interval, timeout, healthy, unhealthy }`: active checks; `None`: off.
    pub health: Option<Health>,
    /// `passive = { max_fails, fail_timeout }` (default 3 in 30s; `max_fails = 0`: off). Only routes with
    /// more than one backend eject (like nginx, a lone backend is always tried).
    pub passive: Option<Passive>,
    /// `retry = { attempts, on, first_event_timeout }`
    pub retry: Retry,
}

/// One backend of a pool.
#[derive(Debug, Clone)]
pub struct Backend {
    /// `name` (default `host:port`): the `backend` metrics label.
    pub name: String,
    /// `url`
    pub upstream: Upstream,
    /// `weight` (default 1, 1..=1000)
    pub weight: u32,
    /// `backup` (default false): used only when no primary backend is available.
    pub backup: bool,
    /// `headers`: merged over the route's `upstream_headers` (same rules, same `${env:}` / `${file:}`).
    pub headers: Vec<InjectedHeader>,
}

/// `balance`
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Balance {
    /// `"round_robin"`: weighted round robin.
    RoundRobin,
    /// `"least_streams"`: fewest active streams per weight.
    LeastStreams,
    /// `"random"`: weighted random.
    Random,
    /// `"hash:header:NAME"`: consistent (rendezvous) hash of the header's value; round robin without it.
    Hash(HeaderName),
}

/// `health`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// `path` (default "/health"): requested with GET; 2xx passes.
    pub path: String,
    /// `interval` (default "5s")
    pub interval: Duration,
    /// `timeout` (default "1s")
    pub timeout: Duration,
    /// `healthy` (default 2): consecutive passes that bring a backend back.
    pub healthy: u32,
    /// `unhealthy` (default 3): consecutive failures that take it out.
    pub unhealthy: u32,
}

/// `passive`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Passive {
    pub max_fails: u32,
    pub fail_timeout: Duration,
}

/// `retry`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// `attempts` (default: 2 with several backends, else 1): backends tried per request, at most.
    pub attempts: u32,
    /// `on` (default ["connect", "timeout"])
    pub on: RetryOn,
    /// `first_event_timeout`: an attempt that produced no event by then fails over (default: off).
    pub first_event_timeout: Option<Duration>,
}

/// Which failures of an attempt move the request to the next backend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryOn {
    /// `"connect"`: DNS, TCP, TLS, or the connection broke before the response head.
    pub connect: bool,
    /// `"timeout"`: no response head within `header_timeout`.
    pub timeout: bool,
    /// `"5xx"`
    pub status_5xx: bool,
    /// `"429"`, `"502"`, ...: these statuses.
    pub statuses: Vec<u16>,
}

impl RetryOn {
    /// Whether an answer with `status` fails over.
    pub fn status(&self, status: u16) -> bool {
        (self.status_5xx && (500..600).contains(&status)) || self.statuses.contains(&status)
    }
}

// ---- raw -----------------------------------------------------------------------------------------

type RawHeaders = Spanned<BTreeMap<Spanned<String>, Spanned<String>>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawBackend {
    url: Option<Spanned<String>>,
    name: Option<Spanned<String>>,
    weight: Option<Spanned<i64>>,
    backup: Option<bool>,
    headers: Option<RawHeaders>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawHealth {
    path: Option<Spanned<String>>,
    interval: Option<Spanned<DurationStr>>,
    timeout: Option<Spanned<DurationStr>>,
    healthy: Option<Spanned<i64>>,
    unhealthy: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawPassive {
    max_fails: Option<Spanned<i64>>,
    fail_timeout: Option<Spanned<DurationStr>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawRetry {
    attempts: Option<Spanned<i64>>,
    on: Option<Vec<Spanned<String>>>,
    first_event_timeout: Option<Spanned<DurationStr>>,
}

/// The pool's raw keys, as the route hands them over.
pub(in crate::config) struct RawPool {
    pub upstream: Option<Spanned<String>>,
    pub upstreams: Option<Spanned<Vec<Spanned<RawBackend>>>>,
    pub ca_file: Option<Spanned<String>>,
    pub balance: Option<Spanned<String>>,
    pub health: Option<Spanned<RawHealth>>,
    pub passive: Option<Spanned<RawPassive>>,
    pub retry: Option<Spanned<RawRetry>>,
}

/// The pool of the route whose table starts at `header`.
pub(in crate::config) fn pool(cx: &mut Cx, header: &Range<usize>, label: &str, raw: RawPool) -> Option<Pool> {
    let backends = match (raw.upstream, raw.upstreams) {
        (Some(one), Some(many)) => {
            cx.err(many.span(), "use either `upstream` (one backend) or `upstreams` (a pool), not both");
            let _ = one;
            None
        }
        (one, None) => upstream::upstream(cx, header, label, one, raw.ca_file).map(|u| {
            vec![Backend {
                name: default_name(&u),
                upstream: u,
                weight: 1,
                backup: false,
                headers: Vec::new(),
            }]
        }),
        (None, Some(many)) => backends(cx, many, raw.ca_file),
    };
    let balance = balance(cx, raw.balance);
    let health = raw.health.map(|h| health(cx, h));
    let passive = passive(cx, raw.passive);
    let n = backends.as_ref().map_or(1, Vec::len);
    let retry = retry(cx, raw.retry, n);
    Some(Pool { backends: backends?, balance, health, passive, retry })
}

fn default_name(u: &Upstream) -> String {
    if u.host.contains(':') {
        format!("[{}]:{}", u.host, u.port)
    } else {
        format!("{}:{}", u.host, u.port)
    }
}

fn backends(
    cx: &mut Cx,
    raw: Spanned<Vec<Spanned<RawBackend>>>,
    ca_file: Option<Spanned<String>>,
) -> Option<Vec<Backend>> {
    let span = raw.span();
    let list = raw.into_inner();
    if list.is_empty() {
        cx.err(span, "upstreams must list at least one backend");
        return None;
    }
    if list.len() > MAX_BACKENDS {
        cx.err(span, format!("upstreams: at most {MAX_BACKENDS} backends per route"));
        return None;
    }
    let mut out: Vec<Backend> = Vec::new();
    let mut ok = true;
    for b in list {
        let at = b.span();
        let b = b.into_inner();
        let up = match b.url {
            None => {
                cx.err(at.clone(), "missing key `url` in upstreams entry");
                None
            }
            Some(u) => match upstream::parse_upstream(u.get_ref()) {
                Ok(up) => Some(up),
                Err(msg) => {
                    cx.err(u.span(), msg);
                    None
                }
            },
        };
        let weight = match b.weight {
            None => 1,
            Some(w) if (1..=i64::from(MAX_WEIGHT)).contains(w.get_ref()) => *w.get_ref() as u32,
            Some(w) => {
                cx.err(w.span(), format!("weight must be between 1 and {MAX_WEIGHT}, got {}", w.get_ref()));
                1
            }
        };
        let headers = b.headers.map(|h| upstream::upstream_headers(cx, h)).unwrap_or_default();
        let name = match (b.name, &up) {
            (Some(n), _) => {
                if let Err(msg) = check_backend_name(n.get_ref()) {
                    cx.err(n.span(), msg);
                    ok = false;
                } else if out.iter().any(|o| o.name == *n.get_ref()) {
                    cx.err(n.span(), format!("duplicate backend name {:?} in upstreams", n.get_ref()));
                    ok = false;
                }
                Some(n.into_inner())
            }
            (None, Some(u)) => {
                let name = default_name(u);
                if out.iter().any(|o| o.name == name) {
                    let msg = format!("two backends are both named {name:?}: give them distinct `name`s");
                    cx.err(at.clone(), msg);
                    ok = false;
                }
                Some(name)
            }
            (None, None) => None,
        };
        match (up, name) {
            (Some(upstream), Some(name)) => {
                out.push(Backend { name, upstream, weight, backup: b.backup.unwrap_or(false), headers })
            }
            _ => ok = false,
        }
    }
    if ok && out.iter().all(|b| b.backup) {
        cx.err(span.clone(), "upstreams: at least one backend must not be a backup");
        ok = false;
    }
    if let Some(ca) = ca_file {
        if ok && !out.iter().any(|b| b.upstream.tls) {
            cx.err(ca.span(), "ca_file is only used with an https:// upstream");
        } else if let Some(path) = cx.readable_file("[[route]]", "ca_file", Some(ca), span, true) {
            for b in out.iter_mut().filter(|b| b.upstream.tls) {
                b.upstream.ca_file = Some(path.clone());
            }
        }
    }
    ok.then_some(out)
}

fn check_backend_name(name: &str) -> Result<(), String> {
    let ok_chars = name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':'));
    if name.is_empty() || name.len() > 64 || !ok_chars {
        return Err(format!(
            "invalid backend name {name:?}: use 1 to 64 characters from A-Z a-z 0-9 _ . - : (it becomes a \
             metrics label)"
        ));
    }
    Ok(())
}

fn balance(cx: &mut Cx, raw: Option<Spanned<String>>) -> Balance {
    let Some(b) = raw else { return Balance::RoundRobin };
    match b.get_ref().as_str() {
        "round_robin" => Balance::RoundRobin,
        "least_streams" => Balance::LeastStreams,
        "random" => Balance::Random,
        other => match other.strip_prefix("hash:header:").map(|h| HeaderName::from_bytes(h.as_bytes())) {
            Some(Ok(h)) => Balance::Hash(h),
            Some(Err(_)) => {
                cx.err(b.span(), format!("balance {other:?}: not a valid header name after hash:header:"));
                Balance::RoundRobin
            }
            None => {
                cx.err(
                    b.span(),
                    format!(
                        "unknown balance {other:?}; expected round_robin, least_streams, random or \
                         hash:header:NAME"
                    ),
                );
                Balance::RoundRobin
            }
        },
    }
}

fn count(cx: &mut Cx, key: &str, raw: Option<Spanned<i64>>, default: u32, min: i64, max: i64) -> u32 {
    let Some(v) = raw else { return default };
    if (min..=max).contains(v.get_ref()) {
        *v.get_ref() as u32
    } else {
        cx.err(v.span(), format!("{key} must be between {min} and {max}, got {}", v.get_ref()));
        default
    }
}

fn health(cx: &mut Cx, raw: Spanned<RawHealth>) -> Health {
    let h = raw.into_inner();
    let path = match h.path {
        None => "/health".to_owned(),
        Some(p) if !p.get_ref().starts_with('/') || p.get_ref().chars().any(|c| c.is_whitespace()) => {
            cx.err(
                p.span(),
                format!("health.path {:?} must start with `/` and contain no spaces", p.get_ref()),
            );
            "/health".to_owned()
        }
        Some(p) => p.into_inner(),
    };
    Health {
        path,
        interval: cx.duration("health.interval", h.interval, Duration::from_secs(5), false),
        timeout: cx.duration("health.timeout", h.timeout, Duration::from_secs(1), false),
        healthy: count(cx, "health.healthy", h.healthy, 2, 1, 100),
        unhealthy: count(cx, "health.unhealthy", h.unhealthy, 3, 1, 100),
    }
}

fn passive(cx: &mut Cx, raw: Option<Spanned<RawPassive>>) -> Option<Passive> {
    let default = Passive { max_fails: 3, fail_timeout: Duration::from_secs(30) };
    let Some(p) = raw else { return Some(default) };
    let p = p.into_inner();
    let max_fails = count(cx, "passive.max_fails", p.max_fails, 3, 0, 1000);
    let fail_timeout = cx.duration("passive.fail_timeout", p.fail_timeout, default.fail_timeout, false);
    (max_fails > 0).then_some(Passive { max_fails, fail_timeout })
}

fn retry(cx: &mut Cx, raw: Option<Spanned<RawRetry>>, backends: usize) -> Retry {
    let default_attempts = if backends > 1 { 2 } else { 1 };
    let default_on = RetryOn { connect: true, timeout: true, ..RetryOn::default() };
    let Some(r) = raw else {
        return Retry { attempts: default_attempts, on: default_on, first_event_timeout: None };
    };
    let r = r.into_inner();
    let attempts = count(cx, "retry.attempts", r.attempts, default_attempts, 1, MAX_BACKENDS as i64);
    let on = match r.on {
        None => default_on,
        Some(list) => {
            let mut on = RetryOn::default();
            for item in list {
                match item.get_ref().as_str() {
                    "connect" => on.connect = true,
                    "timeout" => on.timeout = true,
                    "5xx" => on.status_5xx = true,
                    s => match s.parse::<u16>() {
                        Ok(code) if (400..600).contains(&code) => on.statuses.push(code),
                        _ => cx.err(
                            item.span(),
                            format!(
                                "retry.on: unknown {s:?}; expected connect, timeout, 5xx or a status 400-599"
                            ),
                        ),
                    },
                }
            }
            on
        }
    };
    let first_event_timeout = r
        .first_event_timeout
        .map(|t| cx.duration("retry.first_event_timeout", Some(t), Duration::from_secs(30), false));
    Retry { attempts, on, first_event_timeout }
}
