use super::labels::{format_by_index, format_index, outcome_index};
use super::*;
use crate::error::ErrorType;
use prometheus::proto::{MetricFamily, MetricType};
use prometheus::Encoder;
use ssegate_frame::{DecodeError, Format};
use std::time::Duration;

fn family(name: &str) -> Option<MetricFamily> {
    prometheus::gather().into_iter().find(|f| f.name() == name)
}

/// The value of the series `name` whose labels include all of `labels`.
fn value(name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let fam = family(name)?;
    let m = fam.get_metric().iter().find(|m| {
        labels.iter().all(|(k, v)| m.get_label().iter().any(|l| l.name() == *k && l.value() == *v))
    })?;
    Some(match fam.get_field_type() {
        MetricType::COUNTER => m.get_counter().value(),
        MetricType::GAUGE => m.get_gauge().value(),
        MetricType::HISTOGRAM => m.get_histogram().sample_count() as f64,
        _ => return None,
    })
}

fn histogram(name: &str, route: &str) -> (u64, f64, Vec<(f64, u64)>) {
    let fam = family(name).unwrap();
    let m = fam
        .get_metric()
        .iter()
        .find(|m| m.get_label().iter().any(|l| l.name() == "route" && l.value() == route))
        .unwrap();
    let h = m.get_histogram();
    let buckets = h.get_bucket().iter().map(|b| (b.upper_bound(), b.cumulative_count())).collect();
    (h.sample_count(), h.sample_sum(), buckets)
}

fn text() -> String {
    let mut buf = Vec::new();
    prometheus::TextEncoder::new().encode(&prometheus::gather(), &mut buf).unwrap();
    String::from_utf8(buf).unwrap()
}

#[test]
fn outcome_names() {
    let names: Vec<_> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
    assert_eq!(
        names,
        ["completed", "client_closed", "upstream_error", "timeout", "shutdown", "rejected", "truncated"]
    );
    for (i, o) in Outcome::ALL.iter().enumerate() {
        assert_eq!(outcome_index(*o), i);
    }
}

#[test]
fn format_indexes_are_a_bijection() {
    assert_eq!(format_index(None), 0);
    assert_eq!(format_by_index(0), None);
    for f in Format::ALL {
        assert_eq!(format_by_index(format_index(Some(f))), Some(f));
    }
    assert_eq!(format_label(None), "passthrough");
    assert_eq!(format_label(Some(Format::JsonSeq)), "json-seq");
}

