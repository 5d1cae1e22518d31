//! `[[route]]`: one [`Route`] per table. This module owns every route key: [`route`] turns a raw route into
//! a validated one with one line per key (its rule and its default). The upstream keys (`upstream`,
//! `ca_file`, `upstream_headers`) and the client-facing security keys (`auth`, `cors`) are validated in
//! the submodules [`upstream`] and [`security`], which only the route section uses.
//!
//! A new route key: a field in `RawRoute`, a field in [`Route`] and a line in [`route`], all in this file
//! (and a test in `config/tests/route.rs`).

pub(super) mod hosts;
pub(super) mod output;
pub(super) mod pool;
mod provider;
pub(super) mod resume;
mod security;
pub(super) mod upstream;

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use std::collections::BTreeMap;

use serde::Deserialize;
use ssegate_frame::Format;
use toml::Spanned;

use super::cx::Cx;
use super::headers::{response_headers, RawResponseHeaders};
use super::values::{check_path_chars, DurationStr, SizeValue, KIB, MIB};
use crate::headers::ResponseHeaders;
use crate::security::{Cors, InjectedHeader, KeySet};
use security::{RawAuth, RawCors};

pub use hosts::{request_host, HostMatch, HostPattern};
pub use pool::{Backend, Balance, Health, Passive, Pool, Retry, RetryOn};
pub use resume::{Resume, StoreKind};
pub use security::{CORS_DEFAULT_HEADERS, CORS_DEFAULT_METHODS};
pub use upstream::Upstream;

/// Smallest accepted `max_event_size`.
pub const MIN_EVENT_SIZE: usize = KIB as usize;
/// Largest accepted `max_event_size`.
pub const MAX_EVENT_SIZE: usize = 256 * MIB as usize;
/// Largest accepted `max_streams`.
pub const MAX_STREAMS: i64 = 1_000_000;
/// Smallest non-zero `heartbeat_interval`.
pub const MIN_HEARTBEAT: Duration = Duration::from_millis(10);

/// `[[route]]`
#[derive(Debug, Clone)]
pub struct Route {
    /// `name`: `[A-Za-z0-9_.-]{1,64}`, unique; used as the `route` metrics label.
    pub name: String,
    /// `path_prefix`: starts with `/`; no trailing `/` unless it is exactly `/`. Matches whole segments:
    /// `/a` matches `/a`, `/a/x`, `/a?q` but not `/ab`. Longest matching prefix wins.
    pub path_prefix: String,
    /// `hosts` (default: any host): the request's host picks among the routes that list it, before the
    /// prefix; routes without `hosts` are the fallback. (host, path_prefix) pairs are unique.
    pub hosts: Vec<HostPattern>,
    /// `strip_prefix` (default true): remove the prefix before forwarding (`/a/x` -> `/x`, `/a` -> `/`).
    pub strip_prefix: bool,
    /// The first primary backend's upstream (`upstream`, or the first of `upstreams`): its `base_path`
    /// is the one the edge builds the forwarded path with.
    pub upstream: Upstream,
    /// `upstream` / `upstreams`, `balance`, `health`, `passive`, `retry` (see [`pool`]).
    pub pool: Pool,
    /// `format` (default auto)
    pub format: FormatChoice,
    /// `heartbeat_interval` (default "15s"; "0s" -> None, disabled)
    pub heartbeat_interval: Option<Duration>,
    /// `event_field`: JSON formats, take the `event:` name from this top-level string field.
    pub event_field: Option<String>,
    /// `ids` (default false): number events `id: 1`, `id: 2`, ... (replacing upstream ids).
    pub ids: bool,
    /// `done_event`: sent after a clean upstream end, e.g. `{ event = "end", data = "[DONE]" }`.
    pub done_event: Option<DoneEvent>,
    /// `forward_comments` (default false): forward upstream SSE comment lines (e.g. `: ping`) to the client.
    pub forward_comments: bool,
    /// `outputs` (default `["sse"]`): what a converted stream may be written as; the client chooses with
    /// `Accept`, the first is the default.
    pub outputs: Vec<ssegate_frame::encode::Output>,
    /// `ndjson_heartbeats` (default false): NDJSON has no comments, so heartbeats are empty lines, sent only
    /// when this is on.
    pub ndjson_heartbeats: bool,
    /// `provider` (see [`crate::provider`]): a preset for the format, the end marker and token usage.
    pub provider: Option<crate::provider::Provider>,
    /// `expect_end` (default true with a provider): an upstream EOF without the provider's end marker is an
    /// `upstream_truncated` error.
    pub expect_end: bool,
    /// `connect_timeout` (default "5s")
    pub connect_timeout: Duration,
    /// `header_timeout` (default "300s"): request sent -> upstream response headers.
    pub header_timeout: Duration,
    /// `idle_timeout` (default "300s"): longest silence of the upstream body.
    pub idle_timeout: Duration,
    /// `max_duration` (default "1h"; "0s" -> None, unlimited): longest stream.
    pub max_duration: Option<Duration>,
    /// `max_event_size` (default "1MiB"): integer bytes or a string with B/KiB/MiB/KB/MB suffix.
    pub max_event_size: usize,
    /// `on_decode_error` (default skip): what a malformed/oversized message does.
    pub on_decode_error: DecodeErrorPolicy,
    /// `on_disconnect` (default abort; detach with `resume`): what happens to the upstream when the client
    /// leaves mid-stream.
    pub on_disconnect: DisconnectPolicy,
    /// `resume = { store, max_bytes, ttl }`: resumable streams (see [`resume`]); `None`: off.
    pub resume: Option<Resume>,
    /// `detach_timeout` (default "60s"): `detach` aborts the upstream once no reader was attached this long.
    pub detach_timeout: Duration,
    /// `auth = { keys_env = [...], keys_file = [...] }`: the client keys this route accepts; `None`: open.
    pub auth: Option<KeySet>,
    /// `upstream_headers = { "Name" = "value with ${env:VAR} / ${file:PATH}" }`, resolved at load.
    pub upstream_headers: Vec<InjectedHeader>,
    /// `max_streams` (default 0 = unlimited): concurrent requests on this route; more get 503.
    pub max_streams: usize,
    /// `retry_after` (default "1s"): the `Retry-After` of a 503 for `max_streams` (whole seconds, at least 1).
    pub retry_after: Duration,
    /// `cors = { allow_origins = [...], ... }`
    pub cors: Option<Cors>,
    /// `response_headers = { remove = ["server", "x-internal-*"], set = { "x-served-by" = "ssegate" } }`:
    /// `remove` drops upstream headers (names, or `prefix*`); `set` adds or replaces headers on every
    /// answer of the route. `None` when absent or empty.
    pub response_headers: Option<Arc<ResponseHeaders>>,
}

