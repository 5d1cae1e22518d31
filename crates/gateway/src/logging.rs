//! Logging: `tracing` everywhere, pingora's `log` output bridged in, one access line per finished stream.
//!
//! - Level and per-module filters from `RUST_LOG` (`tracing_subscriber::EnvFilter` syntax); default
//!   [`DEFAULT_FILTER`].
//! - `--log-format text` (human) or `json` (one JSON object per line), always to stderr.
//! - pingora logs through the `log` crate; [`init`] installs `tracing_log::LogTracer` so those records
//!   go through the same filter and formatter (their target is the pingora module path, e.g.
//!   `pingora_core::server`).
//! - [`access`] writes one line per finished stream with target `ssegate::access`, so it can be
//!   filtered on its own (`RUST_LOG=info,ssegate::access=off`).

use std::io::IsTerminal;
use std::time::Duration;

use std::fmt::{self, Write as _};

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::metrics::Outcome;

/// `--log-format`
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The filter used when `RUST_LOG` is unset. pingora's own `info` lines are start-up and shutdown
/// milestones only ("Server starting", "Graceful shutdown: grace period 60s starts"), worth keeping;
/// its per-connection noise is at `debug` and below.
pub const DEFAULT_FILTER: &str = "info";

/// The target of the access log lines.
pub const ACCESS_TARGET: &str = "ssegate::access";

/// Installs the global subscriber (level from `RUST_LOG`, default `info`) and the `log` bridge.
/// A second call (or a subscriber installed by someone else) is left alone.
pub fn init(format: LogFormat) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => match EnvFilter::try_new(&spec) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("ssegate: invalid RUST_LOG {spec:?} ({e}); using {DEFAULT_FILTER:?}");
                EnvFilter::new(DEFAULT_FILTER)
            }
        },
        _ => EnvFilter::new(DEFAULT_FILTER),
    };
    let ansi = format == LogFormat::Text && std::io::stderr().is_terminal();
    let subscriber = build(format, filter, std::io::stderr, ansi);
    if tracing::subscriber::set_global_default(subscriber).is_ok() {
        // Forward `log` records (pingora) into tracing; `log`'s own max level follows the filter, but never
        // beyond `debug`: pingora's `trace` records dump raw request heads sent upstream, credentials
        // injected by `upstream_headers` included.
        let max =
            tracing::level_filters::LevelFilter::current().min(tracing::level_filters::LevelFilter::DEBUG);
        let _ = tracing_log::LogTracer::builder().with_max_level(level_to_log(max)).init();
    }
}

fn level_to_log(level: tracing::level_filters::LevelFilter) -> tracing_log::log::LevelFilter {
    use tracing::level_filters::LevelFilter as T;
    use tracing_log::log::LevelFilter as L;
    match level {
        T::OFF => L::Off,
        T::ERROR => L::Error,
        T::WARN => L::Warn,
        T::INFO => L::Info,
        T::DEBUG => L::Debug,
        _ => L::Trace,
    }
}

/// The subscriber `init` installs, writing to `writer` (tests capture it).
fn build<W>(format: LogFormat, filter: EnvFilter, writer: W, ansi: bool) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.with_ansi(ansi).finish()),
        LogFormat::Json => Box::new(builder.event_format(JsonLine).finish()),
    }
}

/// One JSON object per event: `timestamp`, `level`, `message`, the event's fields, `target`.
///
/// Like `tracing_subscriber`'s flattened JSON format, except that records bridged from the `log` crate
/// get their real target and lose the `log.file` / `log.line` / `log.module_path` / `log.target`
/// bookkeeping fields (which would otherwise put build paths into every pingora line).
#[derive(Debug, Clone, Copy)]
struct JsonLine;

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let mut fields = JsonFields(Vec::with_capacity(16));
        event.record(&mut fields);

        let mut line = String::with_capacity(256);
        line.push('{');
        push_entry(&mut line, "timestamp", &Value::String(timestamp))?;
        line.push(',');
        push_entry(&mut line, "level", &Value::String(meta.level().as_str().to_owned()))?;
        for (name, value) in &fields.0 {
            line.push(',');
            push_entry(&mut line, name, value)?;
        }
        line.push(',');
        push_entry(&mut line, "target", &Value::String(meta.target().to_owned()))?;
        line.push('}');
        writeln!(writer, "{line}")
    }
}

