//! `store = "redis"`: resumable streams in Redis, readable from every gateway instance that shares it.
//!
//! ## Keys (`P` = `[redis] key_prefix`, `S` = the stream id, 32 hex digits)
//!
//! - `P s:S` — a Redis Stream of the records. Entry id `<seq>-0` is record `seq` (fields `d` data, `n` name
//!   when set, `r` retry when set); after the last record, entry `<last>-1` (field `e`: `completed`,
//!   `failed`, `abandoned`) marks the ending, so that a reader blocked in `XREAD` wakes for it too. Written
//!   with `XADD … MAXLEN ~ N`: see [`maxlen`] for how `max_bytes` becomes `N`.
//! - `P m:S` — a hash: `route`, `key` (hex SHA-256 of the gateway key, routes with `auth` only), `created`
//!   (Unix ms), and once ended `last` and `how`.
//! - `P o:S` — the owner's lease: `SET … PX` [`Timing::lease`], renewed every [`Timing::tick`] while the owner
//!   streams, deleted at the ending. A reader that finds no new record, no ending and no lease has lost the
//!   owner (its process died, or it cannot reach Redis): `upstream_lost` at most `lease + block` after the
//!   owner's last renewal.
//! - `P r:S` — reader presence: a sorted set of reader ids scored by their expiry (Unix ms, renewed every
//!   `presence / 3` by each reader, removed when it leaves; the key itself expires `presence` after the last
//!   renewal). The owner counts the unexpired ones every tick; that is what `detach_timeout` sees, for
//!   readers on any instance (instances' clocks may differ by less than `presence`).
//!
//! The other keys expire `ttl` after the stream's last write: refreshed by each batch of appends and every
//! tick while the owner streams, and set once more at the ending (or when the writer was dropped).
//!
//! ## The owner never waits on Redis
//!
//! [`Writer::append`] and [`Writer::finish`] put an operation on a bounded queue ([`QUEUE`]); one background
//! task per store drains it into pipelines on one multiplexed connection (which reconnects by itself). A full
//! queue (Redis slow) drops the operation; a failed pipeline (Redis down, or slower than
//! [`Timing::response`]) drops its batch. Either way `ssegate_resume_store_errors_total{store="redis"}`
//! counts it, the stream logs one warning, and the live stream goes on untouched. The records that were
//! dropped leave a hole that readers see as `resume_gap` (never a silent gap); records written after Redis
//! came back are resumable again. A pipeline that fails because the connection had dropped is sent once more
//! (the first batch after Redis came back); a stream whose creation failed gets its meta and lease at the
//! next tick.
//!
//! A resume on the owning instance that comes before the stream's creation reached Redis waits for it
//! (bounded: [`Timing::response`] + [`Timing::tick`]); on another instance it finds no stream.

mod reader;
mod writer;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncConnectionConfig, Client};
use tokio::sync::mpsc;

use super::store::{Ending, Limits, Meta, Opened, Store, StoreError, StreamId, Writer};
use crate::config::Redis;
use writer::Op;

/// Operations the background writer may have queued; past it, appends are dropped (and counted).
pub const QUEUE: usize = 8192;

/// The timings of the store (the gateway uses [`Timing::DEFAULT`]; tests shorten them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// The owner's lease lives this long unless renewed.
    pub lease: Duration,
    /// How often the owner renews its lease, refreshes the keys' `ttl` and counts the readers.
    pub tick: Duration,
    /// How long one `XREAD BLOCK` of a following reader waits.
    pub block: Duration,
    /// A reader's presence lives this long unless renewed (renewed every third of it).
    pub presence: Duration,
    /// The longest one command or pipeline may take (and one connection attempt).
    pub response: Duration,
}

impl Timing {
    pub const DEFAULT: Timing = Timing {
        lease: Duration::from_secs(5),
        tick: Duration::from_secs(1),
        block: Duration::from_secs(1),
        presence: Duration::from_secs(6),
        response: Duration::from_secs(2),
    };
}

