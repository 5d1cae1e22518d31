//! A reader's side: [`RedisReader`] replays with `XRANGE`, follows with `XREAD BLOCK` on a connection of its
//! own, and keeps its presence in `P r:S` while it lives.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::Value;
use ssegate_frame::Event;
use tokio::sync::oneshot;

use super::{parse_ending, random_hex, store_error, unix_ms, Inner, Keys, Timing};
use crate::resume::store::{Ending, Next, Reader, Record, StoreError};

/// The most entries one read returns.
const BATCH: usize = 256;

/// One entry of `P s:S`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Record(Record),
    /// The `<last>-1` marker.
    End(u64, Ending),
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct RedisReader {
    inner: Arc<Inner>,
    keys: Keys,
    conn: ConnectionManager,
    /// The connection of `XREAD BLOCK` (opened at the first wait; dropped after an error).
    block: Option<MultiplexedConnection>,
    /// What the last `XREAD` returned, ascending: the next read serves it without a round trip.
    cached: VecDeque<Entry>,
    /// Dropping it ends the presence task (which then removes this reader from `P r:S`).
    _presence: oneshot::Sender<()>,
}

impl RedisReader {
    /// Registers the reader's presence (so that the owner sees it at its next tick) and starts renewing it.
    pub(crate) async fn open(inner: &Arc<Inner>, keys: Keys) -> Result<RedisReader, StoreError> {
        let mut conn = inner.conn()?;
        let rid = random_hex::<8>();
        present(&mut conn, &keys.readers, &rid, inner.timing).await.map_err(store_error)?;
        let (tx, rx) = oneshot::channel();
        tokio::spawn(presence(conn.clone(), keys.readers.clone(), rid, inner.timing, rx));
        Ok(RedisReader {
            inner: inner.clone(),
            keys,
            conn,
            block: None,
            cached: VecDeque::new(),
            _presence: tx,
        })
    }

    /// Serves `after + 1, …` (or the ending) from what the last `XREAD` returned, if it holds them.
    fn read_cached(&mut self, after: u64, out: &mut Vec<Record>) -> Option<Next> {
        while matches!(self.cached.front(), Some(Entry::Record(r)) if r.seq <= after) {
            self.cached.pop_front();
        }
        match self.cached.front() {
            Some(Entry::Record(r)) if r.seq == after + 1 => {
                let mut next = after + 1;
                while let Some(Entry::Record(r)) = self.cached.front() {
                    if r.seq != next || out.len() >= BATCH {
                        break;
                    }
                    next += 1;
                    if let Some(Entry::Record(r)) = self.cached.pop_front() {
                        out.push(r);
                    }
                }
                Some(Next::Records)
            }
            Some(Entry::End(last, how)) if after >= *last => Some(Next::Ended { last: *last, how: *how }),
            _ => {
                self.cached.clear();
                None
            }
        }
    }
}

#[async_trait]
impl Reader for RedisReader {
    async fn read(&mut self, after: u64, out: &mut Vec<Record>) -> Result<Next, StoreError> {
        if let Some(next) = self.read_cached(after, out) {
            return Ok(next);
        }
        let mut pipe = redis::pipe();
        pipe.cmd("XRANGE").arg(&self.keys.stream).arg(format!("({after}-0")).arg("+").arg("COUNT").arg(BATCH);
        pipe.cmd("HMGET").arg(&self.keys.meta).arg("route").arg("last").arg("how");
        pipe.cmd("EXISTS").arg(&self.keys.owner);
        let (entries, meta, owner): (Value, Vec<Option<Vec<u8>>>, bool) =
            pipe.query_async(&mut self.conn).await.map_err(store_error)?;
        let entries = parse_entries(entries)?;
        let mut next = after + 1;
        for e in entries {
            match e {
                Entry::Record(r) if r.seq == next && out.len() < BATCH => {
                    next += 1;
                    out.push(r);
                }
                Entry::Record(r) if out.is_empty() && r.seq > next => return Ok(Next::Gap { oldest: r.seq }),
                Entry::End(last, how) if out.is_empty() => return Ok(ended(after, last, how)),
                _ => break,
            }
        }
        if !out.is_empty() {
            return Ok(Next::Records);
        }
        let field = |i: usize| meta.get(i).cloned().flatten();
        if field(0).is_none() {
            return Ok(Next::Gone);
        }
        let last = field(1).and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u64>().ok());
        let how = field(2).and_then(|v| parse_ending(&v));
        Ok(match (last, how) {
            (Some(last), Some(how)) => ended(after, last, how),
            _ if owner => Next::Pending,
            _ => Next::Lost,
        })
    }

    async fn wait(&mut self, after: u64) -> Result<(), StoreError> {
        if !self.cached.is_empty() {
            return Ok(());
        }
        let conn = match &mut self.block {
            Some(c) => c,
            None => self.block.insert(self.inner.blocking_conn().await?),
        };
        let block_ms = self.inner.timing.block.as_millis().max(1) as u64;
        let reply: Result<Value, _> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(BATCH)
            .arg("BLOCK")
            .arg(block_ms)
            .arg("STREAMS")
            .arg(&self.keys.stream)
            .arg(format!("{after}-0"))
            .query_async(conn)
            .await;
        let reply = match reply {
            Ok(v) => v,
            Err(e) => {
                self.block = None;
                return Err(store_error(e));
            }
        };
        // Nil on timeout; else [[key, entries]] (RESP2) or {key: entries} (RESP3).
        let entries = match reply {
            Value::Nil => return Ok(()),
            Value::Array(mut streams) if streams.len() == 1 => match streams.pop() {
                Some(Value::Array(mut kv)) if kv.len() == 2 => kv.pop().unwrap_or(Value::Nil),
                _ => return Err(StoreError("XREAD: unexpected reply".into())),
            },
            Value::Map(mut kv) if kv.len() == 1 => kv.pop().map_or(Value::Nil, |(_, v)| v),
            _ => return Err(StoreError("XREAD: unexpected reply".into())),
        };
        self.cached.extend(parse_entries(entries)?);
        Ok(())
    }
}