/// `format = "auto" | "passthrough" | <a frame format name>`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatChoice {
    /// Choose by the upstream's Content-Type (`Format::from_content_type`); unknown types pass through.
    Auto,
    /// Never convert.
    Passthrough,
    /// Always decode this format (for `json-array`: 2xx answers only).
    Fixed(Format),
}

/// `done_event = { event = "...", data = "..." }` (`event` optional; `data` required).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoneEvent {
    pub event: Option<String>,
    pub data: String,
}

/// `on_decode_error = "skip" | "close"`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeErrorPolicy {
    /// Drop the bad message, count it, keep streaming (unrecoverable JSON errors still close).
    Skip,
    /// Send `event: error` (type `decode`) and end the stream.
    Close,
}

/// `on_disconnect = "abort" | "drain" | "detach"` (`detach` needs `resume`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectPolicy {
    /// Close the upstream connection at once: it stops producing (and billing) what nobody reads.
    Abort,
    /// Keep reading the upstream body to its end (bounded by `max_duration`, `idle_timeout` and a
    /// shutdown), decoding and counting its events without delivering them.
    Drain,
    /// Keep reading the upstream and recording its events for resume; abort it once no reader has been
    /// attached for `detach_timeout` (and at `max_duration`).
    Detach,
}

// ---- the file's table, as serde reads it (see `RawConfig` for the conventions) -------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    name: Option<Spanned<String>>,
    path_prefix: Option<Spanned<String>>,
    strip_prefix: Option<bool>,
    upstream: Option<Spanned<String>>,
    ca_file: Option<Spanned<String>>,
    format: Option<Spanned<String>>,
    heartbeat_interval: Option<Spanned<DurationStr>>,
    event_field: Option<Spanned<String>>,
    ids: Option<bool>,
    done_event: Option<Spanned<RawDoneEvent>>,
    forward_comments: Option<bool>,
    connect_timeout: Option<Spanned<DurationStr>>,
    header_timeout: Option<Spanned<DurationStr>>,
    idle_timeout: Option<Spanned<DurationStr>>,
    max_duration: Option<Spanned<DurationStr>>,
    max_event_size: Option<Spanned<SizeValue>>,
    on_decode_error: Option<Spanned<String>>,
    on_disconnect: Option<Spanned<String>>,
    resume: Option<Spanned<resume::RawResume>>,
    detach_timeout: Option<Spanned<DurationStr>>,
    auth: Option<Spanned<RawAuth>>,
    upstream_headers: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
    max_streams: Option<Spanned<i64>>,
    retry_after: Option<Spanned<DurationStr>>,
    cors: Option<Spanned<RawCors>>,
    response_headers: Option<RawResponseHeaders>,
    upstreams: Option<Spanned<Vec<Spanned<pool::RawBackend>>>>,
    balance: Option<Spanned<String>>,
    health: Option<Spanned<pool::RawHealth>>,
    passive: Option<Spanned<pool::RawPassive>>,
    retry: Option<Spanned<pool::RawRetry>>,
    hosts: Option<Spanned<Vec<Spanned<String>>>>,
    outputs: Option<Spanned<Vec<Spanned<String>>>>,
    ndjson_heartbeats: Option<bool>,
    provider: Option<Spanned<String>>,
    expect_end: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDoneEvent {
    event: Option<Spanned<String>>,
    data: Option<Spanned<String>>,
}

