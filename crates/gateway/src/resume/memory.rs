//! `store = "memory"`: resumable streams kept in this process.
//!
//! One store per process ([`global`]), shared by every route with `resume = { store = "memory" }` and kept
//! across reloads (a stream started before a reload stays resumable). Each stream is a window of records
//! behind a mutex, bounded by its route's `max_bytes` (oldest evicted first); the whole store is bounded by
//! `[server] resume_memory_max_bytes`: past it, the oldest records of the whole process are evicted
//! (whichever stream holds them) until the store is back under 7/8 of the cap. A stream is removed `ttl`
//! after its ending (or after its owner was lost): lazily, by the next `create`/`open` (a sweep at most once
//! a second) and by an `open` that finds it expired. Its entry (meta, no records) stays for another `ttl`,
//! so that a late reader learns `expired` rather than `unknown`.
//!
//! Fan-out: readers share the window; one [`Notify`] per stream wakes them all (no per-reader queue), and
//! only when a reader is attached (an append with nobody reading takes the lock and pushes, nothing more).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use ssegate_frame::Event;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::store::{Ending, Limits, Meta, Next, Opened, Reader, Record, Store, StoreError, StreamId, Writer};

/// The most records one [`Reader::read`] returns.
const BATCH: usize = 256;

/// How often the lazy sweep may run.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The process's memory store, created on first use; `cap` (bytes) is applied at every call (a reload
/// may change it).
pub fn global(cap: u64) -> Arc<MemoryStore> {
    static STORE: OnceLock<Arc<MemoryStore>> = OnceLock::new();
    let s = STORE.get_or_init(|| Arc::new(MemoryStore::new(cap)));
    s.shared.cap.store(cap, Ordering::Relaxed);
    s.clone()
}

/// See the module docs.
#[derive(Debug)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    streams: Mutex<HashMap<StreamId, Arc<Stream>>>,
    /// The process-wide cap in bytes.
    cap: AtomicU64,
    /// Bytes retained by every stream.
    retained: AtomicU64,
    /// A process-wide append counter: the record with the smallest is the oldest of the process.
    order: AtomicU64,
    last_sweep: Mutex<Option<Instant>>,
}

#[derive(Debug)]
struct Stream {
    meta: Meta,
    limits: Limits,
    state: Mutex<State>,
    notify: Notify,
    readers: AtomicUsize,
}