/// A reader at `after` of a stream that ended at `last`: the end, or a gap if the records between were not
/// retained (trimmed, or never written while Redis was unreachable).
fn ended(after: u64, last: u64, how: Ending) -> Next {
    if after >= last {
        Next::Ended { last, how }
    } else {
        Next::Gap { oldest: last + 1 }
    }
}

/// `XRANGE` / `XREAD` entries: `[[id, [field, value, …]], …]`.
fn parse_entries(v: Value) -> Result<Vec<Entry>, StoreError> {
    let bad = |what: &str| StoreError(format!("stream entry: {what}"));
    let items = match v {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => return Err(bad("not an array")),
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Array(pair) = item else { return Err(bad("not an [id, fields] pair")) };
        let [id, fields] = <[Value; 2]>::try_from(pair).map_err(|_| bad("not an [id, fields] pair"))?;
        let id = match id {
            Value::BulkString(b) => String::from_utf8(b).map_err(|_| bad("id"))?,
            Value::SimpleString(s) => s,
            _ => return Err(bad("id")),
        };
        let (ms, sub) = id.split_once('-').ok_or_else(|| bad("id"))?;
        let seq: u64 = ms.parse().map_err(|_| bad("id"))?;
        let Value::Array(fields) = fields else { return Err(bad("fields")) };
        let mut event = Event::default();
        let mut end = None;
        for kv in fields.chunks_exact(2) {
            let (Value::BulkString(k), Value::BulkString(v)) = (&kv[0], &kv[1]) else {
                return Err(bad("field"));
            };
            match k.as_slice() {
                b"d" => event.data = Bytes::copy_from_slice(v),
                b"n" => event.name = Some(Bytes::copy_from_slice(v)),
                b"r" => event.retry = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok()),
                b"e" => end = parse_ending(v),
                _ => {}
            }
        }
        match (sub, end) {
            ("0", _) => out.push(Entry::Record(Record { seq, event })),
            ("1", Some(how)) => out.push(Entry::End(seq, how)),
            _ => return Err(bad("id")),
        }
    }
    Ok(out)
}

/// Adds (or renews) reader `rid` in `key` until `presence` from now.
async fn present(conn: &mut ConnectionManager, key: &str, rid: &str, t: Timing) -> redis::RedisResult<()> {
    let expiry = unix_ms(SystemTime::now()) + t.presence.as_millis() as u64;
    redis::pipe()
        .cmd("ZADD")
        .arg(key)
        .arg(expiry)
        .arg(rid)
        .ignore()
        .cmd("PEXPIRE")
        .arg(key)
        .arg(t.presence.as_millis() as u64)
        .ignore()
        .exec_async(conn)
        .await
}

/// Renews the presence every third of its life until `stop` (the reader dropped), then removes it.
async fn presence(
    mut conn: ConnectionManager,
    key: String,
    rid: String,
    t: Timing,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(t.presence / 3) => {
                // A failure only makes the owner see no reader until the next renewal works.
                let _ = present(&mut conn, &key, &rid, t).await;
            }
        }
    }
    let _: redis::RedisResult<()> = redis::cmd("ZREM").arg(&key).arg(&rid).exec_async(&mut conn).await;
}