/// Names and path prefixes of the routes so far, for duplicate detection: (value, offset) and
/// (value, offset, owning route's name).
#[derive(Default)]
struct Seen {
    names: Vec<(String, usize)>,
    prefixes: Vec<(String, usize, String, Vec<HostPattern>)>,
}

/// Every `[[route]]`, in file order; at least one is required. `has_redis`: the file has a `[redis]` table
/// (which `resume = { store = "redis" }` needs).
pub(super) fn routes(cx: &mut Cx, raw: Vec<Spanned<RawRoute>>, has_redis: bool) -> Vec<Route> {
    if raw.is_empty() {
        cx.err(0..0, "no routes: add at least one [[route]] table");
        return Vec::new();
    }
    let mut seen = Seen::default();
    raw.into_iter().filter_map(|r| route(cx, &mut seen, r, has_redis)).collect()
}

/// One route; `None` when a required key is missing or invalid (every problem is reported either way).
fn route(cx: &mut Cx, seen: &mut Seen, raw: Spanned<RawRoute>, has_redis: bool) -> Option<Route> {
    let header = raw.span();
    let r = raw.into_inner();
    let label = r.name.as_ref().map_or_else(String::new, |n| format!(" {:?}", n.get_ref()));

    // The required keys, first: later keys depend on them (`event_field` on `format`).
    let name = name(cx, seen, &header, r.name);
    let hosts = hosts::hosts(cx, r.hosts);
    let path_prefix = path_prefix(cx, seen, &header, &label, r.path_prefix, &name, &hosts);
    let raw_pool = pool::RawPool {
        upstream: r.upstream,
        upstreams: r.upstreams,
        ca_file: r.ca_file,
        balance: r.balance,
        health: r.health,
        passive: r.passive,
        retry: r.retry,
    };
    let pool = pool::pool(cx, &header, &label, raw_pool);
    let upstream =
        pool.as_ref().and_then(|p| p.backends.iter().find(|b| !b.backup)).map(|b| b.upstream.clone());
    let provider = provider::provider(cx, r.provider);
    let format_span = r.format.as_ref().map(Spanned::span);
    let format = format(cx, r.format).map(|f| provider::format(cx, provider, format_span.map(|s| (f, s))));
    let resume_span = r.resume.as_ref().map(Spanned::span);
    let resume = resume::resume(cx, r.resume, has_redis);
    if let (Some(span), Some(FormatChoice::Passthrough)) = (resume_span, format) {
        cx.err(span, "resume needs events: it does not apply to format = \"passthrough\"");
    }

    // Then one line per key. Fields are evaluated in the order written, so the required ones come last:
    // every key's problems are reported before a missing required key drops the route.
    Some(Route {
        hosts,
        strip_prefix: r.strip_prefix.unwrap_or(true),
        heartbeat_interval: cx.optional_duration(
            "heartbeat_interval",
            r.heartbeat_interval,
            Duration::from_secs(15),
            Some(MIN_HEARTBEAT),
        ),
        event_field: event_field(cx, r.event_field, format),
        ids: r.ids.unwrap_or(false),
        done_event: r.done_event.and_then(|d| done_event(cx, d)),
        forward_comments: r.forward_comments.unwrap_or(false),
        connect_timeout: cx.duration("connect_timeout", r.connect_timeout, Duration::from_secs(5), false),
        header_timeout: cx.duration("header_timeout", r.header_timeout, Duration::from_secs(300), false),
        idle_timeout: cx.duration("idle_timeout", r.idle_timeout, Duration::from_secs(300), false),
        max_duration: cx.optional_duration("max_duration", r.max_duration, Duration::from_secs(3600), None),
        max_event_size: cx.size(
            "max_event_size",
            r.max_event_size,
            MIB as usize,
            MIN_EVENT_SIZE,
            MAX_EVENT_SIZE,
        ),
        on_decode_error: on_decode_error(cx, r.on_decode_error),
        on_disconnect: on_disconnect(cx, r.on_disconnect, resume.is_some()),
        detach_timeout: resume::detach_timeout(cx, r.detach_timeout),
        resume,
        auth: r.auth.and_then(|a| security::auth(cx, a)),
        upstream_headers: r.upstream_headers.map(|h| upstream::upstream_headers(cx, h)).unwrap_or_default(),
        max_streams: max_streams(cx, r.max_streams),
        retry_after: cx.duration("retry_after", r.retry_after, Duration::from_secs(1), false),
        cors: r.cors.and_then(|c| security::cors(cx, c)),
        response_headers: r.response_headers.and_then(|h| response_headers(cx, h)),
        outputs: output::outputs(cx, r.outputs),
        ndjson_heartbeats: r.ndjson_heartbeats.unwrap_or(false),
        expect_end: provider::expect_end(cx, provider, r.expect_end),
        provider,
        name: name?,
        path_prefix: path_prefix?,
        upstream: upstream?,
        pool: pool?,
        format: format?,
    })
}

