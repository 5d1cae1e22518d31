//! The owner's side: [`RedisWriter`] (never waits) and the store's background task that turns its queued
//! operations into pipelines, renews leases and counts readers.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use redis::aio::ConnectionManager;
use redis::{Pipeline, Value};
use ssegate_frame::Event;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, Notify};

use super::{ending_str, hex, lock, maxlen, unix_ms, Inner, Keys, Local, Timing, QUEUE};
use crate::resume::store::{Ending, Limits, Meta, StreamId, Writer};

/// The most operations one pipeline carries.
const BATCH: usize = 1024;

/// What a [`RedisWriter`] asks the background task to do.
#[derive(Debug)]
pub(crate) enum Op {
    Create(Box<Created>),
    Append {
        id: StreamId,
        seq: u64,
        event: Event,
    },
    /// The writer finished or was dropped: see [`Shared::end`].
    End {
        id: StreamId,
    },
}

#[derive(Debug)]
pub(crate) struct Created {
    id: StreamId,
    keys: Keys,
    meta: Meta,
    limits: Limits,
    shared: Arc<Shared>,
}

/// What the writer and the background task share about one stream.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The store's failure count (see [`super::RedisStore::errors`]).
    errors: Arc<AtomicU64>,
    /// Readers seen on the last tick (any instance).
    readers: AtomicBool,
    /// A failure was logged for this stream (once per stream).
    logged: AtomicBool,
    /// Set by `finish` (`Some`) or by dropping the writer without it (`None`); read by the task at the
    /// `End` operation, or at a tick if that operation was lost to a full queue.
    end: Mutex<Option<Option<(u64, Ending)>>>,
    /// The `End` operation is (being) queued: the task settles the stream when it gets there, after the
    /// appends queued before it (a tick must not settle it first).
    end_queued: AtomicBool,
    /// The meta and the lease are in Redis (a reader elsewhere can open the stream).
    created: AtomicBool,
    /// Woken when `created` is set.
    created_notify: Notify,
    /// The stream's ending went out to Redis (or failed to): nothing of it is queued any more.
    settled: Flag,
}

/// A flag that is set once and can be waited for.
#[derive(Debug, Default)]
pub(crate) struct Flag {
    set: AtomicBool,
    notify: Notify,
}

impl Flag {
    fn set(&self) {
        if !self.set.swap(true, Ordering::Release) {
            self.notify.notify_waiters();
        }
    }

    /// Waits (at most `limit`) until the flag is set; whether it is.
    async fn wait(&self, limit: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.notify.notified();
                if self.set.load(Ordering::Acquire) {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }
}

impl Shared {
    fn failed(&self, id: StreamId, why: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        crate::metrics::resume::store_error("redis");
        if !self.logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(stream = %id, error = why, "resume store (redis): writes failed; the stream goes on, its resume may have gaps");
        }
    }

    /// The writer ended but its `End` operation never reached the queue.
    fn lost_end(&self) -> bool {
        self.end().is_some() && !self.end_queued.load(Ordering::Relaxed)
    }

