//! `on_disconnect`: what the gateway does with the upstream when the client leaves mid-stream. `abort`
//! (the default) closes it at once — `streaming::client_disconnect_closes_the_upstream_connection` and
//! `streaming::client_disconnect_during_slow_headers_closes_the_upstream` cover that in detail; `drain`
//! reads it to its end (bounded by `max_duration`), counting the events nobody receives.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use ssegate_tests::metrics::Scrape;
use ssegate_tests::mock::Gate;
use ssegate_tests::{
    assert_bytes, bounded, get, Gateway, GatewaySpec, MockUpstream, Reply, RouteSpec, ServerSpec, Step,
    SIGTERM,
};

/// Three events, the last two after the client is gone.
fn three_events() -> Reply {
    Reply::stream(
        "application/x-ndjson",
        vec![
            Step::send("{\"a\":1}\n"),
            Step::Sleep(800),
            Step::send("{\"b\":2}\n"),
            Step::Sleep(100),
            Step::send("{\"c\":3}\n"),
            Step::End,
        ],
    )
}

/// `{"a":1}`, `{"b":2}` `gap_ms` later, then silence: the upstream never ends.
fn two_then_silent(gap_ms: u64) -> Reply {
    Reply::stream(
        "application/x-ndjson",
        vec![
            Step::send("{\"a\":1}\n"),
            Step::Sleep(gap_ms),
            Step::send("{\"b\":2}\n"),
            Step::Wait(Gate::new()),
        ],
    )
}

/// A gateway (JSON logs, `server` applied) with route `r` on `mock`: no heartbeats, `on_disconnect`, then
/// `route` applied.
async fn gateway(
    mock: &MockUpstream,
    on_disconnect: &str,
    server: impl FnOnce(ServerSpec) -> ServerSpec,
    route: impl FnOnce(RouteSpec) -> RouteSpec,
) -> Gateway {
    GatewaySpec::new()
        .server(server)
        .route(route(RouteSpec::new("r").upstream(mock).heartbeat("0s").set("on_disconnect", on_disconnect)))
        .args(["--log-format", "json"])
        .start()
        .await
}

/// A client that reads the first event (`{"a":1}`) of `GET /r` and leaves.
async fn read_one_and_leave(gw: &Gateway) {
    let mut resp = get(gw.addr(), "/r").await;
    assert_bytes(&resp.next_event().await.unwrap(), b"data: {\"a\":1}\n\n");
}

#[tokio::test]
async fn drain_reads_the_upstream_to_its_end_counts_the_events_and_pools_the_connection() {
    bounded(async {
        let mock = MockUpstream::serve(three_events()).await;
        let gw = gateway(&mock, "drain", |s| s, |r| r).await;
        read_one_and_leave(&gw).await;

        // While the upstream is silent (800 ms), the stream is draining.
        let r = ("route", "r");
        let s = Scrape::until(gw.admin_addr(), |s| s.value("ssegate_streams_draining", &[r]) == 1.0).await;
        assert_eq!(s.value("ssegate_streams_draining", &[r]), 1.0, "{}", s.text);
        assert_eq!(s.value("ssegate_client_disconnects_total", &[r]), 1.0);
        assert!(gw.access_lines_now().is_empty(), "the access line waits for the drain's end");

        let line = gw.access_line(1, Duration::from_secs(5)).await;
        assert_eq!(line["outcome"], "client_closed", "{line}");
        assert_eq!(line["events"], 1, "delivered: {line}");
        assert_eq!(line["drained_events"], 2, "{line}");
        assert!(line["duration_ms"].as_f64().unwrap() >= 800.0, "{line}");
        assert_eq!(mock.send_times().len(), 3, "the mock wrote its whole reply");
        assert_eq!(mock.peer_closed(), 0, "read to its end, the connection went back to the pool");

        let s =
            Scrape::until(gw.admin_addr(), |s| s.value("ssegate_drained_events_total", &[r]) == 2.0).await;
        assert_eq!(s.value("ssegate_drained_events_total", &[r]), 2.0, "{}", s.text);
        assert_eq!(s.value("ssegate_events_total", &[r]), 1.0, "drained events are not delivered events");
        assert_eq!(s.value("ssegate_streams_draining", &[r]), 0.0);
        assert_eq!(s.value("ssegate_streams_total", &[r, ("outcome", "client_closed")]), 1.0);

        // The next request reuses the drained connection.
        let mut resp = get(gw.addr(), "/r").await;
        resp.body_to_end().await;
        assert_eq!(mock.connections(), 1, "the drained connection was reused");
        let line = gw.access_line(2, Duration::from_secs(3)).await;
        assert_eq!(line["outcome"], "completed", "{line}");
        assert!(line.get("drained_events").is_none(), "no drain, no drained_events: {line}");
    })
    .await;
}