/// The key names of one stream.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub stream: String,
    pub meta: String,
    pub owner: String,
    pub readers: String,
}

impl Keys {
    fn new(prefix: &str, id: StreamId) -> Keys {
        Keys {
            stream: format!("{prefix}s:{id}"),
            meta: format!("{prefix}m:{id}"),
            owner: format!("{prefix}o:{id}"),
            readers: format!("{prefix}r:{id}"),
        }
    }
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    client: Client,
    prefix: String,
    timing: Timing,
    /// Written into the lease (who owns a stream: for someone looking at Redis).
    instance: String,
    /// The shared connection (created on first use, inside the runtime).
    conn: OnceLock<ConnectionManager>,
    /// The background writer's queue (started on first use).
    queue: OnceLock<mpsc::Sender<Op>>,
    /// Failed or dropped writes (what this store added to `ssegate_resume_store_errors_total`).
    errors: Arc<AtomicU64>,
    /// Streams this instance writes whose ending the background task has not written yet.
    local: Local,
}

/// Streams written on this instance, by id (see [`writer::RedisWriter::create`]).
pub(crate) type Local = Arc<Mutex<HashMap<StreamId, Arc<writer::Shared>>>>;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The process's store for `[redis]`, shared by every route with `store = "redis"` and kept across reloads
/// while `url` and `key_prefix` stay the same (a reload that changes them makes a new store for new streams;
/// streams already running keep writing through the old one).
pub fn shared(config: &Redis) -> Result<Arc<RedisStore>, String> {
    static CURRENT: Mutex<Option<(String, String, Arc<RedisStore>)>> = Mutex::new(None);
    let mut current = lock(&CURRENT);
    if let Some((url, prefix, store)) = current.as_ref() {
        if url == config.url.expose() && *prefix == config.key_prefix {
            return Ok(store.clone());
        }
    }
    let store = Arc::new(RedisStore::new(config)?);
    *current = Some((config.url.expose().to_owned(), config.key_prefix.clone(), store.clone()));
    Ok(store)
}

impl RedisStore {
    /// A store for `[redis]`. Connects lazily: a Redis that is down now only makes streams unresumable
    /// until it is back.
    pub fn new(config: &Redis) -> Result<RedisStore, String> {
        RedisStore::with_timing(config.url.expose(), &config.key_prefix, Timing::DEFAULT)
    }

    /// [`RedisStore::new`] from a URL, a key prefix and timings.
    pub fn with_timing(url: &str, prefix: &str, timing: Timing) -> Result<RedisStore, String> {
        let client = Client::open(url).map_err(|e| format!("redis: {e}"))?;
        Ok(RedisStore {
            inner: Arc::new(Inner {
                client,
                prefix: prefix.to_owned(),
                timing,
                instance: random_hex::<8>(),
                conn: OnceLock::new(),
                queue: OnceLock::new(),
                errors: Arc::new(AtomicU64::new(0)),
                local: Arc::default(),
            }),
        })
    }

    /// The writes this store failed or dropped so far (each also counted in
    /// `ssegate_resume_store_errors_total{store="redis"}`).
    pub fn errors(&self) -> u64 {
        self.inner.errors.load(Ordering::Relaxed)
    }

    pub(crate) fn keys(&self, id: StreamId) -> Keys {
        Keys::new(&self.inner.prefix, id)
    }
}

impl Inner {
    /// The shared multiplexed connection; created on the first call (which must be inside a Tokio runtime).
    pub(crate) fn conn(&self) -> Result<ConnectionManager, StoreError> {
        if let Some(c) = self.conn.get() {
            return Ok(c.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(self.timing.response))
            .set_connection_timeout(Some(self.timing.response))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let c = ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            .map_err(|e| StoreError(e.to_string()))?;
        Ok(self.conn.get_or_init(|| c).clone())
    }

    /// A connection of its own, for a reader's blocking `XREAD` (which would hold up a shared one).
    pub(crate) async fn blocking_conn(&self) -> Result<redis::aio::MultiplexedConnection, StoreError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timing.response))
            .set_response_timeout(Some(self.timing.block + self.timing.response));
        self.client.get_multiplexed_async_connection_with_config(&config).await.map_err(store_error)
    }
}

