//! The store seam of resumable streams: what an owner (the exchange that runs the upstream) writes, and
//! what a reader (a reconnect, a `/_streams/<stream>` request, on this instance or another) reads.
//!
//! Two stores implement it: `memory` ([`super::memory`], one process) and `redis` (`super::redis`, many
//! instances). A route with `resume` holds one `Arc<dyn Store>`.
//!
//! ## The model
//!
//! A stream is a sequence of records `1, 2, 3, …` (its `seq`), each one [`Event`] as the upstream's decoder
//! produced it (name, data, retry) — never encoded bytes and never an id: every reader encodes for its own
//! output and applies `id: <stream>.<seq>` at encode time. The ending event (the route's `done_event`, or the
//! `event: error` that ended the stream) is the last record, appended like any other, then [`Writer::finish`]
//! marks the stream ended at that seq. A stream that completes without a `done_event` ends at its last
//! event's seq (0 when it had none).
//!
//! - The owner calls [`Store::create`] once, [`Writer::append`] per event (in seq order, no holes), then
//!   [`Writer::finish`]. None of these waits: a live stream never waits on a store. A store that cannot keep
//!   up or is unavailable drops what it cannot write (counting `ssegate_resume_store_errors_total`, logging
//!   once per stream); the live stream goes on without resume.
//! - A [`Writer`] dropped without [`Writer::finish`] (the owner's task ended without an ending) leaves the
//!   stream without an ending: readers get [`Next::Lost`] once the store notices (memory: at once; Redis:
//!   when the owner's lease expires).
//! - A reader calls [`Store::open`], then alternates [`Reader::read`] (what is retained after a seq, never
//!   waits) and [`Reader::wait`] (until there may be more). Holding a [`Reader`] is the reader's presence:
//!   [`Writer::readers_attached`] reports it to the owner (`detach_timeout`), including readers on other
//!   instances (Redis).
//!
//! Retention: a store keeps a bounded window per stream (`max_bytes`, oldest records evicted first; the
//! memory store also a process-wide cap), and the whole stream until `ttl` after its ending (or after the
//! owner was lost). A reader that needs a record no longer retained gets [`Next::Gap`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use ssegate_frame::Event;

/// A stream's id: 128 random bits, written as 32 lowercase hex digits (URL-safe, fixed length).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub [u8; 16]);

impl StreamId {
    /// Length of the written form.
    pub const LEN: usize = 32;

    /// A new random id from the OS's CSPRNG; `None` if it fails (the stream is then not resumable: an id
    /// must never be guessable).
    pub fn random() -> Option<StreamId> {
        let mut b = [0u8; 16];
        getrandom::fill(&mut b).ok()?;
        Some(StreamId(b))
    }

    /// Parses the written form (exactly 32 hex digits, either case).
    pub fn parse(s: &str) -> Option<StreamId> {
        let s = s.as_bytes();
        if s.len() != Self::LEN {
            return None;
        }
        let mut b = [0u8; 16];
        for (i, pair) in s.chunks_exact(2).enumerate() {
            b[i] = (hex(pair[0])? << 4) | hex(pair[1])?;
        }
        Some(StreamId(b))
    }

    /// The written form, on the stack.
    pub fn as_hex(&self) -> [u8; Self::LEN] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; Self::LEN];
        for (i, b) in self.0.iter().enumerate() {
            out[2 * i] = DIGITS[(b >> 4) as usize];
            out[2 * i + 1] = DIGITS[(b & 15) as usize];
        }
        out
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // as_hex is ASCII by construction.
        f.write_str(std::str::from_utf8(&self.as_hex()).unwrap_or_default())
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamId({self})")
    }
}

/// What a stream was started with; a reader checks it before reading (route, key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// The route's `name` that started the stream: a reader on another route is refused.
    pub route: String,
    /// SHA-256 of the gateway key that started the stream (routes with `auth`), never the key itself;
    /// `None` on routes without `auth`. Compared in constant time by the caller.
    pub key_hash: Option<[u8; 32]>,
    /// When the stream was created (wall clock: it may be read on another instance).
    pub created: SystemTime,
}

/// A stream's retention, from its route's `resume` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `max_bytes`: the retained window of one stream, in bytes of event name + data (oldest evicted first).
    pub max_bytes: u64,
    /// `ttl`: how long a stream stays readable after its ending (or after its owner was lost).
    pub ttl: Duration,
}

/// One retained event and its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// From 1, contiguous within a stream.
    pub seq: u64,
    /// Name, data and retry as decoded; `id` is always `None` (readers apply `<stream>.<seq>`).
    pub event: Event,
}

impl Record {
    /// The bytes it counts against `max_bytes` and the process-wide cap.
    pub fn size(&self) -> u64 {
        (self.event.data.len() + self.event.name.as_ref().map_or(0, |n| n.len())) as u64
    }
}