fn name(cx: &mut Cx, seen: &mut Seen, header: &Range<usize>, raw: Option<Spanned<String>>) -> Option<String> {
    let Some(n) = raw else {
        cx.err(header.clone(), "missing key `name` in [[route]]");
        return None;
    };
    if let Err(msg) = check_route_name(n.get_ref()) {
        cx.err(n.span(), msg);
        return None;
    }
    if let Some((_, at)) = seen.names.iter().find(|(s, _)| s == n.get_ref()) {
        let msg = format!("duplicate route name {:?} (first used on line {})", n.get_ref(), cx.line_of(*at));
        cx.err(n.span(), msg);
    } else {
        seen.names.push((n.get_ref().clone(), n.span().start));
    }
    Some(n.into_inner())
}

fn path_prefix(
    cx: &mut Cx,
    seen: &mut Seen,
    header: &Range<usize>,
    label: &str,
    raw: Option<Spanned<String>>,
    name: &Option<String>,
    hosts: &[HostPattern],
) -> Option<String> {
    let Some(p) = raw else {
        cx.err(header.clone(), format!("missing key `path_prefix` in [[route]]{label}"));
        return None;
    };
    if let Err(msg) = check_path_prefix(p.get_ref()) {
        cx.err(p.span(), msg);
        return None;
    }
    let clash = seen.prefixes.iter().find_map(|(s, at, other, their)| {
        if s != p.get_ref() {
            return None;
        }
        if hosts.is_empty() && their.is_empty() {
            return Some((at, other, None));
        }
        hosts.iter().find(|h| their.contains(h)).map(|h| (at, other, Some(h)))
    });
    if let Some((at, other, host)) = clash {
        let msg = match host {
            None => format!(
                "duplicate path_prefix {:?}: route {other:?} (line {}) already uses it",
                p.get_ref(),
                cx.line_of(*at)
            ),
            Some(h) => format!(
                "duplicate host and path_prefix: route {other:?} (line {}) already serves {:?} on {:?}",
                cx.line_of(*at),
                h.as_config(),
                p.get_ref()
            ),
        };
        cx.err(p.span(), msg);
    }
    let owner = name.clone().unwrap_or_default();
    seen.prefixes.push((p.get_ref().clone(), p.span().start, owner, hosts.to_vec()));
    Some(p.into_inner())
}

fn format(cx: &mut Cx, raw: Option<Spanned<String>>) -> Option<FormatChoice> {
    let Some(f) = raw else { return Some(FormatChoice::Auto) };
    let choice = parse_format(f.get_ref());
    if choice.is_none() {
        cx.err(f.span(), format!("unknown format {:?}; expected one of {}", f.get_ref(), format_names()));
    }
    choice
}

fn event_field(cx: &mut Cx, raw: Option<Spanned<String>>, format: Option<FormatChoice>) -> Option<String> {
    let ef = raw?;
    if ef.get_ref().is_empty() {
        cx.err(ef.span(), "event_field must not be empty");
    } else if matches!(format, Some(FormatChoice::Passthrough))
        || matches!(format, Some(FormatChoice::Fixed(f)) if !f.is_json())
    {
        let name = format.map_or("", format_choice_name);
        cx.err(
            ef.span(),
            format!(
                "event_field only applies to JSON formats (ndjson, json-stream, json-seq, json-array) or auto, \
                 not format {name:?}"
            ),
        );
    }
    Some(ef.into_inner())
}

