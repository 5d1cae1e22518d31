//! Metrics and admin endpoints (issue 4): scrape `/metrics` during and after real streams through the binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ssegate_tests::client::End;
use ssegate_tests::gateway::workspace_root;
use ssegate_tests::metrics::Scrape;
use ssegate_tests::mock::Gate;
use ssegate_tests::{bounded, get, request, show, sse, Gateway, MockUpstream, Reply, Step};
use ssegate_tests::{GatewaySpec, RouteSpec};

const R: (&str, &str) = ("route", "r");

/// The non-bucket `ssegate_` lines of a scrape, for failure messages.
fn report(s: &Scrape) -> String {
    s.text
        .lines()
        .filter(|l| l.starts_with("ssegate_") && !l.contains("_bucket"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One expected value: metric name, label subset, value (summed over matching series).
type Expect<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

/// Scrapes until every expectation holds (metrics are updated one after another, so a scrape can land in
/// between; up to 3 s), then asserts each, reporting every mismatch.
async fn expect_metrics(gw: &Gateway, expected: &[Expect<'_>]) -> Scrape {
    let s = Scrape::until(gw.admin_addr(), |s| expected.iter().all(|(n, l, v)| s.value(n, l) == *v)).await;
    let bad: Vec<String> = expected
        .iter()
        .filter(|(n, l, v)| s.value(n, l) != *v)
        .map(|(n, l, v)| format!("{n}{l:?}: observed {}, expected {v}", s.value(n, l)))
        .collect();
    assert!(bad.is_empty(), "metrics differ:\n{}\n\nscrape:\n{}", bad.join("\n"), report(&s));
    s
}

fn count_events(body: &[u8]) -> usize {
    sse::parse(body).iter().filter(|b| !b.is_heartbeat()).count()
}

fn count_heartbeats(body: &[u8]) -> usize {
    sse::parse(body).iter().filter(|b| b.is_heartbeat()).count()
}

#[tokio::test]
async fn admin_endpoints_answer() {
    bounded(async {
        let mock = MockUpstream::serve(Reply::full(200, "application/json", "{}")).await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock)).start().await;
        let mut h = request(gw.admin_addr(), "GET", "/healthz", &[], b"").await;
        h.body_to_end().await;
        assert_eq!(h.status, 200);
        let s = Scrape::fetch(gw.admin_addr()).await;
        assert_eq!(s.status, 200);
        assert!(
            s.content_type.as_deref().is_some_and(|c| c.starts_with("text/plain")),
            "content-type {:?}",
            s.content_type
        );
        for name in [
            "ssegate_build_info",
            "ssegate_downstream_connections_open",
            "ssegate_downstream_connections_total",
            "process_resident_memory_bytes",
            "process_cpu_seconds_total",
            "process_open_fds",
        ] {
            assert!(s.names().contains(name), "{name} missing from the scrape:\n{}", s.text);
        }
        assert!(
            s.has("ssegate_build_info", &[("version", env!("CARGO_PKG_VERSION"))]),
            "build_info{{version}}:\n{}",
            s.text
        );
    })
    .await;
}

#[tokio::test]
async fn stream_gauges_counters_and_histograms_follow_a_completed_stream() {
    bounded(async {
        let gate = Gate::new();
        let upstream_body = ["{\"a\":1}\n", "{\"b\":2}\n{\"c\":3}\n", "{\"d\":4}\n", "{\"e\":5}\n"];
        let mock = MockUpstream::serve(Reply::stream(
            "application/x-ndjson",
            vec![
                Step::send(upstream_body[0]),
                Step::send(upstream_body[1]),
                Step::Wait(gate.clone()),
                Step::send(upstream_body[2]),
                Step::Sleep(20),
                Step::send(upstream_body[3]),
                Step::End,
            ],
        ))
        .await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).heartbeat("0s")).start().await;
        let before = Scrape::fetch(gw.admin_addr()).await;
        assert_eq!(before.value("ssegate_streams_active", &[R]), 0.0);

        let mut resp = get(gw.addr(), "/r").await;
        for _ in 0..3 {
            resp.next_event().await.unwrap();
        }
        let during = expect_metrics(
            &gw,
            &[("ssegate_streams_active", &[R], 1.0), ("ssegate_first_event_seconds_count", &[R], 1.0)],
        )
        .await;
        assert!(during.value("ssegate_downstream_connections_open", &[]) >= 1.0, "{}", report(&during));

        gate.open();
        resp.body_to_end().await;
        assert_eq!(resp.end(), Some(&End::Clean));
        let received = count_events(resp.body());
        assert_eq!(received, 5);
        let fmt = ("format", "ndjson");
        let n = received as f64;
        let sse_bytes = resp.body().len() as f64;
        let upstream_bytes = upstream_body.concat().len() as f64;
        let after = expect_metrics(
            &gw,
            &[
                ("ssegate_streams_active", &[R], 0.0),
                ("ssegate_streams_total", &[R, fmt, ("outcome", "completed")], 1.0),
                ("ssegate_events_total", &[R, fmt], n),
                ("ssegate_upstream_header_seconds_count", &[R], 1.0),
                ("ssegate_first_event_seconds_count", &[R], 1.0),
                ("ssegate_event_latency_seconds_count", &[R], n),
                ("ssegate_event_gap_seconds_count", &[R], n - 1.0),
                ("ssegate_event_gap_seconds_bucket", &[R, ("le", "+Inf")], n - 1.0),
                ("ssegate_stream_duration_seconds_count", &[R, ("outcome", "completed")], 1.0),
                // What the client received (the SSE body) and what the mock sent (the upstream body).
                ("ssegate_bytes_total", &[R, ("direction", "downstream_out")], sse_bytes),
                ("ssegate_bytes_total", &[R, ("direction", "upstream_in")], upstream_bytes),
            ],
        )
        .await;
        assert!(after.value("ssegate_event_gap_seconds_sum", &[R]) > 0.0, "{}", report(&after));

        // The client closes its connection: the open-connections gauge goes back down.
        drop(resp);
        expect_metrics(&gw, &[("ssegate_downstream_connections_open", &[], 0.0)]).await;
    })
    .await;
}

