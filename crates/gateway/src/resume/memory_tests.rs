use std::time::{Duration, SystemTime};

use bytes::Bytes;
use ssegate_frame::Event;

use super::*;

fn meta() -> Meta {
    Meta { route: "r".into(), key_hash: None, created: SystemTime::now() }
}

fn limits(max_bytes: u64) -> Limits {
    Limits { max_bytes, ttl: Duration::from_secs(60) }
}

fn ev(data: &str) -> Event {
    Event { data: Bytes::from(data.to_owned()), id: Some(Bytes::from_static(b"up")), ..Event::default() }
}

async fn open(store: &MemoryStore, id: StreamId) -> Box<dyn Reader> {
    match store.open(id).await.unwrap() {
        Opened::Found(m, r) => {
            assert_eq!(m.route, "r");
            r
        }
        other => panic!("{other:?}"),
    }
}

async fn read(r: &mut Box<dyn Reader>, after: u64) -> (Next, Vec<(u64, String)>) {
    let mut out = Vec::new();
    let next = r.read(after, &mut out).await.unwrap();
    let got = out.into_iter().map(|r| (r.seq, String::from_utf8(r.event.data.to_vec()).unwrap())).collect();
    (next, got)
}

fn id(n: u8) -> StreamId {
    StreamId([n; 16])
}

#[tokio::test]
async fn replays_after_a_seq_follows_and_ends() {
    let store = MemoryStore::new(1 << 20);
    let mut w = store.create(id(1), meta(), limits(1 << 20));
    w.append(1, &ev("a"));
    w.append(2, &ev("b"));
    let mut r = open(&store, id(1)).await;
    assert!(w.readers_attached());
    assert_eq!(read(&mut r, 0).await, (Next::Records, vec![(1, "a".into()), (2, "b".into())]));
    assert_eq!(read(&mut r, 1).await, (Next::Records, vec![(2, "b".into())]));
    assert_eq!(read(&mut r, 2).await, (Next::Pending, vec![]));
    // A waiting reader wakes on the next append.
    let waiter = tokio::spawn(async move {
        r.wait(2).await.unwrap();
        r
    });
    tokio::task::yield_now().await;
    w.append(3, &ev("c"));
    let mut r = tokio::time::timeout(Duration::from_secs(5), waiter).await.unwrap().unwrap();
    let (next, got) = read(&mut r, 2).await;
    assert_eq!((next, got), (Next::Records, vec![(3, "c".into())]));
    // Ids are not stored: readers apply their own.
    let mut out = Vec::new();
    r.read(0, &mut out).await.unwrap();
    assert!(out.iter().all(|r| r.event.id.is_none()));
    w.finish(3, Ending::Completed);
    assert_eq!(read(&mut r, 3).await, (Next::Ended { last: 3, how: Ending::Completed }, vec![]));
    // wait() returns at once on an ended stream.
    tokio::time::timeout(Duration::from_secs(5), r.wait(3)).await.unwrap().unwrap();
    drop(r);
    assert!(!w.readers_attached());
}

