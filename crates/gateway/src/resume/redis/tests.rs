//! The Redis store against a real `redis-server` (started per test on a free port, see
//! `ssegate_tests::redis::RedisServer`), with short timings.

use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use ssegate_frame::Event;
use ssegate_tests::redis::RedisServer;

use super::*;
use crate::resume::store::{Next, Reader, Record};

/// Short enough for quick tests, long enough that a loaded machine (parallel builds) does not lose a lease
/// or time out a pipeline by accident.
const FAST: Timing = Timing {
    lease: Duration::from_millis(2000),
    tick: Duration::from_millis(100),
    block: Duration::from_millis(200),
    presence: Duration::from_millis(1500),
    response: Duration::from_millis(2000),
};

/// How long a test waits for something that takes a few ticks.
const PATIENCE: Duration = Duration::from_secs(10);

fn store(redis: &RedisServer) -> RedisStore {
    RedisStore::with_timing(&redis.url(), "t:", FAST).unwrap()
}

fn meta() -> Meta {
    let created = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
    Meta { route: "chat".into(), key_hash: Some([0xab; 32]), created }
}

fn limits(max_bytes: u64) -> Limits {
    Limits { max_bytes, ttl: Duration::from_secs(60) }
}

fn ev(data: &str) -> Event {
    Event {
        data: Bytes::from(data.to_owned()),
        id: Some(Bytes::from_static(b"upstream-id")),
        ..Event::default()
    }
}

fn id(n: u8) -> StreamId {
    StreamId([n; 16])
}

async fn open(store: &RedisStore, id: StreamId) -> Box<dyn Reader> {
    match store.open(id).await.unwrap() {
        Opened::Found(m, r) => {
            assert_eq!(m, meta());
            r
        }
        other => panic!("{other:?}"),
    }
}

/// Opens `id` once its creation has reached Redis.
async fn open_when_created(store: &RedisStore, id: StreamId) -> Box<dyn Reader> {
    until(|| async move { matches!(store.open(id).await, Ok(Opened::Found(..))) }).await;
    open(store, id).await
}

/// Polls `f` until it holds (bounded).
async fn until<F: std::future::Future<Output = bool>>(mut f: impl FnMut() -> F) {
    tokio::time::timeout(PATIENCE, async {
        while !f().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("condition not reached in time");
}

/// Reads after `after`, waiting while pending, until anything but records: what was read and that.
async fn follow(r: &mut Box<dyn Reader>, mut after: u64) -> (Vec<Record>, Next) {
    let mut got = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        loop {
            let mut out = Vec::new();
            match r.read(after, &mut out).await.unwrap() {
                Next::Records => {
                    assert_eq!(out.first().map(|r| r.seq), Some(after + 1), "contiguous after {after}");
                    for w in out.windows(2) {
                        assert_eq!(w[1].seq, w[0].seq + 1);
                    }
                    after = out.last().map_or(after, |r| r.seq);
                    got.extend(out);
                }
                Next::Pending => r.wait(after).await.unwrap(),
                other => return (got, other),
            }
        }
    })
    .await
    .expect("reader did not reach an end in time")
}

/// Reads after `after`, waiting while pending, until some records come.
async fn read_some(r: &mut Box<dyn Reader>, after: u64) -> Vec<Record> {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let mut out = Vec::new();
            match r.read(after, &mut out).await.unwrap() {
                Next::Records => return out,
                Next::Pending => r.wait(after).await.unwrap(),
                other => panic!("{other:?}"),
            }
        }
    })
    .await
    .expect("no records in time")
}

/// The `how` in a stream's meta (empty when not ended).
fn how(redis: &RedisServer, id: StreamId) -> String {
    redis.command(&["HGET", &format!("t:m:{id}"), "how"]).text()
}

fn data(records: &[Record]) -> Vec<(u64, String)> {
    records.iter().map(|r| (r.seq, String::from_utf8(r.event.data.to_vec()).unwrap())).collect()
}