/// How a stream ended (set by [`Writer::finish`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The upstream completed; its last record is the route's `done_event`, if the route has one.
    Completed,
    /// The stream ended with an `event: error`, which is its last record.
    Failed,
    /// The owner stopped producing without an error event that readers should see as such (e.g.
    /// `detach_timeout` with nobody reading): readers that reach the end get `upstream_lost`.
    Abandoned,
}

/// What [`Store::open`] found.
#[derive(Debug)]
pub enum Opened {
    /// The stream is retained: its meta, and a reader positioned nowhere yet (it reads after any seq).
    Found(Meta, Box<dyn Reader>),
    /// No stream with this id is known (never existed, or already removed).
    Unknown,
    /// The stream is known but past its `ttl` (stores that can tell; others answer [`Opened::Unknown`]).
    Expired,
}

/// What [`Reader::read`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Records were pushed to `out`: ascending, the first one is `after + 1`, contiguous.
    Records,
    /// Nothing after `after` yet and the stream goes on: [`Reader::wait`], then read again.
    Pending,
    /// The reader needs `after + 1`, but the oldest retained record is `oldest` (> `after + 1`).
    Gap { oldest: u64 },
    /// The stream ended at `last` (<= `after`): nothing more will come.
    Ended { last: u64, how: Ending },
    /// The owner stopped without an ending (its task or process died, its lease expired) and nothing
    /// after `after` is retained.
    Lost,
    /// The stream was removed (ttl, process-wide cap) while the reader read it.
    Gone,
}

/// A store failure on the reader's side (the owner's side never sees errors: see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("resume store unavailable: {0}")]
pub struct StoreError(pub String);

/// A resume store, shared by every route that names it (`Arc<dyn Store>`).
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// `"memory"` or `"redis"` (logs, metrics).
    fn kind(&self) -> &'static str;

    /// Starts recording a new stream. Never waits: a remote store queues the creation with the first
    /// appends. Called once per resumable stream, when its response is committed.
    fn create(&self, id: StreamId, meta: Meta, limits: Limits) -> Box<dyn Writer>;

    /// Finds a stream for a reader. Cold path (once per resume request).
    async fn open(&self, id: StreamId) -> Result<Opened, StoreError>;
}

/// The owner's handle of one stream. `Send + Sync` so that the exchange future stays `Send`.
pub trait Writer: Send + Sync + fmt::Debug {
    /// Records event `seq` (the previous one plus 1). Never waits and never fails; the memory store
    /// allocates nothing but the event's `Bytes` clones (and, amortised, its window's growth). `event.id`
    /// is ignored.
    fn append(&mut self, seq: u64, event: &Event);

    /// The stream ended at `last` (the seq of its last record, 0 if it had none) as `how`. Called at most
    /// once; appends after it are ignored.
    fn finish(&mut self, last: u64, how: Ending);

    /// Whether a reader is attached now (on any instance: a remote store reports what it last saw,
    /// refreshed in the background, so this never waits).
    fn readers_attached(&self) -> bool;

    /// Completes once the store is done with what was written, the ending included (written — or given
    /// up on, counted as a store error), or after `limit`; whether it is done. The one wait of an owner,
    /// called only on the way out of a shutting-down process (a remote store's queue must not die with
    /// it). The memory store has nothing to wait for.
    fn settle(&self, limit: Duration) -> Pin<Box<dyn Future<Output = bool> + Send + '_>> {
        let _ = limit;
        Box::pin(std::future::ready(true))
    }
}

/// A reader's handle of one stream. Holding it counts as the reader's presence; dropping it ends it.
#[async_trait]
pub trait Reader: Send + Sync + fmt::Debug {
    /// Pushes the records after `after` that are retained now (a store-chosen batch: call again with the
    /// last seq read) into `out`, or says why there are none. Never waits for new records.
    async fn read(&mut self, after: u64, out: &mut Vec<Record>) -> Result<Next, StoreError>;

    /// Returns once there may be something after `after`: a new record, the ending, the owner lost, or the
    /// stream removed (spurious returns are allowed: the caller reads again). Cancel-safe: a reader selects
    /// it against its heartbeat and write deadlines and simply calls it again.
    async fn wait(&mut self, after: u64) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_anything_else() {
        let id = StreamId::random().unwrap();
        let s = id.to_string();
        assert_eq!(s.len(), StreamId::LEN);
        assert!(s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{s}");
        assert_eq!(StreamId::parse(&s), Some(id));
        assert_eq!(StreamId::parse(&s.to_uppercase()), Some(id));
        assert_ne!(StreamId::random(), Some(id));
        let fixed = StreamId([0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0, 0, 0, 0, 0, 0, 0xff, 0x10]);
        assert_eq!(fixed.to_string(), "0123456789abcdef000000000000ff10");
        for bad in [
            "",
            "0123",
            &s[1..],
            &format!("{s}0"),
            "0123456789abcdef000000000000ff1g",
            "+123456789abcdef000000000000ff10",
        ] {
            assert_eq!(StreamId::parse(bad), None, "{bad:?}");
        }
    }
}