#[tokio::test]
async fn fan_out_wakes_every_reader() {
    let store = MemoryStore::new(1 << 20);
    let mut w = store.create(id(2), meta(), limits(1 << 20));
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let mut r = open(&store, id(2)).await;
        tasks.push(tokio::spawn(async move {
            let mut after = 0;
            let mut got = Vec::new();
            loop {
                let mut out = Vec::new();
                match r.read(after, &mut out).await.unwrap() {
                    Next::Records => {
                        after = out.last().unwrap().seq;
                        got.extend(out.into_iter().map(|r| r.seq));
                    }
                    Next::Pending => r.wait(after).await.unwrap(),
                    Next::Ended { .. } => return got,
                    other => panic!("{other:?}"),
                }
            }
        }));
    }
    for seq in 1..=1000 {
        w.append(seq, &ev("x"));
        if seq % 100 == 0 {
            tokio::task::yield_now().await;
        }
    }
    w.finish(1000, Ending::Completed);
    for t in tasks {
        let got = tokio::time::timeout(Duration::from_secs(10), t).await.unwrap().unwrap();
        assert_eq!(got, (1..=1000).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn max_bytes_evicts_oldest_and_readers_behind_get_a_gap() {
    let store = MemoryStore::new(1 << 20);
    let mut w = store.create(id(3), meta(), limits(10));
    for seq in 1..=5 {
        w.append(seq, &ev("abcd")); // 4 bytes each: the window holds 2
    }
    assert_eq!(store.retained(), 8);
    let mut r = open(&store, id(3)).await;
    assert_eq!(read(&mut r, 0).await, (Next::Gap { oldest: 4 }, vec![]));
    assert_eq!(read(&mut r, 2).await, (Next::Gap { oldest: 4 }, vec![]));
    assert_eq!(read(&mut r, 3).await, (Next::Records, vec![(4, "abcd".into()), (5, "abcd".into())]));
    // An event larger than the window is not retained at all.
    w.append(6, &ev("0123456789abc"));
    assert_eq!(read(&mut r, 5).await, (Next::Gap { oldest: 7 }, vec![]));
    assert_eq!(store.retained(), 0);
}

#[tokio::test]
async fn the_process_cap_evicts_the_oldest_records_of_any_stream() {
    let store = MemoryStore::new(80);
    let mut a = store.create(id(4), meta(), limits(1000));
    let mut b = store.create(id(5), meta(), limits(1000));
    for seq in 1..=5 {
        a.append(seq, &ev("0123456789")); // 50 bytes in a
    }
    for seq in 1..=4 {
        b.append(seq, &ev("0123456789")); // 90 > 80: evicted down to <= 70, a's oldest first
    }
    assert!(store.retained() <= 80, "{}", store.retained());
    let mut ra = open(&store, id(4)).await;
    let mut rb = open(&store, id(5)).await;
    assert_eq!(read(&mut ra, 0).await.0, Next::Gap { oldest: 3 });
    assert_eq!(read(&mut rb, 0).await.0, Next::Records, "b's records are newer");
}

#[tokio::test]
async fn an_owner_dropped_without_an_ending_is_lost() {
    let store = MemoryStore::new(1 << 20);
    let mut w = store.create(id(6), meta(), limits(1 << 20));
    w.append(1, &ev("a"));
    let mut r = open(&store, id(6)).await;
    drop(w);
    assert_eq!(read(&mut r, 0).await, (Next::Records, vec![(1, "a".into())]));
    assert_eq!(read(&mut r, 1).await, (Next::Lost, vec![]));
}

#[tokio::test(start_paused = true)]
async fn streams_expire_ttl_after_their_ending() {
    let store = MemoryStore::new(1 << 20);
    let mut w = store.create(id(7), meta(), limits(1 << 20));
    w.append(1, &ev("a"));
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert!(matches!(store.open(id(7)).await.unwrap(), Opened::Found(..)), "a live stream never expires");
    w.finish(1, Ending::Failed);
    tokio::time::advance(Duration::from_secs(59)).await;
    let mut r = open(&store, id(7)).await;
    assert_eq!(read(&mut r, 1).await.0, Next::Ended { last: 1, how: Ending::Failed });
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(matches!(store.open(id(7)).await.unwrap(), Opened::Expired));
    assert_eq!(read(&mut r, 0).await.0, Next::Gone, "a reader still holding it sees it gone");
    assert_eq!(store.retained(), 0);
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(
        matches!(store.open(id(7)).await.unwrap(), Opened::Unknown),
        "the tombstone goes after another ttl"
    );
    assert!(matches!(store.open(id(8)).await.unwrap(), Opened::Unknown));
}

#[tokio::test(start_paused = true)]
async fn the_sweep_removes_expired_streams_on_create() {
    let store = MemoryStore::new(1 << 20);
    for n in 0..10 {
        let mut w = store.create(id(n), meta(), limits(1 << 20));
        w.append(1, &ev("abc"));
        w.finish(1, Ending::Completed);
    }
    assert_eq!((store.len(), store.retained()), (10, 30));
    tokio::time::advance(Duration::from_secs(61)).await;
    let _w = store.create(id(100), meta(), limits(1 << 20));
    assert_eq!((store.len(), store.retained()), (11, 0), "records freed, tombstones kept");
    assert!(matches!(store.open(id(3)).await.unwrap(), Opened::Expired));
    tokio::time::advance(Duration::from_secs(61)).await;
    let _w = store.create(id(101), meta(), limits(1 << 20));
    assert_eq!(store.len(), 2);
}

#[tokio::test]
async fn the_process_cap_evicts_in_global_append_order_across_interleaved_streams() {
    let store = MemoryStore::new(100);
    let mut ws: Vec<_> = (0..3).map(|n| store.create(id(20 + n), meta(), limits(1000))).collect();
    // Appends a1 b1 c1 a2 b2 c2 ... of 10 bytes each: the 11th (110 > 100) evicts down to <= 87, i.e. the
    // three oldest of the process: a1 b1 c1.
    for k in 0..11u64 {
        ws[(k % 3) as usize].append(k / 3 + 1, &ev("0123456789"));
    }
    assert_eq!(store.retained(), 80, "11 appended, 3 evicted");
    for n in 0..3 {
        let mut r = open(&store, id(20 + n)).await;
        assert_eq!(read(&mut r, 0).await.0, Next::Gap { oldest: 2 }, "stream {n}");
    }
}