#[derive(Debug, Default)]
struct State {
    /// `(order, record)`, ascending seq.
    records: VecDeque<(u64, Record)>,
    bytes: u64,
    /// The last seq appended (retained or not).
    last: u64,
    ended: Option<(u64, Ending)>,
    lost: bool,
    /// Set at the ending (or loss): the stream is removed after it.
    expires: Option<Instant>,
    removed: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemoryStore {
    /// A store of its own (tests; the gateway uses [`global`]).
    pub fn new(cap: u64) -> MemoryStore {
        MemoryStore {
            shared: Arc::new(Shared {
                streams: Mutex::new(HashMap::new()),
                cap: AtomicU64::new(cap),
                retained: AtomicU64::new(0),
                order: AtomicU64::new(0),
                last_sweep: Mutex::new(None),
            }),
        }
    }

    /// Bytes retained by every stream of this store.
    pub fn retained(&self) -> u64 {
        self.shared.retained.load(Ordering::Relaxed)
    }

    /// Streams held (live, or ended within their `ttl`).
    pub fn len(&self) -> usize {
        lock(&self.shared.streams).len()
    }

    /// Whether no stream is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Shared {
    fn add(&self, n: u64) {
        self.retained.fetch_add(n, Ordering::Relaxed);
        crate::metrics::resume::retained_bytes().add(n as i64);
    }

    fn sub(&self, n: u64) {
        self.retained.fetch_sub(n, Ordering::Relaxed);
        crate::metrics::resume::retained_bytes().sub(n as i64);
    }

    /// Removes the streams past their expiry, at most once per [`SWEEP_EVERY`].
    fn sweep(&self, now: Instant) {
        {
            let mut last = lock(&self.last_sweep);
            if last.is_some_and(|t| now.duration_since(t) < SWEEP_EVERY) {
                return;
            }
            *last = Some(now);
        }
        let mut streams = lock(&self.streams);
        streams.retain(|_, s| {
            let mut st = lock(&s.state);
            let Some(expires) = st.expires else { return true };
            if expires <= now && !st.removed {
                self.remove(s, &mut st);
            }
            // The entry stays, without records, for another `ttl`: an `open` then answers `Expired`.
            expires + s.limits.ttl > now
        });
    }

    /// Marks `s` removed and returns its bytes (the caller takes it out of the map).
    fn remove(&self, s: &Stream, st: &mut State) {
        st.removed = true;
        self.sub(st.bytes);
        st.bytes = 0;
        st.records.clear();
        s.notify.notify_waiters();
    }

    /// Past the process-wide cap: evicts the oldest records of the process until under 7/8 of it. One pass
    /// over the streams builds a heap of their oldest records; each eviction then costs `O(log streams)`.
    fn evict_global(&self) {
        let cap = self.cap.load(Ordering::Relaxed);
        let target = cap - cap / 8;
        let streams = lock(&self.streams);
        let mut heap: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::with_capacity(streams.len());
        let all: Vec<&Arc<Stream>> = streams.values().collect();
        for (i, s) in all.iter().enumerate() {
            if let Some((order, _)) = lock(&s.state).records.front() {
                heap.push(Reverse((*order, i)));
            }
        }
        while self.retained.load(Ordering::Relaxed) > target {
            let Some(Reverse((_, i))) = heap.pop() else { break };
            let mut st = lock(&all[i].state);
            if let Some((_, r)) = st.records.pop_front() {
                st.bytes -= r.size();
                self.sub(r.size());
            }
            if let Some((order, _)) = st.records.front() {
                heap.push(Reverse((*order, i)));
            }
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn create(&self, id: StreamId, meta: Meta, limits: Limits) -> Box<dyn Writer> {
        let now = Instant::now();
        self.shared.sweep(now);
        let stream = Arc::new(Stream {
            meta,
            limits,
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            readers: AtomicUsize::new(0),
        });
        lock(&self.shared.streams).insert(id, stream.clone());
        Box::new(MemoryWriter { shared: self.shared.clone(), stream, finished: false })
    }

    async fn open(&self, id: StreamId) -> Result<Opened, StoreError> {
        let now = Instant::now();
        self.shared.sweep(now);
        let streams = lock(&self.shared.streams);
        let Some(stream) = streams.get(&id).cloned() else { return Ok(Opened::Unknown) };
        {
            let mut st = lock(&stream.state);
            if st.removed || st.expires.is_some_and(|t| t <= now) {
                if !st.removed {
                    self.shared.remove(&stream, &mut st);
                }
                return Ok(Opened::Expired);
            }
        }
        drop(streams);
        let meta = stream.meta.clone();
        stream.readers.fetch_add(1, Ordering::AcqRel);
        Ok(Opened::Found(meta, Box::new(MemoryReader { stream })))
    }
}

/// The owner's handle (see [`Writer`]).
#[derive(Debug)]
struct MemoryWriter {
    shared: Arc<Shared>,
    stream: Arc<Stream>,
    finished: bool,
}

impl MemoryWriter {
    /// Ends the stream (`ended`, or lost when `None`) and starts its `ttl`.
    fn end(&mut self, ended: Option<(u64, Ending)>) {
        if self.finished {
            return;
        }
        self.finished = true;
        let mut st = lock(&self.stream.state);
        match ended {
            Some((last, how)) => st.ended = Some((last.max(st.last), how)),
            None => st.lost = true,
        }
        st.expires = Some(Instant::now() + self.stream.limits.ttl);
        drop(st);
        self.stream.notify.notify_waiters();
    }
}

impl Writer for MemoryWriter {
    fn append(&mut self, seq: u64, event: &Event) {
        if self.finished {
            return;
        }
        let record = Record {
            seq,
            event: Event { name: event.name.clone(), data: event.data.clone(), id: None, retry: event.retry },
        };
        let size = record.size();
        let order = self.shared.order.fetch_add(1, Ordering::Relaxed);
        let mut st = lock(&self.stream.state);
        if st.removed {
            return;
        }
        st.last = seq;
        st.records.push_back((order, record));
        st.bytes += size;
        let mut evicted = 0;
        while st.bytes > self.stream.limits.max_bytes {
            let Some((_, r)) = st.records.pop_front() else { break };
            st.bytes -= r.size();
            evicted += r.size();
        }
        drop(st);
        self.shared.add(size);
        if evicted > 0 {
            self.shared.sub(evicted);
        }
        if self.stream.readers.load(Ordering::Acquire) > 0 {
            self.stream.notify.notify_waiters();
        }
        if self.shared.retained.load(Ordering::Relaxed) > self.shared.cap.load(Ordering::Relaxed) {
            self.shared.evict_global();
        }
    }

    fn finish(&mut self, last: u64, how: Ending) {
        self.end(Some((last, how)));
    }

    fn readers_attached(&self) -> bool {
        self.stream.readers.load(Ordering::Acquire) > 0
    }
}

impl Drop for MemoryWriter {
    fn drop(&mut self) {
        // An owner that never finished (its task ended early): readers get `Lost`.
        self.end(None);
    }
}

/// A reader's handle (see [`Reader`]).
#[derive(Debug)]
struct MemoryReader {
    stream: Arc<Stream>,
}

impl MemoryReader {
    fn read_now(&self, after: u64, out: &mut Vec<Record>) -> Next {
        let st = lock(&self.stream.state);
        if st.removed {
            return Next::Gone;
        }
        if after >= st.last {
            return match st.ended {
                Some((last, how)) => Next::Ended { last, how },
                None if st.lost => Next::Lost,
                None => Next::Pending,
            };
        }
        let oldest = st.records.front().map_or(st.last + 1, |(_, r)| r.seq);
        if after + 1 < oldest {
            return Next::Gap { oldest };
        }
        let skip = (after + 1 - oldest) as usize;
        out.extend(st.records.iter().skip(skip).take(BATCH).map(|(_, r)| r.clone()));
        Next::Records
    }

    fn ready(&self, after: u64) -> bool {
        let st = lock(&self.stream.state);
        st.removed || st.ended.is_some() || st.lost || st.last > after
    }
}

#[async_trait]
impl Reader for MemoryReader {
    async fn read(&mut self, after: u64, out: &mut Vec<Record>) -> Result<Next, StoreError> {
        Ok(self.read_now(after, out))
    }

    async fn wait(&mut self, after: u64) -> Result<(), StoreError> {
        let notified = self.stream.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !self.ready(after) {
            notified.await;
        }
        Ok(())
    }
}

impl Drop for MemoryReader {
    fn drop(&mut self) {
        self.stream.readers.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;