fn push_entry(line: &mut String, key: &str, value: &Value) -> fmt::Result {
    let key = serde_json::to_string(key).map_err(|_| fmt::Error)?;
    let value = serde_json::to_string(value).map_err(|_| fmt::Error)?;
    write!(line, "{key}:{value}")
}

/// Collects an event's fields as JSON values, in order, without the `log.*` bridge fields.
struct JsonFields(Vec<(&'static str, Value)>);

impl JsonFields {
    fn push(&mut self, field: &Field, value: Value) {
        if !field.name().starts_with("log.") {
            self.0.push((field.name(), value));
        }
    }
}

impl Visit for JsonFields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let v = serde_json::Number::from_f64(value)
            .map_or_else(|| Value::String(value.to_string()), Value::Number);
        self.push(field, v);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Value::Bool(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, Value::String(value.to_owned()));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field, Value::String(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, Value::String(format!("{value:?}")));
    }
}

/// One finished stream (or non-streaming exchange).
#[derive(Debug)]
pub struct AccessRecord<'a> {
    /// The request id (`X-Request-Id`, the client's when sane, else generated).
    pub request_id: &'a str,
    /// The client address: the peer, or behind `trusted_proxies` the rightmost untrusted
    /// `X-Forwarded-For` address.
    pub client: Option<std::net::IpAddr>,
    /// The upstream's own request id (`[server] upstream_request_id_headers`).
    pub upstream_request_id: Option<&'a str>,
    pub route: &'a str,
    pub method: &'a str,
    /// Path without the query string.
    pub path: &'a str,
    pub upstream_status: Option<u16>,
    /// A frame format name, or "passthrough".
    pub format: &'a str,
    pub outcome: Outcome,
    pub duration: Duration,
    pub first_event: Option<Duration>,
    /// Events delivered to the client.
    pub events: u64,
    /// Events decoded after the client left and delivered to nobody (`on_disconnect = "drain"`); `None`
    /// when no drain ran.
    pub drained_events: Option<u64>,
    /// What `on_disconnect` did after the client left mid-stream (`aborted`, `completed`, `failed`,
    /// `detach_timeout`); `None` when it did not leave.
    pub disconnect: Option<&'static str>,
    /// A resume request: the seq it resumed after (`Last-Event-ID` / `?after=`); the stream's id is in `path`
    /// for `/_streams/<stream>`.
    pub resumed_from: Option<u64>,
    pub bytes_out: u64,
    pub heartbeats: u64,
    /// The error type when the stream ended in an error (`upstream_reset`, ...).
    pub error: Option<&'static str>,
    /// The backend whose answer was used (or the last one tried): its `name`.
    pub backend: Option<&'a str>,
    /// Backends tried (0 when the request was refused before any).
    pub attempts: u32,
    /// Token usage and model reported by the stream (routes with `provider`).
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub model: Option<&'a str>,
}

/// Milliseconds with microsecond precision.
fn ms(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}