#[async_trait]
impl Store for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn create(&self, id: StreamId, meta: Meta, limits: Limits) -> Box<dyn Writer> {
        Box::new(writer::RedisWriter::create(&self.inner, id, self.keys(id), meta, limits))
    }

    async fn open(&self, id: StreamId) -> Result<Opened, StoreError> {
        let keys = self.keys(id);
        let mut conn = self.inner.conn()?;
        let mut fields: Vec<(String, Vec<u8>)> =
            redis::cmd("HGETALL").arg(&keys.meta).query_async(&mut conn).await.map_err(store_error)?;
        if fields.is_empty() {
            // A stream of this instance whose creation has not reached Redis yet (a client that reconnects
            // at once, or Redis just back): wait for it, bounded.
            let local = lock(&self.inner.local).get(&id).cloned();
            let Some(shared) = local else { return Ok(Opened::Unknown) };
            if !shared.wait_created(self.inner.timing.response + self.inner.timing.tick).await {
                return Ok(Opened::Unknown);
            }
            fields =
                redis::cmd("HGETALL").arg(&keys.meta).query_async(&mut conn).await.map_err(store_error)?;
            if fields.is_empty() {
                return Ok(Opened::Unknown);
            }
        }
        let Some(meta) = parse_meta(&fields) else {
            return Err(StoreError(format!("{}: not a stream's meta", keys.meta)));
        };
        let reader = reader::RedisReader::open(&self.inner, keys).await?;
        Ok(Opened::Found(meta, Box::new(reader)))
    }
}

pub(crate) fn store_error(e: redis::RedisError) -> StoreError {
    StoreError(e.to_string())
}

/// `N` of `XADD … MAXLEN ~ N`: the records of `max_bytes` at the stream's average record size so far
/// (`bytes` over `records`, at least 1 byte). Redis's `~` trims whole radix-tree nodes (100 entries by
/// default), so a stream may hold up to that many more entries; a stream whose recent records are much
/// larger than its average holds more than `max_bytes` until the average catches up. Readers never see a
/// silent hole either way: trimmed records are a `resume_gap`.
pub fn maxlen(max_bytes: u64, records: u64, bytes: u64) -> u64 {
    let avg = (bytes / records.max(1)).max(1);
    (max_bytes / avg).max(1)
}

/// The meta hash's fields into a [`Meta`]; `None` if `route` or `created` is missing or malformed.
fn parse_meta(fields: &[(String, Vec<u8>)]) -> Option<Meta> {
    let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_slice());
    let route = String::from_utf8(get("route")?.to_vec()).ok()?;
    let created_ms: u64 = std::str::from_utf8(get("created")?).ok()?.parse().ok()?;
    let key_hash = match get("key") {
        None => None,
        Some(hex) => Some(parse_hex32(hex)?),
    };
    Some(Meta { route, key_hash, created: UNIX_EPOCH + Duration::from_millis(created_ms) })
}

fn parse_hex32(hex: &[u8]) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_hex<const N: usize>() -> String {
    let mut b = [0u8; N];
    // Not a secret: an instance's or a reader's name in Redis. A failed read leaves zeros (still works).
    let _ = getrandom::fill(&mut b);
    hex(&b)
}

pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

pub(crate) fn ending_str(how: Ending) -> &'static str {
    match how {
        Ending::Completed => "completed",
        Ending::Failed => "failed",
        Ending::Abandoned => "abandoned",
    }
}

pub(crate) fn parse_ending(s: &[u8]) -> Option<Ending> {
    match s {
        b"completed" => Some(Ending::Completed),
        b"failed" => Some(Ending::Failed),
        b"abandoned" => Some(Ending::Abandoned),
        _ => None,
    }
}
