//! `on_disconnect`: what the gateway does with the upstream when the client leaves mid-stream. `abort`
//! (the default) closes it at once — `streaming::client_disconnect_closes_the_upstream_connection` and
//! `streaming::client_disconnect_during_slow_headers_closes_the_upstream` cover that in detail; `drain`
//! reads it to its end (bounded by `max_duration`), counting the events nobody receives.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use ssegate_tests::metrics::Scrape;
use ssegate_tests::mock::Gate;
use ssegate_tests::{
    assert_bytes, bounded, get, Gateway, GatewaySpec, MockUpstream, Reply, RouteSpec, Step, SIGTERM,
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

/// The JSON access lines (`ssegate::access`) so far.
fn access_lines(gw: &Gateway) -> Vec<serde_json::Value> {
    gw.stderr()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "ssegate::access")
        .collect()
}

/// Waits (up to `within`) for the `n`th access line.
async fn access_line(gw: &Gateway, n: usize, within: Duration) -> serde_json::Value {
    let t = Instant::now();
    loop {
        if let Some(l) = access_lines(gw).into_iter().nth(n - 1) {
            return l;
        }
        assert!(t.elapsed() < within, "no access line #{n} within {within:?}; log:\n{}", gw.stderr());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn drain_reads_the_upstream_to_its_end_counts_the_events_and_pools_the_connection() {
    bounded(async {
        let mock = MockUpstream::serve(three_events()).await;
        let gw = GatewaySpec::new()
            .route(RouteSpec::new("r").upstream(&mock).heartbeat("0s").set("on_disconnect", "drain"))
            .args(["--log-format", "json"])
            .start()
            .await;
        let mut resp = get(gw.addr(), "/r").await;
        assert_bytes(&resp.next_event().await.unwrap(), b"data: {\"a\":1}\n\n");
        drop(resp);

        // While the upstream is silent (800 ms), the stream is draining.
        let r = ("route", "r");
        let s = Scrape::until(gw.admin_addr(), |s| s.value("ssegate_streams_draining", &[r]) == 1.0).await;
        assert_eq!(s.value("ssegate_streams_draining", &[r]), 1.0, "{}", s.text);
        assert_eq!(s.value("ssegate_client_disconnects_total", &[r]), 1.0);
        assert!(access_lines(&gw).is_empty(), "the access line waits for the drain's end");

        let line = access_line(&gw, 1, Duration::from_secs(5)).await;
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
        let line = access_line(&gw, 2, Duration::from_secs(3)).await;
        assert_eq!(line["outcome"], "completed", "{line}");
        assert!(line.get("drained_events").is_none(), "no drain, no drained_events: {line}");
    })
    .await;
}

#[tokio::test]
async fn abort_closes_the_upstream_before_the_rest_is_sent() {
    bounded(async {
        let mock = MockUpstream::serve(three_events()).await;
        let gw = GatewaySpec::new()
            .route(RouteSpec::new("r").upstream(&mock).heartbeat("0s").set("on_disconnect", "abort"))
            .args(["--log-format", "json"])
            .start()
            .await;
        let mut resp = get(gw.addr(), "/r").await;
        assert_bytes(&resp.next_event().await.unwrap(), b"data: {\"a\":1}\n\n");
        drop(resp);
        assert!(mock.wait_peer_closed(1, Duration::from_millis(600)).await, "upstream not closed at once");
        let line = access_line(&gw, 1, Duration::from_secs(3)).await;
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
        let gate = Gate::new(); // never opened: the upstream never ends
        let mock = MockUpstream::serve(Reply::stream(
            "application/x-ndjson",
            vec![Step::send("{\"a\":1}\n"), Step::Sleep(200), Step::send("{\"b\":2}\n"), Step::Wait(gate)],
        ))
        .await;
        let gw = GatewaySpec::new()
            .route(
                RouteSpec::new("r")
                    .upstream(&mock)
                    .heartbeat("0s")
                    .max_duration("1500ms")
                    .idle_timeout("60s")
                    .set("on_disconnect", "drain"),
            )
            .args(["--log-format", "json"])
            .start()
            .await;
        let t = Instant::now();
        let mut resp = get(gw.addr(), "/r").await;
        assert_bytes(&resp.next_event().await.unwrap(), b"data: {\"a\":1}\n\n");
        drop(resp);
        assert!(
            mock.wait_peer_closed(1, Duration::from_secs(4)).await,
            "the drain did not end at max_duration (1.5 s)"
        );
        let closed = mock.peer_closed_at()[0] - t;
        assert!(
            closed >= Duration::from_millis(1300),
            "upstream closed after {closed:?}, before max_duration"
        );
        let line = access_line(&gw, 1, Duration::from_secs(3)).await;
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
        let gate = Gate::new(); // never opened: the upstream never ends
        let mock = MockUpstream::serve(Reply::stream(
            "application/x-ndjson",
            vec![Step::send("{\"a\":1}\n"), Step::Sleep(100), Step::send("{\"b\":2}\n"), Step::Wait(gate)],
        ))
        .await;
        let mut gw = GatewaySpec::new()
            .server(|s| s.shutdown_drain("1s"))
            .route(RouteSpec::new("r").upstream(&mock).heartbeat("0s").set("on_disconnect", "drain"))
            .args(["--log-format", "json"])
            .start()
            .await;
        let mut resp = get(gw.addr(), "/r").await;
        assert_bytes(&resp.next_event().await.unwrap(), b"data: {\"a\":1}\n\n");
        drop(resp);
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
        let line = access_line(&gw, 1, Duration::from_secs(1)).await;
        assert_eq!(line["outcome"], "client_closed", "{line}");
        assert_eq!(line["drained_events"], 1, "{line}");
    })
    .await;
}

#[tokio::test]
async fn a_drain_ends_at_idle_timeout() {
    bounded(async {
        let gate = Gate::new(); // never opened: the upstream falls silent
        let mock = MockUpstream::serve(Reply::stream(
            "application/x-ndjson",
            vec![Step::send("{\"a\":1}\n"), Step::Sleep(300), Step::send("{\"b\":2}\n"), Step::Wait(gate)],
        ))
        .await;
        let gw = GatewaySpec::new()
            .route(
                RouteSpec::new("r")
                    .upstream(&mock)
                    .heartbeat("0s")
                    .idle_timeout("1s")
                    .set("on_disconnect", "drain"),
            )
            .args(["--log-format", "json"])
            .start()
            .await;
        let mut resp = get(gw.addr(), "/r").await;
        assert_bytes(&resp.next_event().await.unwrap(), b"data: {\"a\":1}\n\n");
        drop(resp);
        let t = Instant::now();
        assert!(
            mock.wait_peer_closed(1, Duration::from_secs(4)).await,
            "the drain did not end at idle_timeout"
        );
        // The last read was ~300 ms after the client left; silence is measured from it.
        let closed = mock.peer_closed_at()[0] - t;
        assert!(closed >= Duration::from_millis(1100), "closed after {closed:?}, before idle_timeout");
        let line = access_line(&gw, 1, Duration::from_secs(3)).await;
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
