//! `resume = { store = "memory", max_bytes = "4MiB", ttl = "10m" }` and `detach_timeout`: resumable
//! streams (see [`crate::resume`]). The table turns resume on; `on_disconnect` then defaults to `detach`.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::super::cx::Cx;
use super::super::values::{DurationStr, SizeValue, GIB, KIB, MIB};

/// Smallest accepted `max_bytes`.
pub const MIN_RESUME_BYTES: usize = KIB as usize;
/// Largest accepted `max_bytes`.
pub const MAX_RESUME_BYTES: usize = GIB as usize;

/// `resume = { ... }`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    /// `store` (required): where events are kept.
    pub store: StoreKind,
    /// `max_bytes` (default "4MiB"): the retained window of one stream (event names and data); the oldest
    /// events are evicted first.
    pub max_bytes: u64,
    /// `ttl` (default "10m"): how long a stream stays readable after it ended.
    pub ttl: Duration,
}

/// `store = "memory" | "redis"`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// This process (`[server] resume_memory_max_bytes` caps all its streams together).
    Memory,
    /// The `[redis]` server, shared by every instance that names it (`crate::resume::redis`).
    Redis,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawResume {
    store: Option<Spanned<String>>,
    max_bytes: Option<Spanned<SizeValue>>,
    ttl: Option<Spanned<DurationStr>>,
}

/// The route's `resume` table; `None` when absent or invalid (its problems are reported). `has_redis`: the
/// file has a `[redis]` table.
pub(super) fn resume(cx: &mut Cx, raw: Option<Spanned<RawResume>>, has_redis: bool) -> Option<Resume> {
    let raw = raw?;
    let header = raw.span();
    let raw = raw.into_inner();
    let store = match raw.store {
        None => {
            cx.err(header, "missing key `store` in resume (store = \"memory\")");
            None
        }
        Some(s) => match s.get_ref().as_str() {
            "memory" => Some(StoreKind::Memory),
            "redis" if has_redis => Some(StoreKind::Redis),
            "redis" => {
                cx.err(
                    s.span(),
                    "resume store \"redis\" needs a [redis] table (url = \"redis://host:6379/0\")",
                );
                None
            }
            other => {
                cx.err(s.span(), format!("unknown resume store {other:?}; expected memory or redis"));
                None
            }
        },
    };
    let max_bytes =
        cx.size("resume.max_bytes", raw.max_bytes, 4 * MIB as usize, MIN_RESUME_BYTES, MAX_RESUME_BYTES)
            as u64;
    let ttl = cx.duration("resume.ttl", raw.ttl, Duration::from_secs(600), false);
    Some(Resume { store: store?, max_bytes, ttl })
}

/// `detach_timeout` (default "60s"): with `on_disconnect = "detach"`, the upstream is aborted once no reader
/// has been attached for this long.
pub(super) fn detach_timeout(cx: &mut Cx, raw: Option<Spanned<DurationStr>>) -> Duration {
    cx.duration("detach_timeout", raw, Duration::from_secs(60), false)
}
