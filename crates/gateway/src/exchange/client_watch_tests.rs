//! The watch over a real HTTP/1 session on a loopback TCP connection: turns in which nothing happened skip
//! the probe, and a client that closes or sends bytes is noticed at once however many turns were skipped,
//! also when the task's waker changed between turns.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use pingora::protocols::l4::stream::Stream;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use super::super::counting_waker::{counting, Count};
use super::*;

/// A session whose request head was read, and the client's end of its connection.
async fn session() -> (ServerSession, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    let (server, _) = listener.accept().await.unwrap();
    client.write_all(b"GET /s HTTP/1.1\r\nhost: t\r\n\r\n").await.unwrap();
    let mut session = ServerSession::new_http1(Box::new(Stream::from(server)));
    assert!(session.read_request().await.unwrap());
    (session, client)
}

/// `turns` turns of a `select!` in which another branch is ready: the watch is polled, then dropped.
async fn quiet_turns(watch: &mut ClientWatch, session: &mut ServerSession, turns: usize) {
    for _ in 0..turns {
        tokio::select! {
            biased;
            () = watch.gone(session) => panic!("the client is still there"),
            () = std::future::ready(()) => {}
        }
    }
}

/// Lets the runtime run its I/O driver until `count` was woken (at most 5 s).
async fn until_woken(count: &Count) {
    for _ in 0..500 {
        if count.get() > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the watch's waker was never woken");
}

#[tokio::test]
async fn a_client_that_closes_is_noticed_after_skipped_turns() {
    let (mut session, client) = session().await;
    let mut watch = ClientWatch::new();
    quiet_turns(&mut watch, &mut session, 1).await;
    assert!(!watch.due.due.load(Ordering::SeqCst), "the first turn probed: the next ones are not due");
    tokio::time::sleep(Duration::from_millis(20)).await;
    quiet_turns(&mut watch, &mut session, 50).await;
    assert!(!watch.due.due.load(Ordering::SeqCst), "nothing happened on the socket: still not due");
    drop(client);
    tokio::time::timeout(Duration::from_secs(5), watch.gone(&mut session)).await.expect("noticed at once");
}

#[tokio::test]
async fn bytes_from_the_client_are_noticed() {
    let (mut session, mut client) = session().await;
    let mut watch = ClientWatch::new();
    quiet_turns(&mut watch, &mut session, 20).await;
    client.write_all(b"x").await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), watch.gone(&mut session)).await.expect("noticed at once");
    drop(client);
}

#[tokio::test]
async fn a_turn_with_another_waker_gets_the_wake() {
    let (mut session, client) = session().await;
    let mut watch = ClientWatch::new();
    let (a, wa) = counting();
    let (b, wb) = counting();
    assert!(watch.poll_gone(&mut session, &mut Context::from_waker(&wa)).is_pending());
    for _ in 0..3 {
        assert!(watch.poll_gone(&mut session, &mut Context::from_waker(&wb)).is_pending());
    }
    drop(client);
    until_woken(&b).await;
    assert_eq!(a.get(), 0, "the earlier waker is not woken");
    assert!(watch.poll_gone(&mut session, &mut Context::from_waker(&wb)).is_ready(), "the close is seen");
}

#[tokio::test]
async fn a_watch_dropped_with_the_stream_wakes_nobody() {
    let (mut session, client) = session().await;
    let mut watch = ClientWatch::new();
    let (a, wa) = counting();
    assert!(watch.poll_gone(&mut session, &mut Context::from_waker(&wa)).is_pending());
    let due = watch.due.clone();
    drop(watch);
    drop(client);
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if due.due.load(Ordering::SeqCst) {
            break;
        }
    }
    assert!(due.due.load(Ordering::SeqCst), "the socket still woke the watch's waker");
    assert_eq!(a.get(), 0, "but no task");
}