#[tokio::test]
async fn silent_admin_client_is_dropped_without_blocking_others() {
    use tokio::io::AsyncReadExt;
    bounded(async {
        let mock = MockUpstream::serve(Reply::stream("application/x-ndjson", vec![Step::End])).await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock)).start().await;
        let mut silent = tokio::net::TcpStream::connect(gw.admin_addr()).await.unwrap();
        let t0 = Instant::now();
        // While it says nothing, the admin listener answers others.
        let scrape = Scrape::fetch(gw.admin_addr()).await;
        assert!(scrape.text.contains("ssegate_streams_active"), "{}", scrape.text);
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "a scrape took {:?} next to a silent client",
            t0.elapsed()
        );
        // The admin listener waits 5 s for a request head (HEAD_TIMEOUT in crates/gateway/src/admin.rs).
        let mut buf = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(10), silent.read_to_end(&mut buf)).await;
        let took = t0.elapsed();
        assert!(r.is_ok(), "a silent admin client is still connected after {took:?}");
        assert!(took >= Duration::from_millis(4500), "dropped after {took:?}, before the 5 s head timeout");
    })
    .await;
}

#[tokio::test]
async fn heartbeat_counter_matches_heartbeats_received() {
    bounded(async {
        let mock = MockUpstream::serve(Reply::stream(
            "text/event-stream",
            vec![Step::send("data: a\n\n"), Step::Sleep(700), Step::send("data: b\n\n"), Step::End],
        ))
        .await;
        let gw =
            GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).heartbeat("150ms")).start().await;
        let mut resp = get(gw.addr(), "/r").await;
        let body = resp.body_to_end().await;
        let beats = count_heartbeats(&body);
        assert!(beats >= 2, "heartbeats during the pause: \"{}\"", show(&body));
        expect_metrics(
            &gw,
            &[
                ("ssegate_heartbeats_total", &[R], beats as f64),
                ("ssegate_events_total", &[R, ("format", "sse")], 2.0),
            ],
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn client_disconnect_is_counted() {
    bounded(async {
        let never = Gate::new();
        let mock = MockUpstream::serve(Reply::stream(
            "text/event-stream",
            vec![Step::send("data: a\n\n"), Step::Wait(never)],
        ))
        .await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock)).start().await;
        let mut resp = get(gw.addr(), "/r").await;
        resp.next_event().await.unwrap();
        let during = Scrape::until(gw.admin_addr(), |s| s.value("ssegate_streams_active", &[R]) == 1.0).await;
        assert_eq!(during.value("ssegate_streams_active", &[R]), 1.0, "{}", during.text);
        drop(resp);
        expect_metrics(
            &gw,
            &[
                ("ssegate_client_disconnects_total", &[R], 1.0),
                ("ssegate_streams_active", &[R], 0.0),
                ("ssegate_streams_total", &[R, ("outcome", "client_closed")], 1.0),
                ("ssegate_stream_duration_seconds_count", &[R, ("outcome", "client_closed")], 1.0),
            ],
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn upstream_errors_timeouts_and_decode_errors_are_counted() {
    bounded(async {
        let never = Gate::new();
        let mock = MockUpstream::start(move |req| match req.target.as_str() {
            "/reset" => Reply::stream("application/x-ndjson", vec![Step::send("{\"a\":1}\n"), Step::Reset]),
            "/idle" => Reply::stream(
                "application/x-ndjson",
                vec![Step::send("{\"a\":1}\n"), Step::Wait(never.clone())],
            ),
            _ => Reply::stream(
                "application/x-ndjson",
                vec![Step::send("{\"a\":1}\n{bad\n{\"c\":3}\n"), Step::End],
            ),
        })
        .await;
        let gw =
            GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).idle_timeout("300ms")).start().await;
        for path in ["/r/reset", "/r/idle", "/r/bad"] {
            let mut resp = get(gw.addr(), path).await;
            resp.body_to_end().await;
        }
        expect_metrics(
            &gw,
            &[
                ("ssegate_streams_total", &[R, ("outcome", "upstream_error")], 1.0),
                ("ssegate_streams_total", &[R, ("outcome", "timeout")], 1.0),
                ("ssegate_streams_total", &[R, ("outcome", "completed")], 1.0),
                ("ssegate_upstream_errors_total", &[R], 2.0), // reset + idle
                ("ssegate_decode_errors_total", &[R, ("kind", "malformed_json")], 1.0),
                ("ssegate_events_total", &[R], 4.0), // 1 + 1 + 2
            ],
        )
        .await;
    })
    .await;
}

/// The metric names a PromQL expression mentions (`ssegate_*`, `process_*`).
fn metric_names(expr: &str) -> Vec<String> {
    let bytes = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if starts_word && (expr[i..].starts_with("ssegate_") || expr[i..].starts_with("process_")) {
            let end = expr[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(expr.len(), |e| i + e);
            out.push(expr[i..end].to_string());
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr" | "query" | "definition", serde_json::Value::String(s)) => out.push(s.clone()),
                    ("query", serde_json::Value::Object(q)) => {
                        if let Some(serde_json::Value::String(s)) = q.get("query") {
                            out.push(s.clone());
                        }
                    }
                    _ => collect_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

/// Runs a few streams of every outcome so that labelled series exist.
async fn busy_gateway() -> (Gateway, MockUpstream) {
    let mock = MockUpstream::start(|req| match req.target.as_str() {
        "/reset" => Reply::stream("application/x-ndjson", vec![Step::send("{\"a\":1}\n"), Step::Reset]),
        _ => Reply::stream(
            "application/x-ndjson",
            vec![Step::send("{\"a\":1}\n{bad\n"), Step::Sleep(250), Step::send("{\"b\":1}\n"), Step::End],
        ),
    })
    .await;
    let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).heartbeat("100ms")).start().await;
    for path in ["/r/ok", "/r/reset", "/r/ok"] {
        let mut resp = get(gw.addr(), path).await;
        resp.body_to_end().await;
    }
    (gw, mock)
}

#[tokio::test]
async fn dashboard_queries_only_metrics_that_exist() {
    bounded(async {
        let path = workspace_root().join("deploy/grafana/ssegate.json");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let dash: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("dashboard JSON: {e}"));
        let mut exprs = Vec::new();
        collect_exprs(&dash, &mut exprs);
        let names: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
        assert!(!names.is_empty(), "the dashboard queries no ssegate metrics");
        let (gw, mock) = busy_gateway().await;
        let scrape = Scrape::fetch(gw.admin_addr()).await;
        let mut have = scrape.names();
        // The provider families (tokens, provider errors) exist for routes with a `provider`.
        let with_provider = GatewaySpec::new()
            .route(RouteSpec::new("p").upstream(&mock).set("provider", "ollama"))
            .start()
            .await;
        have.extend(Scrape::fetch(with_provider.admin_addr()).await.names());
        let missing: Vec<_> = names.iter().filter(|n| !have.contains(*n)).collect();
        assert!(missing.is_empty(), "dashboard metrics missing from a real scrape: {missing:?}");
    })
    .await;
}

#[tokio::test]
async fn promtool_accepts_a_real_scrape() {
    bounded(async {
        let (gw, _mock) = busy_gateway().await;
        let scrape = Scrape::fetch(gw.admin_addr()).await;
        let child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = child.unwrap_or_else(|e| {
            panic!("promtool is needed for this test ({e}); install it (Debian package `prometheus`, scripts/setup.sh)")
        });
        child.stdin.take().unwrap().write_all(scrape.text.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    })
    .await;
}

#[tokio::test]
async fn access_log_has_one_json_line_per_stream() {
    bounded(async {
        let mock = MockUpstream::serve(Reply::stream(
            "application/x-ndjson",
            vec![Step::send("{\"a\":1}\n"), Step::Sleep(20), Step::send("{\"b\":2}\n"), Step::End],
        ))
        .await;
        let gw = GatewaySpec::new()
            .route(RouteSpec::new("r").upstream(&mock))
            .args(["--log-format", "json"])
            .start()
            .await;
        let mut resp = get(gw.addr(), "/r/v1/x?secret=abc").await;
        resp.body_to_end().await;
        let t = Instant::now();
        let find_lines = || -> Vec<serde_json::Value> {
            let mut lines = gw.log_lines();
            lines.retain(|v| v.get("outcome").is_some() && v.get("route").is_some());
            lines
        };
        let mut lines = find_lines();
        while lines.is_empty() && t.elapsed() < Duration::from_secs(3) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            lines = find_lines();
        }
        let all = format!("{}\n{}", gw.stderr(), gw.stdout());
        assert_eq!(lines.len(), 1, "one access line with route and outcome; log:\n{all}");
        let l = &lines[0];
        let s = |k: &str| l.get(k).map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
        assert_eq!(s("route").as_deref(), Some("r"), "{l}");
        assert_eq!(s("method").as_deref(), Some("GET"), "{l}");
        let path = s("path").unwrap_or_else(|| panic!("no path: {l}"));
        assert!(path == "/r/v1/x" || path == "/v1/x", "path without query: {l}");
        assert!(!all.contains("secret=abc"), "the query must not be logged:\n{all}");
        assert_eq!(s("format").as_deref(), Some("ndjson"), "{l}");
        assert_eq!(s("outcome").as_deref(), Some("completed"), "{l}");
        assert_eq!(s("events").as_deref(), Some("2"), "{l}");
        assert_eq!(s("upstream_status").as_deref(), Some("200"), "{l}");
        let keys: Vec<&String> = l.as_object().unwrap().keys().collect();
        for part in ["duration", "first_event", "bytes", "heartbeats"] {
            assert!(keys.iter().any(|k| k.contains(part)), "a `{part}` field: {l}");
        }
    })
    .await;
}