#[tokio::test]
async fn appends_replay_follow_and_end_with_every_field() {
    let redis = RedisServer::start();
    let store = store(&redis);
    let mut w = store.create(id(1), meta(), limits(1 << 20));
    w.append(1, &ev("a"));
    w.append(2, &Event { name: Some(Bytes::from_static(b"delta")), retry: Some(2500), ..ev("b\nline") });
    let mut r = open_when_created(&store, id(1)).await;
    let mut head = read_some(&mut r, 0).await;
    if head.len() == 1 {
        head.extend(read_some(&mut r, 1).await);
    }
    assert_eq!(head[0], Record { seq: 1, event: Event { id: None, ..ev("a") } });
    assert_eq!(
        head[1].event,
        Event {
            name: Some(Bytes::from_static(b"delta")),
            retry: Some(2500),
            data: Bytes::from_static(b"b\nline"),
            id: None
        }
    );
    // The follower blocks in XREAD and wakes for each batch of appends.
    let mut r2 = open(&store, id(1)).await;
    let waiter = tokio::spawn(async move { follow(&mut r2, 2).await });
    for seq in 3..=300 {
        w.append(seq, &ev(&format!("e{seq}")));
        if seq % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
    w.append(301, &Event { name: Some(Bytes::from_static(b"done")), ..ev("[DONE]") });
    w.finish(301, Ending::Completed);
    let (got, end) = waiter.await.unwrap();
    assert_eq!(end, Next::Ended { last: 301, how: Ending::Completed });
    assert_eq!(data(&got).len(), 299);
    assert_eq!(data(&got)[0], (3, "e3".into()));
    assert_eq!(got.last().unwrap().event.name.as_deref(), Some(&b"done"[..]));

    // A finished stream replays from the start to its ending; keys expire at ttl; the lease is gone.
    let mut r3 = open(&store, id(1)).await;
    let (all, end) = follow(&mut r3, 0).await;
    assert_eq!((all.len(), end), (301, Next::Ended { last: 301, how: Ending::Completed }));
    let mut out = Vec::new();
    assert_eq!(r3.read(301, &mut out).await.unwrap(), Next::Ended { last: 301, how: Ending::Completed });
    assert_eq!(r3.read(5000, &mut out).await.unwrap(), Next::Ended { last: 301, how: Ending::Completed });
    let s = id(1).to_string();
    assert_eq!(redis.command(&["EXISTS", &format!("t:o:{s}")]).int(), 0, "lease released at the end");
    for key in [format!("t:s:{s}"), format!("t:m:{s}")] {
        let ttl = redis.command(&["PTTL", &key]).int();
        assert!(ttl > 50_000 && ttl <= 60_000, "{key}: pttl {ttl}");
    }
    assert_eq!(redis.command(&["HGET", &format!("t:m:{s}"), "how"]).text(), "completed");
    assert_eq!(redis.command(&["HGET", &format!("t:m:{s}"), "key"]).text(), "ab".repeat(32));
    assert_eq!(store.errors(), 0);
}

#[tokio::test]
async fn unknown_ids_and_an_ending_without_events() {
    let redis = RedisServer::start();
    let store = store(&redis);
    assert!(matches!(store.open(id(9)).await.unwrap(), Opened::Unknown));
    let mut w = store.create(id(2), Meta { key_hash: None, ..meta() }, limits(1 << 20));
    w.finish(0, Ending::Failed);
    let redis = &redis;
    until(|| async move { how(redis, id(2)) == "failed" }).await;
    let Opened::Found(m, mut r) = store.open(id(2)).await.unwrap() else { panic!("not found") };
    assert_eq!(m.key_hash, None);
    assert_eq!(follow(&mut r, 0).await, (vec![], Next::Ended { last: 0, how: Ending::Failed }));
    // Meta that is not a stream's is an error, not a stream.
    redis.command(&["HSET", &format!("t:m:{}", id(3)), "route", "x"]);
    assert!(store.open(id(3)).await.is_err());
}

#[tokio::test]
async fn max_bytes_trims_the_oldest_and_a_reader_behind_gets_a_gap() {
    let redis = RedisServer::start();
    let store = store(&redis);
    let mut w = store.create(id(4), meta(), limits(10_000));
    let hundred = "x".repeat(100);
    for seq in 1..=2000 {
        w.append(seq, &ev(&hundred)); // 100 bytes each: MAXLEN ~ 100
    }
    w.finish(2000, Ending::Completed);
    let key = format!("t:s:{}", id(4));
    let redis = &redis;
    until(|| async move { how(redis, id(4)) == "completed" }).await;
    let len = redis.command(&["XLEN", &key]).int();
    // `~` trims whole nodes (100 entries): at least the 100 asked for (+ the end marker), at most a few
    // nodes more.
    assert!((101..=400).contains(&len), "XLEN {len}");
    let mut r = open(&store, id(4)).await;
    let mut out = Vec::new();
    let Next::Gap { oldest } = r.read(0, &mut out).await.unwrap() else { panic!("no gap") };
    assert!(oldest > 1600 && oldest <= 1901, "oldest {oldest}, errors {}", store.errors());
    assert!(out.is_empty());
    let (tail, end) = follow(&mut r, oldest - 1).await;
    assert_eq!((tail.len() as u64, end), (2001 - oldest, Next::Ended { last: 2000, how: Ending::Completed }));
}

#[tokio::test]
async fn a_hole_left_by_lost_writes_is_a_gap_not_a_skip() {
    let redis = RedisServer::start();
    let store = store(&redis);
    let mut w = store.create(id(5), meta(), limits(1 << 20));
    w.append(1, &ev("a"));
    w.append(2, &ev("b"));
    // Records 3 and 4 never reach Redis (as if their batch had failed).
    w.append(5, &ev("e"));
    w.finish(5, Ending::Completed);
    let mut r = open_when_created(&store, id(5)).await;
    let (got, end) = follow(&mut r, 0).await;
    assert_eq!(data(&got), [(1, "a".into()), (2, "b".into())]);
    assert_eq!(end, Next::Gap { oldest: 5 });
}

#[tokio::test]
async fn readers_on_another_instance_count_as_attached_while_they_read() {
    let redis = RedisServer::start();
    let owner = store(&redis);
    let other = store(&redis);
    let mut w = owner.create(id(6), meta(), limits(1 << 20));
    w.append(1, &ev("a"));
    tokio::time::sleep(FAST.tick * 3).await;
    assert!(!w.readers_attached());
    let r = open_when_created(&other, id(6)).await;
    let wr = &w;
    until(|| async move { wr.readers_attached() }).await;
    // Still attached after several presence lifetimes (the reader renews it) ...
    tokio::time::sleep(FAST.presence * 3).await;
    assert!(w.readers_attached());
    // ... and not once it is gone.
    drop(r);
    until(|| async move { !wr.readers_attached() }).await;
}

#[tokio::test]
async fn an_owner_that_vanishes_is_lost_after_its_lease() {
    let redis = RedisServer::start();
    let reader_store = store(&redis);
    // The owner runs on a runtime of its own, which is then shut down: its background task stops without
    // releasing anything, like a process that was killed.
    let url = redis.url();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let owner = RedisStore::with_timing(&url, "t:", FAST).unwrap();
            let mut w = owner.create(id(7), meta(), limits(1 << 20));
            w.append(1, &ev("a"));
            tokio::time::sleep(FAST.tick * 3).await;
            std::mem::forget(w); // no Drop: nothing tells Redis
        });
    })
    .join()
    .unwrap();
    let mut r = open(&reader_store, id(7)).await;
    let (got, end) = follow(&mut r, 0).await;
    assert_eq!((data(&got), end), (vec![(1, "a".into())], Next::Lost));
    // A writer dropped without an ending releases its lease at once: lost too.
    let mut w = reader_store.create(id(8), meta(), limits(1 << 20));
    w.append(1, &ev("a"));
    let mut r = open_when_created(&reader_store, id(8)).await;
    drop(w);
    let (got, end) = follow(&mut r, 0).await;
    assert_eq!((data(&got), end), (vec![(1, "a".into())], Next::Lost));
}