#[tokio::test]
async fn abort_closes_the_upstream_before_the_rest_is_sent() {
    bounded(async {
        let mock = MockUpstream::serve(three_events()).await;
        let gw = gateway(&mock, "abort", |s| s, |r| r).await;
        read_one_and_leave(&gw).await;
        assert!(mock.wait_peer_closed(1, Duration::from_millis(600)).await, "upstream not closed at once");
        let line = gw.access_line(1, Duration::from_secs(3)).await;
        assert_eq!(line["outcome"], "client_closed", "{line}");
        assert!(line.get("drained_events").is_none(), "{line}");
        assert_eq!(mock.send_times().len(), 1, "the upstream stopped after the client left");
        let s = Scrape::fetch(gw.admin_addr()).await;
        assert_eq!(s.value("ssegate_drained_events_total", &[("route", "r")]), 0.0);
    })
    .await;
}

#[tokio::test]
async fn a_drain_ends_at_max_duration() {
    bounded(async {
        let mock = MockUpstream::serve(two_then_silent(200)).await;
        let gw = gateway(&mock, "drain", |s| s, |r| r.max_duration("1500ms").idle_timeout("60s")).await;
        let t = Instant::now();
        read_one_and_leave(&gw).await;
        assert!(
            mock.wait_peer_closed(1, Duration::from_secs(4)).await,
            "the drain did not end at max_duration (1.5 s)"
        );
        let closed = mock.peer_closed_at()[0] - t;
        assert!(
            closed >= Duration::from_millis(1300),
            "upstream closed after {closed:?}, before max_duration"
        );
        let line = gw.access_line(1, Duration::from_secs(3)).await;
        assert_eq!(line["outcome"], "client_closed", "{line}");
        assert_eq!(line["events"], 1, "{line}");
        assert_eq!(line["drained_events"], 1, "{line}");
        let r = ("route", "r");
        let s =
            Scrape::until(gw.admin_addr(), |s| s.value("ssegate_drained_events_total", &[r]) == 1.0).await;
        assert_eq!(s.value("ssegate_drained_events_total", &[r]), 1.0, "{}", s.text);
        assert_eq!(s.value("ssegate_streams_draining", &[r]), 0.0);
        // Nobody was told about max_duration: it is not a reported failure.
        assert_eq!(s.value("ssegate_upstream_errors_total", &[r, ("kind", "max_duration")]), 0.0);
    })
    .await;
}

#[tokio::test]
async fn a_shutdown_ends_a_drain_after_shutdown_drain() {
    bounded(async {
        let mock = MockUpstream::serve(two_then_silent(100)).await;
        let mut gw = gateway(&mock, "drain", |s| s.shutdown_drain("1s"), |r| r).await;
        read_one_and_leave(&gw).await;
        let r = ("route", "r");
        let s =
            Scrape::until(gw.admin_addr(), |s| s.value("ssegate_drained_events_total", &[r]) == 1.0).await;
        assert_eq!(s.value("ssegate_streams_draining", &[r]), 1.0, "{}", s.text);

        let t = Instant::now();
        gw.signal(SIGTERM);
        assert!(mock.wait_peer_closed(1, Duration::from_secs(5)).await, "the drain outlived the shutdown");
        let closed = mock.peer_closed_at()[0] - t;
        assert!(closed >= Duration::from_millis(800), "closed after {closed:?}, before shutdown_drain (1 s)");
        assert!(gw.wait_exit(Duration::from_secs(10)).await.is_some(), "no exit after SIGTERM");
        let line = gw.access_line(1, Duration::from_secs(1)).await;
        assert_eq!(line["outcome"], "client_closed", "{line}");
        assert_eq!(line["drained_events"], 1, "{line}");
    })
    .await;
}

#[tokio::test]
async fn a_drain_ends_at_idle_timeout() {
    bounded(async {
        let mock = MockUpstream::serve(two_then_silent(300)).await;
        let gw = gateway(&mock, "drain", |s| s, |r| r.idle_timeout("1s")).await;
        read_one_and_leave(&gw).await;
        let t = Instant::now();
        assert!(
            mock.wait_peer_closed(1, Duration::from_secs(4)).await,
            "the drain did not end at idle_timeout"
        );
        // The last read was ~300 ms after the client left; silence is measured from it.
        let closed = mock.peer_closed_at()[0] - t;
        assert!(closed >= Duration::from_millis(1100), "closed after {closed:?}, before idle_timeout");
        let line = gw.access_line(1, Duration::from_secs(3)).await;
        assert_eq!(line["outcome"], "client_closed", "{line}");
        assert_eq!(line["drained_events"], 1, "{line}");
        let s = Scrape::fetch(gw.admin_addr()).await;
        assert_eq!(
            s.value("ssegate_upstream_errors_total", &[("route", "r"), ("kind", "upstream_idle")]),
            0.0
        );
    })
    .await;
}