fn done_event(cx: &mut Cx, raw: Spanned<RawDoneEvent>) -> Option<DoneEvent> {
    let header = raw.span();
    let raw = raw.into_inner();
    let mut ok = true;
    if let Some(ev) = &raw.event {
        let s = ev.get_ref();
        if s.is_empty() {
            cx.err(ev.span(), "done_event.event must not be empty (leave it out for a plain message)");
            ok = false;
        } else if s.contains(['\r', '\n', '\0']) {
            cx.err(ev.span(), "done_event.event must not contain CR, LF or NUL");
            ok = false;
        }
    }
    let data = match raw.data {
        Some(d) => Some(d.into_inner()),
        None => {
            cx.err(header, "missing key `data` in done_event (e.g. { event = \"end\", data = \"[DONE]\" })");
            None
        }
    };
    if !ok {
        return None;
    }
    Some(DoneEvent { event: raw.event.map(Spanned::into_inner), data: data? })
}

fn on_decode_error(cx: &mut Cx, raw: Option<Spanned<String>>) -> DecodeErrorPolicy {
    let Some(p) = raw else { return DecodeErrorPolicy::Skip };
    match p.get_ref().as_str() {
        "skip" => DecodeErrorPolicy::Skip,
        "close" => DecodeErrorPolicy::Close,
        other => {
            cx.err(p.span(), format!("unknown on_decode_error {other:?}; expected skip or close"));
            DecodeErrorPolicy::Skip
        }
    }
}

fn on_disconnect(cx: &mut Cx, raw: Option<Spanned<String>>, resume: bool) -> DisconnectPolicy {
    let Some(p) = raw else {
        return if resume { DisconnectPolicy::Detach } else { DisconnectPolicy::Abort };
    };
    match p.get_ref().as_str() {
        "abort" => DisconnectPolicy::Abort,
        "drain" => DisconnectPolicy::Drain,
        "detach" if resume => DisconnectPolicy::Detach,
        "detach" => {
            cx.err(
                p.span(),
                "on_disconnect = \"detach\" needs resume on the route (e.g. resume = { store = \"memory\" })",
            );
            DisconnectPolicy::Abort
        }
        other => {
            cx.err(p.span(), format!("unknown on_disconnect {other:?}; expected abort, drain or detach"));
            DisconnectPolicy::Abort
        }
    }
}

fn max_streams(cx: &mut Cx, raw: Option<Spanned<i64>>) -> usize {
    let Some(m) = raw else { return 0 };
    let v = *m.get_ref();
    if !(0..=MAX_STREAMS).contains(&v) {
        cx.err(m.span(), format!("max_streams must be between 0 (unlimited) and {MAX_STREAMS}, got {v}"));
        0
    } else {
        v as usize
    }
}

fn check_route_name(name: &str) -> Result<(), String> {
    let ok_chars = name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if name.is_empty() || name.len() > 64 || !ok_chars {
        return Err(format!(
            "invalid route name {name:?}: use 1 to 64 characters from A-Z a-z 0-9 _ . - (it becomes a metrics label)"
        ));
    }
    Ok(())
}

fn check_path_prefix(p: &str) -> Result<(), String> {
    let fail = |why: String| Err(format!("invalid path_prefix {p:?}: {why}"));
    if !p.starts_with('/') {
        return fail("must start with `/`".to_owned());
    }
    if p.len() > 1 && p.ends_with('/') {
        return fail(format!("must not end with `/` (write {:?})", p.trim_end_matches('/')));
    }
    if p.contains("//") {
        return fail("must not contain an empty segment (`//`)".to_owned());
    }
    if p.split('/').any(|seg| seg == "." || seg == "..") {
        return fail("must not contain `.` or `..` segments".to_owned());
    }
    if let Err(why) = check_path_chars(p) {
        return fail(why);
    }
    Ok(())
}

/// Every accepted `format` value, for the "unknown format" message (derived, so a new format is listed).
fn format_names() -> String {
    let mut names = vec!["auto", "passthrough"];
    names.extend(Format::ALL.map(Format::name));
    names.join(", ")
}

fn parse_format(name: &str) -> Option<FormatChoice> {
    match name {
        "auto" => Some(FormatChoice::Auto),
        "passthrough" => Some(FormatChoice::Passthrough),
        other => Format::from_name(other).map(FormatChoice::Fixed),
    }
}

pub(super) fn format_choice_name(f: FormatChoice) -> &'static str {
    match f {
        FormatChoice::Auto => "auto",
        FormatChoice::Passthrough => "passthrough",
        FormatChoice::Fixed(f) => f.name(),
    }
}