/// Writes the access line for `rec` (target `ssegate::access`, level info).
///
/// Fields: `request_id client route method path upstream_status upstream_request_id format outcome
/// duration_ms first_event_ms events drained_events disconnect resumed_from bytes heartbeats error backend
/// attempts input_tokens output_tokens model`; `client`, `upstream_status`, `upstream_request_id`,
/// `first_event_ms`, `drained_events` (only after a drain or detach), `disconnect` (only when the client
/// left mid-stream), `resumed_from` (only on resume requests), `error`, `backend` and the usage fields are
/// left out when unknown.
/// The path is cut at `?` even if the caller forgot to.
pub fn access(rec: &AccessRecord<'_>) {
    let path = rec.path.split('?').next().unwrap_or(rec.path);
    tracing::info!(
        target: ACCESS_TARGET,
        request_id = rec.request_id,
        client = rec.client.map(tracing::field::display),
        route = rec.route,
        method = rec.method,
        path = path,
        upstream_status = rec.upstream_status,
        upstream_request_id = rec.upstream_request_id,
        format = rec.format,
        outcome = rec.outcome.as_str(),
        duration_ms = ms(rec.duration),
        first_event_ms = rec.first_event.map(ms),
        events = rec.events,
        drained_events = rec.drained_events,
        disconnect = rec.disconnect,
        resumed_from = rec.resumed_from,
        bytes = rec.bytes_out,
        heartbeats = rec.heartbeats,
        error = rec.error,
        backend = rec.backend,
        attempts = rec.attempts,
        input_tokens = rec.input_tokens,
        output_tokens = rec.output_tokens,
        model = rec.model,
        "stream finished"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A `MakeWriter` collecting everything into a shared buffer.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Capture {
            self.clone()
        }
    }

    impl Capture {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn record() -> AccessRecord<'static> {
        AccessRecord {
            request_id: "rid-1",
            client: Some(std::net::IpAddr::from([192, 0, 2, 1])),
            upstream_request_id: Some("req_abc"),
            route: "openai",
            method: "POST",
            path: "/v1/chat/completions?key=secret",
            upstream_status: Some(200),
            format: "sse",
            outcome: Outcome::Completed,
            duration: Duration::from_micros(1_234_567),
            first_event: Some(Duration::from_micros(250_500)),
            events: 42,
            drained_events: None,
            disconnect: None,
            resumed_from: None,
            bytes_out: 4096,
            heartbeats: 3,
            error: None,
            backend: Some("a"),
            attempts: 1,
            input_tokens: Some(12),
            output_tokens: Some(3),
            model: Some("gpt-4o"),
        }
    }

    fn capture(format: LogFormat, filter: &str, f: impl FnOnce()) -> String {
        let cap = Capture::default();
        let sub = build(format, EnvFilter::new(filter), cap.clone(), false);
        tracing::subscriber::with_default(sub, f);
        cap.text()
    }

    #[test]
    fn access_line_json() {
        let out = capture(LogFormat::Json, "info", || access(&record()));
        let line = out.lines().next().unwrap();
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["target"], "ssegate::access");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["message"], "stream finished");
        assert_eq!(v["route"], "openai");
        assert_eq!(v["request_id"], "rid-1");
        assert_eq!(v["client"], "192.0.2.1");
        assert_eq!(v["upstream_request_id"], "req_abc");
        assert_eq!(v["method"], "POST");
        assert_eq!(v["path"], "/v1/chat/completions");
        assert_eq!(v["upstream_status"], 200);
        assert_eq!(v["format"], "sse");
        assert_eq!(v["outcome"], "completed");
        assert_eq!(v["duration_ms"], 1234.567);
        assert_eq!(v["first_event_ms"], 250.5);
        assert_eq!(v["events"], 42);
        assert_eq!(v["bytes"], 4096);
        assert_eq!(v["heartbeats"], 3);
        assert_eq!((v["input_tokens"].as_u64(), v["output_tokens"].as_u64()), (Some(12), Some(3)));
        assert_eq!(v["model"], "gpt-4o");
        assert!(v.get("error").is_none(), "{line}");
        assert!(v.get("drained_events").is_none(), "{line}");
        assert!(v.get("disconnect").is_none() && v.get("resumed_from").is_none(), "{line}");
        assert!(!line.contains("secret"));
    }

    #[test]
    fn access_line_json_with_error_and_unknowns() {
        let rec = AccessRecord {
            upstream_status: None,
            first_event: None,
            outcome: Outcome::UpstreamError,
            error: Some("upstream_reset"),
            drained_events: Some(7),
            disconnect: Some("detach_timeout"),
            resumed_from: Some(5),
            ..record()
        };
        let out = capture(LogFormat::Json, "info", || access(&rec));
        let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
        assert_eq!(v["outcome"], "upstream_error");
        assert_eq!(v["error"], "upstream_reset");
        assert_eq!(v["drained_events"], 7);
        assert_eq!((v["disconnect"].as_str(), v["resumed_from"].as_u64()), (Some("detach_timeout"), Some(5)));
        assert!(v.get("upstream_status").is_none());
        assert!(v.get("first_event_ms").is_none());
    }

    #[test]
    fn access_line_text() {
        let out = capture(LogFormat::Text, "info", || access(&record()));
        assert!(out.contains("INFO"), "{out}");
        assert!(out.contains("ssegate::access"), "{out}");
        assert!(out.contains("stream finished"), "{out}");
        assert!(out.contains("route=\"openai\""), "{out}");
        assert!(out.contains("outcome=\"completed\""), "{out}");
        assert!(out.contains("duration_ms=1234.567"), "{out}");
        assert!(out.contains("events=42"), "{out}");
        assert!(!out.contains("secret"), "{out}");
        assert!(!out.contains('\u{1b}'), "no colours when not a terminal: {out}");
    }

    #[test]
    fn access_log_can_be_filtered_out() {
        let out = capture(LogFormat::Json, "info,ssegate::access=off", || {
            access(&record());
            tracing::info!("other");
        });
        assert!(!out.contains("stream finished"), "{out}");
        assert!(out.contains("other"), "{out}");
    }

    #[test]
    fn log_crate_records_are_bridged() {
        // The global `log` logger is process-wide: install the bridge (or find it installed).
        let _ = tracing_log::LogTracer::init();
        let out = capture(LogFormat::Json, "info,pingora_core=warn", || {
            tracing_log::log::warn!(target: "pingora_core::server", "from log at warn");
            tracing_log::log::info!(target: "pingora_core::server", "from log at info");
            tracing_log::log::info!(target: "some_crate", "other crate at info");
        });
        assert!(out.contains("from log at warn"), "{out}");
        assert!(!out.contains("from log at info"), "{out}");
        assert!(out.contains("other crate at info"), "{out}");
        assert!(out.contains("\"target\":\"pingora_core::server\""), "{out}");
        for line in out.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
            assert!(keys.iter().all(|k| !k.starts_with("log.")), "{line}");
            assert!(
                v["message"].is_string() && v["level"].is_string() && v["timestamp"].is_string(),
                "{line}"
            );
        }
    }

    #[test]
    fn json_lines_keep_field_order_and_types() {
        let out = capture(LogFormat::Json, "info", || {
            let err = std::io::Error::other("boom \"quoted\"\nnext");
            tracing::warn!(a = 1u64, b = -2i64, c = 0.5f64, d = true, e = "s", f = ?vec![1, 2], g = f64::NAN,
                err = &err as &(dyn std::error::Error + 'static), "hello {}", "world");
        });
        assert_eq!(out.lines().count(), 1, "{out}");
        let line = out.lines().next().unwrap();
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["message"], "hello world");
        assert_eq!((v["a"].clone(), v["b"].clone(), v["c"].clone()), (1.into(), (-2).into(), 0.5.into()));
        assert_eq!(
            (v["d"].clone(), v["e"].clone(), v["f"].clone()),
            (true.into(), "s".into(), "[1, 2]".into())
        );
        assert_eq!(v["g"], "NaN");
        assert_eq!(v["err"], "boom \"quoted\"\nnext");
        assert_eq!(v["target"], "ssegate::logging::tests");
        let ts = line.find("\"timestamp\"").unwrap();
        let msg = line.find("\"message\"").unwrap();
        let target = line.find("\"target\"").unwrap();
        assert!(ts < msg && msg < target, "{line}");
    }

    #[test]
    fn init_twice_does_not_panic() {
        init(LogFormat::Text);
        init(LogFormat::Json);
        tracing::info!("after init");
    }

    #[test]
    fn level_mapping() {
        use tracing::level_filters::LevelFilter as T;
        use tracing_log::log::LevelFilter as L;
        assert_eq!(level_to_log(T::OFF), L::Off);
        assert_eq!(level_to_log(T::INFO), L::Info);
        assert_eq!(level_to_log(T::TRACE), L::Trace);
    }
}