    fn end(&self) -> Option<Option<(u64, Ending)>> {
        *self.end.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_created(&self) {
        if !self.created.swap(true, Ordering::Relaxed) {
            self.created_notify.notify_waiters();
        }
    }

    /// Waits (at most `limit`) until the stream's creation has reached Redis; whether it has.
    pub(crate) async fn wait_created(&self, limit: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.created_notify.notified();
                if self.created.load(Ordering::Relaxed) {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }
}

/// The owner's handle (see [`Writer`]).
#[derive(Debug)]
pub(crate) struct RedisWriter {
    id: StreamId,
    queue: Option<mpsc::Sender<Op>>,
    shared: Arc<Shared>,
    finished: bool,
}

impl RedisWriter {
    pub(crate) fn create(inner: &Arc<Inner>, id: StreamId, keys: Keys, meta: Meta, limits: Limits) -> Self {
        let shared = Arc::new(Shared {
            errors: inner.errors.clone(),
            readers: AtomicBool::new(false),
            logged: AtomicBool::new(false),
            end: Mutex::new(None),
            end_queued: AtomicBool::new(false),
            created: AtomicBool::new(false),
            created_notify: Notify::new(),
            settled: Flag::default(),
        });
        let queue = match start(inner) {
            Ok(q) => {
                // Until the task settles it: a resume on this instance that comes before the creation
                // reached Redis waits for it (see `RedisStore::open`).
                lock(&inner.local).insert(id, shared.clone());
                Some(q)
            }
            Err(why) => {
                shared.failed(id, &why);
                shared.settled.set();
                None
            }
        };
        let mut w = RedisWriter { id, queue, shared: shared.clone(), finished: false };
        if !w.send(Op::Create(Box::new(Created { id, keys, meta, limits, shared }))) {
            // The task will never know it (nor settle it): not resumable.
            lock(&inner.local).remove(&id);
            w.shared.settled.set();
        }
        w
    }

    /// Queues `op`; whether it was.
    fn send(&mut self, op: Op) -> bool {
        let Some(q) = &self.queue else { return false };
        match q.try_send(op) {
            Ok(()) => return true,
            Err(TrySendError::Full(_)) => self.shared.failed(self.id, "the write queue is full (Redis slow)"),
            Err(TrySendError::Closed(_)) => self.shared.failed(self.id, "the background writer stopped"),
        }
        false
    }

    fn close(&mut self, end: Option<(u64, Ending)>) {
        if self.finished {
            return;
        }
        self.finished = true;
        *self.shared.end.lock().unwrap_or_else(PoisonError::into_inner) = Some(end);
        // Marked before sending: a tick that sees the ending must not settle it ahead of the queue.
        self.shared.end_queued.store(true, Ordering::Relaxed);
        let id = self.id;
        if !self.send(Op::End { id }) {
            self.shared.end_queued.store(false, Ordering::Relaxed);
        }
    }
}

impl Writer for RedisWriter {
    fn append(&mut self, seq: u64, event: &Event) {
        if !self.finished {
            let id = self.id;
            self.send(Op::Append { id, seq, event: event.clone() });
        }
    }

    fn finish(&mut self, last: u64, how: Ending) {
        self.close(Some((last, how)));
    }

    fn readers_attached(&self) -> bool {
        self.shared.readers.load(Ordering::Relaxed)
    }

    /// Waits for the background task to have written the stream's ending (after every append queued
    /// before it: the queue is in order), or for its pipeline to have failed. Before `finish` there is no
    /// ending to wait for: it returns `false` at `limit`.
    fn settle(&self, limit: Duration) -> Pin<Box<dyn Future<Output = bool> + Send + '_>> {
        Box::pin(self.shared.settled.wait(limit))
    }
}

impl Drop for RedisWriter {
    fn drop(&mut self) {
        self.close(None);
    }
}

/// The store's queue, starting its background task on first use (inside the caller's Tokio runtime).
fn start(inner: &Arc<Inner>) -> Result<mpsc::Sender<Op>, String> {
    if let Some(q) = inner.queue.get() {
        return Ok(q.clone());
    }
    let conn = inner.conn().map_err(|e| e.0)?;
    let handle = tokio::runtime::Handle::try_current().map_err(|e| e.to_string())?;
    let q = inner.queue.get_or_init(|| {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = Task {
            conn,
            local: inner.local.clone(),
            errors: inner.errors.clone(),
            timing: inner.timing,
            instance: inner.instance.clone(),
            streams: HashMap::new(),
        };
        handle.spawn(task.run(rx));
        tx
    });
    Ok(q.clone())
}

/// One stream as the background task knows it.
#[derive(Debug)]
struct Stream {
    keys: Keys,
    meta: Meta,
    limits: Limits,
    shared: Arc<Shared>,
    /// Records appended and their bytes (for `MAXLEN`).
    records: u64,
    bytes: u64,
}

struct Task {
    conn: ConnectionManager,
    /// The store's streams being created or written on this instance (see [`RedisWriter::create`]).
    local: Local,
    errors: Arc<AtomicU64>,
    timing: Timing,
    instance: String,
    streams: HashMap<StreamId, Stream>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Op>) {
        let mut tick = tokio::time::interval(self.timing.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ops = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                n = rx.recv_many(&mut ops, BATCH) => {
                    if n == 0 {
                        // Every writer and the store are gone: settle what is left and stop.
                        self.renew(true).await;
                        return;
                    }
                    self.flush(&mut ops).await;
                }
                _ = tick.tick() => self.renew(false).await,
            }
        }
    }

    /// Writes a batch of operations in one pipeline.
    async fn flush(&mut self, ops: &mut Vec<Op>) {
        let mut pipe = redis::pipe();
        // The streams of this batch (to refresh their ttl; to blame if it fails).
        let mut touched: Vec<StreamId> = Vec::new();
        let mut involved: Vec<(StreamId, Arc<Shared>)> = Vec::new();
        let mut created: Vec<Arc<Shared>> = Vec::new();
        let mut settled: Vec<StreamId> = Vec::new();
        let mut ended: Vec<Arc<Shared>> = Vec::new();
        for op in ops.drain(..) {
            match op {
                Op::Create(c) => {
                    let c = *c;
                    let s = Stream {
                        keys: c.keys,
                        meta: c.meta,
                        limits: c.limits,
                        shared: c.shared,
                        records: 0,
                        bytes: 0,
                    };
                    self.lease(&mut pipe, &s);
                    meta_commands(&mut pipe, &s);
                    involved.push((c.id, s.shared.clone()));
                    created.push(s.shared.clone());
                    self.streams.insert(c.id, s);
                    touched.push(c.id);
                }
                Op::Append { id, seq, event } => {
                    let Some(s) = self.streams.get_mut(&id) else { continue };
                    s.records += 1;
                    s.bytes += (event.data.len() + event.name.as_ref().map_or(0, |n| n.len())) as u64;
                    pipe.cmd("XADD")
                        .arg(&s.keys.stream)
                        .arg("MAXLEN")
                        .arg("~")
                        .arg(maxlen(s.limits.max_bytes, s.records, s.bytes))
                        .arg(format!("{seq}-0"));
                    if let Some(name) = &event.name {
                        pipe.arg("n").arg(name.as_ref());
                    }
                    if let Some(retry) = event.retry {
                        pipe.arg("r").arg(retry);
                    }
                    pipe.arg("d").arg(event.data.as_ref());
                    if touched.last() != Some(&id) {
                        touched.push(id);
                        involved.push((id, s.shared.clone()));
                    }
                }
                Op::End { id } => {
                    if let Some(s) = self.streams.remove(&id) {
                        end_commands(&mut pipe, &s);
                        ended.push(s.shared.clone());
                        involved.push((id, s.shared));
                        settled.push(id);
                    }
                }
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for id in &touched {
            if let Some(s) = self.streams.get(id) {
                pipe.cmd("PEXPIRE").arg(&s.keys.stream).arg(ms(s.limits.ttl)).ignore();
            }
        }
        if pipe.cmd_iter().next().is_some() {
            match self.query::<()>(&pipe).await {
                Ok(()) => created.iter().for_each(|s| s.set_created()),
                Err(why) => {
                    involved.sort_unstable_by_key(|(id, _)| *id);
                    involved.dedup_by_key(|(id, _)| *id);
                    for (id, shared) in &involved {
                        shared.failed(*id, &why);
                    }
                }
            }
        }
        self.forget(&settled);
        ended.iter().for_each(|s| s.settled.set());
    }

    /// Runs `pipe`, once more if the connection had dropped (the connection manager reconnects: the first
    /// batch after Redis came back would otherwise be lost). A command that had been executed before the
    /// drop fails the second time (`XADD` of an id already there) without changing anything.
    async fn query<T: redis::FromRedisValue>(&mut self, pipe: &Pipeline) -> Result<T, String> {
        match pipe.query_async(&mut self.conn).await {
            Ok(v) => Ok(v),
            Err(e) if e.is_connection_dropped() || (e.is_io_error() && !e.is_timeout()) => {
                pipe.query_async(&mut self.conn).await.map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// The owner's lease of `s`, renewed.
    fn lease(&self, pipe: &mut Pipeline, s: &Stream) {
        pipe.cmd("SET").arg(&s.keys.owner).arg(&self.instance).arg("PX").arg(ms(self.timing.lease)).ignore();
    }

    /// Streams settled: a resume on this instance no longer waits for them.
    fn forget(&self, ids: &[StreamId]) {
        if !ids.is_empty() {
            let mut local = lock(&self.local);
            for id in ids {
                local.remove(id);
            }
        }
    }

    /// Every tick: settles streams whose `End` operation was lost to a full queue, writes the meta of streams
    /// whose creation failed (Redis was down), renews the others' leases and ttls and counts their readers.
    /// `all`: settle every stream (the task stops).
    async fn renew(&mut self, all: bool) {
        let mut pipe = redis::pipe();
        let ended: Vec<StreamId> =
            self.streams.iter().filter(|(_, s)| all || s.shared.lost_end()).map(|(id, _)| *id).collect();
        let mut settled = Vec::with_capacity(ended.len());
        for id in &ended {
            if let Some(s) = self.streams.remove(id) {
                end_commands(&mut pipe, &s);
                settled.push(s.shared);
            }
        }
        let now = unix_ms(SystemTime::now());
        let order: Vec<StreamId> = self.streams.keys().copied().collect();
        let mut created = Vec::new();
        for id in &order {
            let s = &self.streams[id];
            if !s.shared.created.load(Ordering::Relaxed) {
                meta_commands(&mut pipe, s);
                created.push(s.shared.clone());
            }
            self.lease(&mut pipe, s);
            let ttl = ms(s.limits.ttl);
            pipe.cmd("PEXPIRE").arg(&s.keys.stream).arg(ttl).ignore();
            pipe.cmd("PEXPIRE").arg(&s.keys.meta).arg(ttl).ignore();
            pipe.cmd("ZREMRANGEBYSCORE").arg(&s.keys.readers).arg("-inf").arg(now).ignore();
            pipe.cmd("ZCARD").arg(&s.keys.readers);
        }
        if pipe.cmd_iter().next().is_some() {
            match self.query::<Vec<Value>>(&pipe).await {
                Ok(counts) => {
                    created.iter().for_each(|s| s.set_created());
                    for (id, n) in order.iter().zip(counts) {
                        if let Some(s) = self.streams.get(id) {
                            s.shared.readers.store(matches!(n, Value::Int(n) if n > 0), Ordering::Relaxed);
                        }
                    }
                }
                Err(why) => {
                    for id in &order {
                        if let Some(s) = self.streams.get(id) {
                            s.shared.failed(*id, &why);
                        }
                    }
                    if order.is_empty() {
                        // Only endings in this pipeline: one failure.
                        self.errors.fetch_add(1, Ordering::Relaxed);
                        crate::metrics::resume::store_error("redis");
                    }
                }
            }
        }
        self.forget(&ended);
        settled.iter().for_each(|s| s.settled.set());
    }
}

/// The meta hash of `s` (route, created, key hash), expiring at its ttl.
fn meta_commands(pipe: &mut Pipeline, s: &Stream) {
    pipe.cmd("HSET")
        .arg(&s.keys.meta)
        .arg("route")
        .arg(&s.meta.route)
        .arg("created")
        .arg(unix_ms(s.meta.created));
    if let Some(h) = s.meta.key_hash {
        pipe.arg("key").arg(hex(&h));
    }
    pipe.ignore();
    pipe.cmd("PEXPIRE").arg(&s.keys.meta).arg(ms(s.limits.ttl)).ignore();
}

/// The ending of `s`: the `<last>-1` marker and `last`/`how` in the meta (a finished stream), or only the
/// lease removed (a writer dropped without an ending: readers see the owner lost); every key then expires
/// `ttl` from now.
fn end_commands(pipe: &mut Pipeline, s: &Stream) {
    if !s.shared.created.load(Ordering::Relaxed) {
        meta_commands(pipe, s);
    }
    if let Some((last, how)) = s.shared.end().flatten() {
        pipe.cmd("XADD").arg(&s.keys.stream).arg(format!("{last}-1")).arg("e").arg(ending_str(how)).ignore();
        pipe.cmd("HSET").arg(&s.keys.meta).arg("last").arg(last).arg("how").arg(ending_str(how)).ignore();
    }
    pipe.cmd("DEL").arg(&s.keys.owner).ignore();
    let ttl = ms(s.limits.ttl);
    for key in [&s.keys.stream, &s.keys.meta] {
        pipe.cmd("PEXPIRE").arg(key).arg(ttl).ignore();
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX).max(1)
}