#[test]
fn buckets_are_sorted_and_span_the_documented_range() {
    assert!(LATENCY_BUCKETS.windows(2).all(|w| w[0] < w[1]));
    assert!(DURATION_BUCKETS.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(LATENCY_BUCKETS[0], 0.0001);
    assert_eq!(LATENCY_BUCKETS[LATENCY_BUCKETS.len() - 1], 60.0);
    assert_eq!(DURATION_BUCKETS[DURATION_BUCKETS.len() - 1], 14400.0);
}

#[test]
fn init_is_idempotent_and_registers_everything() {
    init();
    init();
    let _ = route("t_init");
    // Pool families have series once a pool is built.
    super::BackendMetrics::new("t_init", "b").header(Duration::from_millis(1));
    let _ = super::Failovers::new("t_init");
    let t = text();
    for name in [
        "ssegate_downstream_connections_open",
        "ssegate_downstream_connections_total",
        "ssegate_streams_active",
        "ssegate_upstream_header_seconds",
        "ssegate_first_event_seconds",
        "ssegate_event_gap_seconds",
        "ssegate_event_latency_seconds",
        "ssegate_events_total",
        "ssegate_bytes_total",
        "ssegate_heartbeats_total",
        "ssegate_client_disconnects_total",
        "ssegate_decode_errors_total",
        "ssegate_upstream_errors_total",
        "ssegate_slow_clients_total",
        "ssegate_drained_events_total",
        "ssegate_streams_draining",
        "ssegate_rejected_total",
        "ssegate_downstream_rejected_total",
        "ssegate_upstream_retries_total",
        "ssegate_build_info",
        "ssegate_ready",
        "ssegate_backend_requests_total",
        "ssegate_upstream_failovers_total",
        "ssegate_backend_up",
        "ssegate_backend_ejections_total",
        "ssegate_backend_header_seconds",
        "ssegate_resume_retained_bytes",
        "ssegate_resume_store_errors_total",
    ] {
        assert!(t.contains(&format!("# TYPE {name} ")), "{name} missing from\n{t}");
    }
    let version = env!("CARGO_PKG_VERSION");
    assert!(t.contains(&format!("ssegate_build_info{{version=\"{version}\"}} 1")), "{t}");
    #[cfg(target_os = "linux")]
    for name in ["process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds"] {
        assert_eq!(t.matches(&format!("# TYPE {name} ")).count(), 1, "{name} in\n{t}");
    }
    // Registering a second time would fail loudly in prometheus; `families()` guarantees once.
    assert_eq!(t.matches("# TYPE ssegate_build_info ").count(), 1);
}

#[test]
fn route_series_exist_at_zero() {
    let _m = route("t_zero");
    assert_eq!(value("ssegate_streams_active", &[("route", "t_zero")]), Some(0.0));
    assert_eq!(value("ssegate_heartbeats_total", &[("route", "t_zero")]), Some(0.0));
    assert_eq!(value("ssegate_client_disconnects_total", &[("route", "t_zero")]), Some(0.0));
    for f in ["passthrough", "sse", "ndjson", "json-stream", "json-seq", "json-array", "lines", "chunks"] {
        assert_eq!(value("ssegate_events_total", &[("route", "t_zero"), ("format", f)]), Some(0.0), "{f}");
    }
    for d in ["upstream_in", "downstream_out"] {
        assert_eq!(value("ssegate_bytes_total", &[("route", "t_zero"), ("direction", d)]), Some(0.0));
    }
    for k in DecodeKind::ALL.map(DecodeKind::as_str) {
        assert_eq!(value("ssegate_decode_errors_total", &[("route", "t_zero"), ("kind", k)]), Some(0.0));
    }
    for k in ErrorType::ALL.iter().filter(|t| t.is_stream_error()).map(|t| t.as_str()) {
        assert_eq!(value("ssegate_upstream_errors_total", &[("route", "t_zero"), ("kind", k)]), Some(0.0));
    }
    assert_eq!(value("ssegate_slow_clients_total", &[("route", "t_zero")]), Some(0.0));
    // One family per refusal: a 401 is `rejected_total{reason="unauthorized"}`, nothing else.
    assert_eq!(family("ssegate_auth_failures_total").map(|f| f.name().to_string()), None);
    assert_eq!(value("ssegate_upstream_retries_total", &[("route", "t_zero")]), Some(0.0));
    for r in RejectReason::ALL.map(RejectReason::as_str) {
        assert_eq!(value("ssegate_rejected_total", &[("route", "t_zero"), ("reason", r)]), Some(0.0));
    }
    for r in EdgeReason::ALL.map(EdgeReason::as_str) {
        assert!(value("ssegate_downstream_rejected_total", &[("reason", r)]).is_some(), "{r}");
    }
    assert_eq!(value("ssegate_first_event_seconds", &[("route", "t_zero")]), Some(0.0));
    // Lazily created: nothing finished yet.
    assert_eq!(value("ssegate_streams_total", &[("route", "t_zero")]), None);
    assert_eq!(value("ssegate_stream_duration_seconds", &[("route", "t_zero")]), None);
}

#[test]
fn active_stream_guard() {
    let m = route("t_active");
    let a = m.stream_started();
    let b = m.stream_started();
    assert_eq!(value("ssegate_streams_active", &[("route", "t_active")]), Some(2.0));
    drop(a);
    assert_eq!(value("ssegate_streams_active", &[("route", "t_active")]), Some(1.0));
    drop(b);
    assert_eq!(value("ssegate_streams_active", &[("route", "t_active")]), Some(0.0));
    // A second `route()` for the same name shares the series.
    let again = route("t_active");
    let _c = again.stream_started();
    assert_eq!(value("ssegate_streams_active", &[("route", "t_active")]), Some(1.0));
}

#[test]
fn connection_guard() {
    // Other tests in this process may open connections concurrently: check deltas of our own guards
    // against the total counter, which only grows.
    let before = value("ssegate_downstream_connections_total", &[]).unwrap_or(0.0);
    let g1 = connection_opened();
    let g2 = connection_opened();
    let after = value("ssegate_downstream_connections_total", &[]).unwrap();
    assert!(after >= before + 2.0);
    assert!(value("ssegate_downstream_connections_open", &[]).unwrap() >= 2.0);
    drop(g1);
    drop(g2);
}

#[test]
fn counters_move() {
    let m = route("t_counters");
    m.events(Some(Format::Ndjson), 3);
    m.events(Some(Format::Ndjson), 2);
    m.events(None, 7);
    m.events(Some(Format::Chunks), 1);
    m.bytes_in(100);
    m.bytes_out(250);
    m.bytes_out(5);
    m.heartbeat();
    m.heartbeat();
    m.client_disconnect();
    m.decode_error(&DecodeError::TooLarge { limit: 1 });
    m.decode_error(&DecodeError::MalformedJson { reason: "x", recoverable: true });
    m.decode_error(&DecodeError::MalformedJson { reason: "y", recoverable: false });
    m.stream_error(ErrorType::UpstreamReset);
    m.stream_error(ErrorType::Shutdown);
    m.stream_error(ErrorType::Unauthorized); // a refusal: not a stream error, ignored here
    m.slow_client();
    m.rejected(RejectReason::Unauthorized);
    m.rejected(RejectReason::Unauthorized);
    m.rejected(RejectReason::MaxStreams);
    let r = ("route", "t_counters");
    assert_eq!(value("ssegate_events_total", &[r, ("format", "ndjson")]), Some(5.0));
    assert_eq!(value("ssegate_events_total", &[r, ("format", "passthrough")]), Some(7.0));
    assert_eq!(value("ssegate_events_total", &[r, ("format", "chunks")]), Some(1.0));
    assert_eq!(value("ssegate_events_total", &[r, ("format", "sse")]), Some(0.0));
    assert_eq!(value("ssegate_bytes_total", &[r, ("direction", "upstream_in")]), Some(100.0));
    assert_eq!(value("ssegate_bytes_total", &[r, ("direction", "downstream_out")]), Some(255.0));
    assert_eq!(value("ssegate_heartbeats_total", &[r]), Some(2.0));
    assert_eq!(value("ssegate_client_disconnects_total", &[r]), Some(1.0));
    assert_eq!(value("ssegate_decode_errors_total", &[r, ("kind", "too_large")]), Some(1.0));
    assert_eq!(value("ssegate_decode_errors_total", &[r, ("kind", "malformed_json")]), Some(2.0));
    assert_eq!(value("ssegate_decode_errors_total", &[r, ("kind", "invalid_utf8")]), Some(0.0));
    assert_eq!(value("ssegate_upstream_errors_total", &[r, ("kind", "upstream_reset")]), Some(1.0));
    assert_eq!(value("ssegate_upstream_errors_total", &[r, ("kind", "shutdown")]), Some(1.0));
    assert_eq!(value("ssegate_upstream_errors_total", &[r, ("kind", "unauthorized")]), None);
    assert_eq!(value("ssegate_upstream_errors_total", &[r, ("kind", "slow_client")]), None);
    assert_eq!(value("ssegate_slow_clients_total", &[r]), Some(1.0));
    assert_eq!(value("ssegate_upstream_errors_total", &[r, ("kind", "upstream_idle")]), Some(0.0));
    assert_eq!(value("ssegate_rejected_total", &[r, ("reason", "unauthorized")]), Some(2.0));
    assert_eq!(value("ssegate_rejected_total", &[r, ("reason", "max_streams")]), Some(1.0));
    assert_eq!(value("ssegate_rejected_total", &[r, ("reason", "cors")]), Some(0.0));
}

#[test]
fn histograms_observe_into_the_right_buckets() {
    let m = route("t_hist");
    m.first_event(Duration::from_micros(50)); // <= 100 µs
    m.first_event(Duration::from_millis(3)); // <= 5 ms
    m.first_event(Duration::from_secs(120)); // +Inf only
    m.upstream_header(Duration::from_millis(20));
    m.event_gap(Duration::from_millis(1));
    m.event_gap(Duration::from_millis(1));
    m.event_latency(Duration::from_micros(200));
    let (count, sum, buckets) = histogram("ssegate_first_event_seconds", "t_hist");
    assert_eq!(count, 3);
    assert!((sum - (0.00005 + 0.003 + 120.0)).abs() < 1e-9, "{sum}");
    let at = |le: f64| buckets.iter().find(|(b, _)| *b == le).map(|(_, c)| *c);
    assert_eq!(at(0.0001), Some(1));
    assert_eq!(at(0.0025), Some(1));
    assert_eq!(at(0.005), Some(2));
    assert_eq!(at(60.0), Some(2));
    assert_eq!(buckets.len(), LATENCY_BUCKETS.len());
    assert_eq!(histogram("ssegate_upstream_header_seconds", "t_hist").0, 1);
    assert_eq!(histogram("ssegate_event_gap_seconds", "t_hist").0, 2);
    let (n, _, b) = histogram("ssegate_event_latency_seconds", "t_hist");
    assert_eq!(n, 1);
    assert_eq!(b.iter().find(|(le, _)| *le == 0.00025).map(|(_, c)| *c), Some(1));
}

#[test]
fn finished_counts_streams_and_durations() {
    let m = route("t_fin");
    m.finished(Some(Format::Sse), Outcome::Completed, Duration::from_secs(2));
    m.finished(Some(Format::Sse), Outcome::Completed, Duration::from_secs(3));
    m.finished(None, Outcome::ClientClosed, Duration::from_millis(50));
    m.finished(Some(Format::JsonArray), Outcome::UpstreamError, Duration::from_secs(7200));
    let r = ("route", "t_fin");
    let st = "ssegate_streams_total";
    assert_eq!(value(st, &[r, ("format", "sse"), ("outcome", "completed")]), Some(2.0));
    assert_eq!(value(st, &[r, ("format", "passthrough"), ("outcome", "client_closed")]), Some(1.0));
    assert_eq!(value(st, &[r, ("format", "json-array"), ("outcome", "upstream_error")]), Some(1.0));
    assert_eq!(value(st, &[r, ("format", "sse"), ("outcome", "timeout")]), None);
    let sd = "ssegate_stream_duration_seconds";
    assert_eq!(value(sd, &[r, ("outcome", "completed")]), Some(2.0));
    assert_eq!(value(sd, &[r, ("outcome", "client_closed")]), Some(1.0));
    assert_eq!(value(sd, &[r, ("outcome", "upstream_error")]), Some(1.0));
    let t = text();
    assert!(
        t.contains(
            "ssegate_stream_duration_seconds_bucket{outcome=\"upstream_error\",route=\"t_fin\",le=\"3600\"} 0"
        ),
        "{t}"
    );
    assert!(
        t.contains(
            "ssegate_stream_duration_seconds_bucket{outcome=\"upstream_error\",route=\"t_fin\",le=\"7200\"} 1"
        ),
        "{t}"
    );
    // Clones share the lazily-resolved series.
    let c = m.clone();
    c.finished(Some(Format::Sse), Outcome::Completed, Duration::from_secs(1));
    assert_eq!(value(st, &[r, ("format", "sse"), ("outcome", "completed")]), Some(3.0));
}

/// Every `ssegate_*` / `process_*` name in `text`, histogram suffixes removed.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let bytes = text.as_bytes();
    let is_name = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        let boundary = i == 0 || !is_name(bytes[i - 1]);
        if boundary && (rest.starts_with("ssegate_") || rest.starts_with("process_")) {
            let len = rest.bytes().take_while(|b| is_name(*b)).count();
            let name = &rest[..len];
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            names.insert(base.to_owned());
            i += len;
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    names
}

fn repo_file(path: &str) -> String {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

#[test]
#[cfg(target_os = "linux")] // process_* metrics
fn dashboard_and_alerts_query_only_exported_metrics() {
    let m = route("t_deploy");
    m.finished(Some(Format::Sse), Outcome::Completed, Duration::from_secs(1));
    let b = super::BackendMetrics::new("t_deploy", "b");
    b.header(Duration::from_millis(5));
    let _ = super::Failovers::new("t_deploy");
    let _ = super::usage::route("t_deploy");
    super::init(); // every family, as at start-up (the registry is shared by the tests of this binary)
    let exported: std::collections::BTreeSet<String> =
        prometheus::gather().iter().map(|f| f.name().to_owned()).collect();

    let dashboard: serde_json::Value =
        serde_json::from_str(&repo_file("deploy/grafana/ssegate.json")).unwrap();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{}", panel["title"]);
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", panel["title"]);
        for t in targets {
            exprs.push(t["expr"].as_str().unwrap().to_owned());
        }
    }
    let vars = dashboard["templating"]["list"].as_array().unwrap();
    let route_var = vars.iter().find(|v| v["name"] == "route").unwrap();
    assert_eq!(route_var["definition"], "label_values(ssegate_streams_active, route)");
    assert!(vars.iter().any(|v| v["name"] == "datasource" && v["type"] == "datasource"));
    let dashboard_names = metric_names(&exprs.join("\n"));
    for name in ["ssegate_first_event_seconds", "ssegate_event_latency_seconds", "ssegate_streams_total"] {
        assert!(dashboard_names.contains(name), "dashboard does not query {name}");
    }

    let alert_names = metric_names(&repo_file("deploy/prometheus/alerts.yml"));
    assert!(alert_names.contains("ssegate_streams_total"));
    for name in dashboard_names.iter().chain(&alert_names) {
        assert!(exported.contains(name), "{name} is queried but not exported; exported: {exported:?}");
    }
}

#[test]
fn metric_name_scanner() {
    let names = metric_names(
        "rate(ssegate_first_event_seconds_bucket{x=\"y\"}[5m]) / process_open_fds + my_ssegate_x ssegate_streams_total",
    );
    let names: Vec<_> = names.iter().map(String::as_str).collect();
    assert_eq!(names, ["process_open_fds", "ssegate_first_event_seconds", "ssegate_streams_total"]);
}

#[test]
fn debug_shows_the_route() {
    assert!(format!("{:?}", route("t_debug")).contains("t_debug"));
}

#[test]
fn drain_series_start_at_zero_and_move() {
    let m = route("t_drain");
    let r = ("route", "t_drain");
    assert_eq!(value("ssegate_drained_events_total", &[r]), Some(0.0));
    assert_eq!(value("ssegate_streams_draining", &[r]), Some(0.0));
    let guard = m.drain_started();
    m.drained_events(3);
    assert_eq!(value("ssegate_streams_draining", &[r]), Some(1.0));
    drop(guard);
    assert_eq!(value("ssegate_streams_draining", &[r]), Some(0.0));
    assert_eq!(value("ssegate_drained_events_total", &[r]), Some(3.0));
    // Drained events are not delivered events.
    assert_eq!(value("ssegate_events_total", &[r, ("format", "sse")]), Some(0.0));
}