#[tokio::test]
async fn redis_killed_mid_stream_costs_resume_only_and_it_reconnects() {
    let mut redis = RedisServer::start();
    let store = store(&redis);
    let mut w = store.create(id(10), meta(), limits(1 << 20));
    w.append(1, &ev("a"));
    let _ = open_when_created(&store, id(10)).await;
    redis.kill();
    // The owner goes on appending: nothing waits, every failure is counted.
    for seq in 2..=50 {
        w.append(seq, &ev("b"));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let st = &store;
    until(|| async move { st.errors() > 0 }).await;
    assert!(store.open(id(10)).await.is_err(), "a reader gets an error while Redis is down");
    redis.restart();
    // Once Redis is back, writes land again (an emptied Redis: the stream's meta is gone, new streams work).
    w.append(51, &ev("c"));
    let mut w2 = store.create(id(11), meta(), limits(1 << 20));
    w2.append(1, &ev("new"));
    w2.finish(1, Ending::Completed);
    let mut r = open_when_created(&store, id(11)).await;
    let (got, end) = follow(&mut r, 0).await;
    assert_eq!((data(&got), end), (vec![(1, "new".into())], Next::Ended { last: 1, how: Ending::Completed }));
}

#[tokio::test]
async fn a_hung_redis_never_blocks_the_owner_and_overflow_is_counted() {
    let redis = RedisServer::start();
    let store = store(&redis);
    let mut w = store.create(id(12), meta(), limits(1 << 30));
    w.append(1, &ev("a"));
    let _ = open_when_created(&store, id(12)).await;
    redis.pause();
    // Far more appends than the queue holds, while the background writer waits on a frozen server.
    let n = QUEUE as u64 * 3;
    for seq in 2..=n {
        w.append(seq, &ev("b"));
    }
    let dropped = store.errors();
    assert!(dropped >= n - 1 - QUEUE as u64 - 1024, "dropped {dropped} of {n}");
    redis.unpause();
    w.finish(n, Ending::Completed);
    let rs = &redis;
    until(|| async move { how(rs, id(12)) == "completed" }).await;
    let mut r = open(&store, id(12)).await;
    let (got, end) = follow(&mut r, 0).await;
    assert!(!got.is_empty() && got.len() < n as usize, "{}", got.len());
    assert!(matches!(end, Next::Gap { .. }), "{end:?}");
}

#[test]
fn one_store_per_url_and_prefix_across_reloads() {
    use crate::config::Redis;
    use crate::security::Secret;
    let cfg = |url: &str, prefix: &str| Redis {
        url: Secret::new(url.to_owned()),
        shown: url.to_owned(),
        key_prefix: prefix.to_owned(),
        tls: false,
    };
    let a = shared(&cfg("redis://127.0.0.1:1/0", "a:")).unwrap();
    assert!(Arc::ptr_eq(&a, &shared(&cfg("redis://127.0.0.1:1/0", "a:")).unwrap()));
    let b = shared(&cfg("redis://127.0.0.1:1/0", "b:")).unwrap();
    assert!(!Arc::ptr_eq(&a, &b));
    let c = shared(&cfg("redis://127.0.0.1:1/1", "b:")).unwrap();
    assert!(!Arc::ptr_eq(&b, &c));
    assert_eq!(c.keys(id(1)).stream, format!("b:s:{}", id(1)));
}

#[test]
fn maxlen_follows_the_average_event_size() {
    assert_eq!(maxlen(10_000, 0, 0), 10_000, "no events yet: 1 byte each");
    assert_eq!(maxlen(10_000, 10, 1000), 100);
    assert_eq!(maxlen(10_000, 10, 0), 10_000, "empty events count as 1 byte");
    assert_eq!(maxlen(100, 1, 1_000_000), 1, "at least one event");
}

#[tokio::test]
async fn a_resume_on_the_owning_instance_right_after_the_start_finds_the_stream() {
    // Whether the resume overtakes the creation depends on which of the two is sent first on the shared
    // connection (here the creation mostly wins); e2e `rediss_verifies_the_server_certificate` (a slow TLS
    // connect) often hits that window: without the wait it failed 1 run in 2.
    let redis = RedisServer::start();
    let store = store(&redis);
    // The first stream of a store: its connection is not even open yet.
    let mut w = store.create(id(30), meta(), limits(1 << 20));
    w.append(1, &ev("a"));
    let mut r = open(&store, id(30)).await;
    assert_eq!(data(&read_some(&mut r, 0).await), [(1, "a".into())]);
    // Another instance has no such shortcut, and an unknown id does not wait.
    assert!(matches!(store.open(id(31)).await.unwrap(), Opened::Unknown));
}

#[tokio::test]
async fn a_stream_started_while_redis_is_down_becomes_resumable_when_it_is_back() {
    let mut redis = RedisServer::start();
    redis.kill();
    let store = store(&redis);
    let mut w = store.create(id(32), meta(), limits(1 << 20));
    w.append(1, &ev("lost"));
    let st = &store;
    until(|| async move { st.errors() > 0 }).await;
    redis.restart();
    let other = self::store(&redis);
    let rs = &redis;
    // The owner's next tick writes the meta and the lease.
    until(|| async move { rs.command(&["HGET", &format!("t:m:{}", id(32)), "route"]).text() == "chat" })
        .await;
    w.append(2, &ev("kept"));
    w.finish(2, Ending::Completed);
    let mut r = open_when_created(&other, id(32)).await;
    let (got, end) = follow(&mut r, 1).await;
    assert_eq!(
        (data(&got), end),
        (vec![(2, "kept".into())], Next::Ended { last: 2, how: Ending::Completed })
    );
    let mut r = open(&other, id(32)).await;
    let mut out = Vec::new();
    assert_eq!(r.read(0, &mut out).await.unwrap(), Next::Gap { oldest: 2 }, "what Redis never got is a gap");
}

#[tokio::test]
async fn keys_live_while_the_owner_streams_and_expire_ttl_after_the_end() {
    let redis = RedisServer::start();
    let store = store(&redis);
    let short = Limits { max_bytes: 1 << 20, ttl: Duration::from_millis(400) };
    let mut w = store.create(id(40), meta(), short);
    w.append(1, &ev("a"));
    let mut r = open_when_created(&store, id(40)).await;
    // Several ttls without a write: the owner's ticks keep the keys.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(matches!(store.open(id(40)).await.unwrap(), Opened::Found(..)), "a live stream never expires");
    w.finish(1, Ending::Completed);
    let (rs, m) = (&redis, format!("t:m:{}", id(40)));
    let m = &m;
    until(|| async move { rs.command(&["EXISTS", m]).int() == 0 }).await;
    assert!(matches!(store.open(id(40)).await.unwrap(), Opened::Unknown));
    let mut out = Vec::new();
    assert_eq!(r.read(0, &mut out).await.unwrap(), Next::Gone, "a reader still holding it sees it gone");
    assert_eq!(redis.keys(), [format!("t:r:{}", id(40))], "only the presence of the reader still holding it");
    drop(r);
    until(|| async move { rs.keys().is_empty() }).await;
}

#[tokio::test]
async fn settle_returns_once_the_ending_is_in_redis_and_gives_up_at_its_limit() {
    let redis = RedisServer::start();
    let store = store(&redis);
    let mut w = store.create(id(20), meta(), limits(1 << 20));
    for seq in 1..=500 {
        w.append(seq, &ev("x"));
    }
    // No ending yet: nothing to settle, the wait ends at its limit.
    assert!(!w.settle(Duration::from_millis(50)).await);
    w.finish(500, Ending::Completed);
    assert!(w.settle(PATIENCE).await, "the ending never reached Redis");
    // Settled means written: no waiting on the background task.
    assert_eq!(how(&redis, id(20)), "completed");
    let mut r = open(&store, id(20)).await;
    let (got, end) = follow(&mut r, 0).await;
    assert_eq!(got.len(), 500);
    assert_eq!(end, Next::Ended { last: 500, how: Ending::Completed });

    // Redis frozen: the ending cannot be written, and settle gives up at its limit.
    let mut w = store.create(id(21), meta(), limits(1 << 20));
    w.append(1, &ev("a"));
    let _ = open_when_created(&store, id(21)).await;
    redis.pause();
    w.finish(1, Ending::Completed);
    assert!(!w.settle(Duration::from_millis(200)).await);
    redis.unpause();
    assert!(w.settle(PATIENCE).await);
    assert_eq!(how(&redis, id(21)), "completed");
}
