//! Timer logic on a paused tokio clock: no test sleeps for real.

use std::time::Duration;

use tokio::time::{advance, Instant};

use super::*;

const S: Duration = Duration::from_secs(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(start_paused = true)]
async fn heartbeat_fires_every_interval_and_writes_push_it_only_on_sse() {
    let start = Instant::now();
    let mut t = Timers::new(start, Some(ms(100)), None, 10 * S);
    assert_eq!(t.next(), start + ms(100));
    // Before anything is committed a write does not move the heartbeat (it commits SSE when it fires).
    t.wrote(start + ms(50));
    assert_eq!(t.next(), start + ms(100));
    t.expired().await;
    assert_eq!(Instant::now(), start + ms(100));
    assert_eq!(t.due(Instant::now()), Due::Heartbeat);
    assert_eq!(t.next(), start + ms(200));
    t.sse_committed();
    advance(ms(30)).await;
    t.wrote(Instant::now());
    assert_eq!(t.next(), start + ms(230));
    assert_eq!(t.due(Instant::now()), Due::Nothing);
}

#[tokio::test(start_paused = true)]
async fn passthrough_has_no_heartbeat() {
    let start = Instant::now();
    let mut t = Timers::new(start, Some(ms(100)), None, 10 * S);
    t.passthrough_committed();
    t.wrote(start + ms(10));
    t.upstream_read(start);
    assert_eq!(t.next(), start + 10 * S);
    advance(ms(500)).await;
    assert_eq!(t.due(Instant::now()), Due::Nothing);
}

#[tokio::test(start_paused = true)]
async fn no_deadline_means_a_day() {
    let start = Instant::now();
    let t = Timers::new(start, None, None, S);
    assert!(t.next() >= start + Duration::from_secs(86_399));
}

#[tokio::test(start_paused = true)]
async fn header_timeout_fails_and_is_cleared_by_the_head() {
    let start = Instant::now();
    let mut t = Timers::new(start, None, None, 10 * S);
    t.waiting_for_head(start, 2 * S);
    assert_eq!(t.next(), start + 2 * S);
    t.expired().await;
    match t.due(Instant::now()) {
        Due::Fail(ErrorType::UpstreamTimeout, msg) => assert!(msg.contains("header_timeout")),
        other => panic!("{other:?}"),
    }
    t.head_arrived();
    assert_eq!(t.due(Instant::now()), Due::Nothing);
}

#[tokio::test(start_paused = true)]
async fn idle_moves_with_every_read() {
    let start = Instant::now();
    let mut t = Timers::new(start, None, None, S);
    t.upstream_read(start);
    advance(ms(900)).await;
    t.upstream_read(Instant::now());
    advance(ms(900)).await;
    assert_eq!(t.due(Instant::now()), Due::Nothing);
    advance(ms(100)).await;
    assert!(matches!(t.due(Instant::now()), Due::Fail(ErrorType::UpstreamIdle, _)));
}

#[tokio::test(start_paused = true)]
async fn the_most_final_deadline_wins() {
    let start = Instant::now();
    let mut t = Timers::new(start, Some(ms(10)), Some(S), ms(10));
    t.upstream_read(start);
    t.waiting_for_head(start, ms(10));
    advance(2 * S).await;
    let now = Instant::now();
    assert!(matches!(t.due(now), Due::Fail(ErrorType::MaxDuration, _)));
    t.draining(start, ms(1));
    assert!(matches!(t.due(now), Due::Fail(ErrorType::Shutdown, _)));
    // header before idle before heartbeat
    let mut t = Timers::new(start, Some(ms(10)), None, ms(10));
    t.upstream_read(start);
    t.waiting_for_head(start, ms(10));
    assert!(matches!(t.due(now), Due::Fail(ErrorType::UpstreamTimeout, _)));
    t.head_arrived();
    assert!(matches!(t.due(now), Due::Fail(ErrorType::UpstreamIdle, _)));
}

#[tokio::test(start_paused = true)]
async fn draining_is_set_once() {
    let start = Instant::now();
    let mut t = Timers::new(start, None, None, 10 * S);
    assert!(!t.is_draining());
    t.draining(start, S);
    t.draining(start + 5 * S, S);
    assert!(t.is_draining());
    assert_eq!(t.next(), start + S);
}

#[tokio::test(start_paused = true)]
async fn expired_follows_a_moved_deadline() {
    let start = Instant::now();
    let mut t = Timers::new(start, Some(ms(100)), None, 10 * S);
    t.sse_committed();
    t.upstream_read(start);
    // The timer was armed for 100 ms; a write at 90 ms pushes it to 190 ms.
    advance(ms(90)).await;
    t.wrote(Instant::now());
    t.expired().await;
    assert_eq!(Instant::now(), start + ms(190));
}

#[tokio::test(start_paused = true)]
async fn first_event_deadline_wakes_the_timer_and_is_cleared_once_seen() {
    let start = Instant::now();
    let mut t = Timers::new(start, None, Some(10 * S), 10 * S);
    t.first_event_by(Some(start + ms(300)));
    assert_eq!(t.next(), start + ms(300));
    t.expired().await;
    assert!(t.first_event_overdue(Instant::now()));
    assert!(!t.first_event_overdue(Instant::now()), "cleared");
    assert_eq!(t.due(Instant::now()), Due::Nothing, "never reported by `due`");
    // A more final deadline wins.
    t.first_event_by(Some(start + ms(400)));
    advance(10 * S).await;
    assert!(!t.first_event_overdue(Instant::now()));
    // The header deadline, likewise.
    let mut t = Timers::new(Instant::now(), None, None, 10 * S);
    t.waiting_for_head(Instant::now(), ms(100));
    assert!(!t.head_overdue(Instant::now()));
    advance(ms(100)).await;
    assert!(t.head_overdue(Instant::now()));
}

#[tokio::test(start_paused = true)]
async fn a_deadline_moved_later_wakes_once_at_the_armed_one_an_earlier_one_rearms_at_once() {
    let start = Instant::now();
    let mut t = Timers::new(start, Some(ms(100)), None, 10 * S);
    t.sse_committed();
    t.upstream_read(start);
    // Armed for the heartbeat at 100 ms (the wait is dropped, as when another branch wins a turn).
    tokio::select! {
        biased;
        () = t.expired() => panic!("nothing is due yet"),
        () = std::future::ready(()) => {}
    }
    // Writes at 30, 60 and 90 ms push the heartbeat to 190 ms: the timer stays armed for 100 ms.
    for at in [30, 60, 90] {
        advance(ms(30)).await;
        t.wrote(Instant::now());
        tokio::select! {
            biased;
            () = t.expired() => panic!("nothing is due at {at} ms"),
            () = std::future::ready(()) => {}
        }
    }
    t.expired().await;
    assert_eq!(Instant::now(), start + ms(100), "one wake-up at the deadline it was armed for");
    assert_eq!(t.due(Instant::now()), Due::Nothing, "which finds nothing due");
    t.expired().await;
    assert_eq!(Instant::now(), start + ms(190), "then the moved deadline, on time");
    assert_eq!(t.due(Instant::now()), Due::Heartbeat);
    // Armed for the next heartbeat (290 ms); a shutdown's drain deadline at 220 ms re-arms it at once.
    tokio::select! {
        biased;
        () = t.expired() => panic!("nothing is due yet"),
        () = std::future::ready(()) => {}
    }
    t.draining(Instant::now(), ms(30));
    t.expired().await;
    assert_eq!(Instant::now(), start + ms(220), "an earlier deadline is never late");
    assert!(matches!(t.due(Instant::now()), Due::Fail(ErrorType::Shutdown, _)));
}
