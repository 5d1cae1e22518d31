//! Configuration: the raw TOML file is parsed and validated here, and only here, into the runtime types
//! below. Nothing outside this module sees a raw struct.
//!
//! Every problem is reported as `file:line:col: message`; all problems of a file are collected before
//! failing (a config that passes `ssegate check` starts).
//!
//! Layout: three sections, `server` (`[server]`, `[server.tls]`, `[admin]`), `redis` (`[redis]`) and
//! `route` (`[[route]]`, with its submodules `upstream` and `security`), each keeping together, per key, the serde mirror of its
//! tables, the validated type, the rule and the default, and its limits. They report through the leaf
//! context `cx` (errors with positions, path resolution, and every environment / file read, through a
//! [`Source`]) and share `values` (durations, sizes, listen addresses, URL paths); they never use each
//! other. Only this module calls them, in file order.

mod cx;
mod headers;
mod redis;
mod route;
mod server;
mod values;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

pub use cx::{ConfigErrors, MapSource, Source, System};
pub use redis::{Redis, DEFAULT_KEY_PREFIX as REDIS_DEFAULT_KEY_PREFIX};
pub use route::{
    request_host, Backend, Balance, DecodeErrorPolicy, DisconnectPolicy, DoneEvent, FormatChoice, Health,
    HostMatch, HostPattern, Passive, Pool, Resume, Retry, RetryOn, Route, StoreKind, Upstream,
    CORS_DEFAULT_HEADERS, CORS_DEFAULT_METHODS, MAX_EVENT_SIZE, MAX_STREAMS, MIN_EVENT_SIZE, MIN_HEARTBEAT,
};
pub use server::{Admin, Server, Tls, MAX_HEADER_SIZE, MAX_REQUEST_BODY, MAX_THREADS, MIN_HEADER_SIZE};
pub use values::MAX_DURATION_VALUE;

use cx::Cx;
use redis::RawRedis;
use route::RawRoute;
use server::{RawAdmin, RawServer};

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    pub server: Server,
    /// The admin listener (`/metrics`, `/healthz`, `/readyz`); `None` when the `[admin]` table is absent.
    pub admin: Option<Admin>,
    /// `[redis]`: where `resume = { store = "redis" }` routes keep their streams; `None` when absent.
    pub redis: Option<Redis>,
    /// Routes in file order; names are unique, prefixes are unique.
    pub routes: Vec<Route>,
}

impl Config {
    /// Reads, parses and validates `path`, with the process environment and the real file system.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Config::load_with(path, &System)
    }

    /// Parses and validates `src` as if it had been read from `path` (used for error positions and to
    /// resolve relative paths against `path`'s directory), with the process environment and the real
    /// file system.
    pub fn from_str_at(path: &Path, src: &str) -> Result<Config, ConfigErrors> {
        Config::from_str_with(path, src, &System)
    }

    /// [`Config::load`], reading the file, the environment and every referenced file from `source`.
    pub fn load_with(path: &Path, source: &dyn Source) -> Result<Config, ConfigErrors> {
        let src = cx::read_to_string(source, path)
            .map_err(|e| ConfigErrors(vec![format!("{}: cannot read config file: {e}", path.display())]))?;
        Config::from_str_with(path, &src, source)
    }

    /// [`Config::from_str_at`], reading the environment and every referenced file from `source`.
    pub fn from_str_with(path: &Path, src: &str, source: &dyn Source) -> Result<Config, ConfigErrors> {
        let mut cx = Cx::new(path, src, source);
        let raw: RawConfig = match toml::from_str(src) {
            Ok(raw) => raw,
            Err(e) => {
                let msg = e.message().trim_end().to_owned();
                match e.span() {
                    Some(span) => cx.err(span, msg),
                    None => cx.err_unplaced(msg),
                }
                return Err(cx.finish());
            }
        };
        let config = sections(&mut cx, raw);
        if !cx.has_errors() {
            if let Some(config) = config {
                return Ok(config);
            }
            cx.err_unplaced("invalid configuration");
        }
        Err(cx.finish())
    }
}

/// The file as serde reads it. Each section keeps the serde mirror of its own tables (`RawServer`,
/// `RawRoute`, ...) next to its validated type. Conventions: `deny_unknown_fields` everywhere; everything
/// that is validated later keeps its span; required keys are `Option` so that a missing key is reported
/// together with every other problem; the field order of each struct is the order serde lists the
/// accepted keys in an "unknown field" message (so it is part of the output: append new keys in the
/// documentation's order).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: Option<Spanned<RawServer>>,
    admin: Option<Spanned<RawAdmin>>,
    redis: Option<Spanned<RawRedis>>,
    route: Option<Vec<Spanned<RawRoute>>>,
}

/// Every section, in file order.
fn sections(cx: &mut Cx, raw: RawConfig) -> Option<Config> {
    let (server, admin) = server::server_and_admin(cx, raw.server, raw.admin);
    // An invalid [redis] is reported as such, not again by each route that uses it.
    let has_redis = raw.redis.is_some();
    let redis = redis::redis(cx, raw.redis);
    let routes = route::routes(cx, raw.route.unwrap_or_default(), has_redis);
    Some(Config { path: cx.path().to_path_buf(), server: server?, admin, redis, routes })
}
