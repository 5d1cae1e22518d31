//! Markdown tables from the result files of a `run.sh` run (`loadgen report --dir DIR`), and the one-line
//! human summary of a single result.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

/// Targets in table order, with their display names.
const TARGETS: &[(&str, &str)] = &[
    ("direct-ndjson", "direct: mock NDJSON (floor)"),
    ("direct-sse", "direct: mock SSE (floor)"),
    ("ssegate-ndjson", "ssegate NDJSON→SSE"),
    ("ssegate-usage", "ssegate NDJSON→SSE, provider = \"ollama\" (usage)"),
    ("ssegate-resume", "ssegate NDJSON→SSE, resume (memory store)"),
    ("ssegate-sse", "ssegate SSE→SSE"),
    ("nginx-ndjson", "nginx passthrough (NDJSON)"),
    ("nginx-sse", "nginx passthrough (SSE)"),
    ("litellm", "LiteLLM ollama_chat→SSE"),
];

/// The stream scenarios present, in table order (paced by stream count, then the burst), with titles.
fn scenarios(results: &[Value]) -> Vec<(String, String)> {
    let mut paced: Vec<(u64, String)> = results
        .iter()
        .filter(|r| r["kind"] == "stream")
        .filter_map(|r| {
            let s = r["scenario"].as_str()?;
            let n: u64 = s.strip_prefix("paced-")?.parse().ok()?;
            Some((n, s.to_string()))
        })
        .collect();
    paced.sort();
    paced.dedup();
    let mut out: Vec<(String, String)> = paced
        .into_iter()
        .map(|(n, s)| (s, format!("{n} paced stream{}", if n == 1 { "" } else { "s" })))
        .collect();
    if results.iter().any(|r| r["scenario"] == "burst") {
        out.push(("burst".into(), "Burst (messages as fast as the mock writes them)".into()));
    }
    out
}

fn name(target: &str) -> &str {
    TARGETS.iter().find(|(t, _)| *t == target).map(|(_, n)| *n).unwrap_or(target)
}

fn rank(target: &str) -> usize {
    TARGETS.iter().position(|(t, _)| *t == target).unwrap_or(TARGETS.len())
}

fn f(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// `x` with `digits` decimals, or `–`.
fn num(x: Option<f64>, digits: usize) -> String {
    match x {
        Some(x) if x.is_finite() => format!("{x:.digits$}"),
        _ => "–".into(),
    }
}

/// A value with a magnitude-appropriate number of decimals.
fn auto(x: Option<f64>) -> String {
    match x {
        Some(x) if x.abs() >= 100.0 => num(Some(x), 0),
        Some(x) if x.abs() >= 10.0 => num(Some(x), 1),
        Some(x) => num(Some(x), 2),
        None => "–".into(),
    }
}

fn ratio(x: Option<f64>, base: Option<f64>) -> String {
    match (x, base) {
        (Some(x), Some(b)) if b > 0.0 => format!("{:.2}×", x / b),
        _ => "–".into(),
    }
}

/// One line per result, for the terminal.
pub fn human(r: &Value) -> String {
    match r["kind"].as_str() {
        Some("stream") => format!(
            "{} {}: {} streams, {:.0} events/s, latency p50 {} µs p99 {} µs, ttfe p50 {} µs, proxy CPU {} µs/event, \
             seq lost/dup/reord {}/{}/{}, failed {} {}",
            r["scenario"].as_str().unwrap_or("?"),
            r["target"].as_str().unwrap_or("?"),
            r["streams"],
            f(&r["events_per_s"]).unwrap_or(0.0),
            auto(f(&r["latency"]["p50_us"])),
            auto(f(&r["latency"]["p99_us"])),
            auto(f(&r["ttfe"]["p50_us"])),
            auto(f(&r["cpu_us_per_event"])),
            r["seq"]["lost"],
            r["seq"]["duplicated"],
            r["seq"]["reordered"],
            r["streams_failed"],
            r["errors"],
        ),
        Some("idle") => format!(
            "{} {}: {} of {} streams open, {} KiB RSS per stream, {:.0} heartbeats/s, {} µs CPU per heartbeat, errors {}",
            r["scenario"].as_str().unwrap_or("?"),
            r["target"].as_str().unwrap_or("?"),
            r["streams_open"],
            r["streams"],
            auto(f(&r["kib_per_stream"])),
            f(&r["heartbeats_per_s"]).unwrap_or(0.0),
            auto(f(&r["cpu_us_per_heartbeat"])),
            r["errors"],
        ),
        Some("ready") => format!(
            "ready {}: /readyz 200 after median {} ms, first proxied event after median {} ms ({} failures)",
            r["target"].as_str().unwrap_or("?"),
            auto(f(&r["readyz"]["median_ms"])),
            auto(f(&r["first_event"]["median_ms"])),
            r["failures"],
        ),
        _ => r.to_string(),
    }
}

/// Reads every `*.json` of `dir` (except `meta.json`), prints the Markdown and writes it to `out`.
pub fn run(dir: &Path, out: Option<&Path>) -> Result<(), String> {
    let mut results = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    let mut meta = Value::Null;
    for path in paths {
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if path.file_name().and_then(|n| n.to_str()) == Some("meta.json") {
            meta = v;
        } else {
            results.push(v);
        }
    }
    let md = markdown(&meta, &results);
    if let Some(out) = out {
        std::fs::write(out, &md).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    print!("{md}");
    Ok(())
}

fn find<'a>(results: &'a [Value], scenario: &str, target: &str) -> Option<&'a Value> {
    results.iter().find(|r| r["scenario"] == scenario && r["target"] == target)
}

/// The whole report.
pub fn markdown(meta: &Value, results: &[Value]) -> String {
    let mut md = String::new();
    let s = |v: &Value| v.as_str().unwrap_or("?").to_string();
    let _ = writeln!(md, "## Load benchmarks: {}\n", s(&meta["date"]));
    let _ = writeln!(
        md,
        "- **Machine**: {} CPUs (`nproc`), `{}`, kernel {}; {}.",
        meta["nproc"],
        s(&meta["cpu_model"]),
        s(&meta["kernel"]),
        s(&meta["conditions"])
    );
    let _ = writeln!(md, "- **Versions**: ssegate {}; {}.", s(&meta["ssegate"]), s(&meta["nginx"]));
    let _ = writeln!(md, "- **Pinning**: {}.", s(&meta["pinning"]));
    let _ = writeln!(md, "- **Command**: `{}` (run took {} s).", s(&meta["command"]), meta["run_s"]);
    let _ = writeln!(
        md,
        "- **Load average** before / after: {} / {}.\n",
        s(&meta["load_before"]),
        s(&meta["load_after"])
    );
    let _ = writeln!(
        md,
        "Latency = receive time − the send time the mock embedded in the message (same clock). *Added* = the \
         target's percentile minus the floor's percentile (the mock read directly by the load generator). \
         CPU µs/event = CPU time of the proxy process(es) over the measured window ÷ events delivered in it; \
         events per CPU-second is its inverse (events/s per fully used core).\n"
    );
    for (scenario, title) in &scenarios(results) {
        let scenario = scenario.as_str();
        let mut rows: Vec<&Value> =
            results.iter().filter(|r| r["scenario"] == scenario && r["kind"] == "stream").collect();
        if rows.is_empty() {
            continue;
        }
        rows.sort_by_key(|r| rank(r["target"].as_str().unwrap_or("")));
        let first = rows[0];
        let loads: Vec<f64> = rows.iter().filter_map(|r| f(&r["loadavg_end"])).collect();
        let load = if loads.is_empty() {
            String::new()
        } else {
            let min = loads.iter().copied().fold(f64::INFINITY, f64::min);
            let max = loads.iter().copied().fold(0.0, f64::max);
            format!(" 1-minute load average at the end of each window: {min:.1}–{max:.1}.")
        };
        let _ = writeln!(
            md,
            "### {title}\n\n{} streams, {} messages per stream, mock parameters `{}`; window {} s after a {} s warm-up.{load}\n",
            first["streams"],
            first["expect"],
            first["url"].as_str().and_then(|u| u.split_once('?')).map(|(_, q)| q).unwrap_or(""),
            num(f(&first["window_s"]), 0),
            first["warmup_s"],
        );
        md.push_str(
            "| target | events/s | proxy CPU % | p50 latency µs | p99 latency µs | p50 added µs | p99 added µs | p99 added vs nginx | \
             p50 first event µs | proxy CPU µs/event | vs nginx | events per CPU-s | lost/dup/reord | failed streams |\n",
        );
        md.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        let nginx = find(results, scenario, "nginx-ndjson");
        let added = |r: &Value, q: &str| -> Option<f64> {
            let floor = find(results, scenario, r["floor"].as_str()?)?;
            Some(f(&r["latency"][q])? - f(&floor["latency"][q])?)
        };
        let nginx_added = nginx.and_then(|n| added(n, "p99_us"));
        let nginx_cpu = nginx.and_then(|n| f(&n["cpu_us_per_event"]));
        for r in rows {
            let is_floor = r["floor"].is_null();
            let a50 = added(r, "p50_us");
            let a99 = added(r, "p99_us");
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {}/{}/{} | {} |",
                name(r["target"].as_str().unwrap_or("?")),
                num(f(&r["events_per_s"]), 0),
                if is_floor {
                    "–".into()
                } else {
                    num(f(&r["cpu"]["proxy_cpu_util"]).map(|u| u * 100.0), 0)
                },
                auto(f(&r["latency"]["p50_us"])),
                auto(f(&r["latency"]["p99_us"])),
                if is_floor { "0 (floor)".into() } else { auto(a50) },
                if is_floor { "0 (floor)".into() } else { auto(a99) },
                if is_floor { "–".into() } else { ratio(a99, nginx_added) },
                auto(f(&r["ttfe"]["p50_us"])),
                auto(f(&r["cpu_us_per_event"])),
                ratio(f(&r["cpu_us_per_event"]), nginx_cpu),
                num(f(&r["events_per_cpu_s"]), 0),
                r["seq"]["lost"],
                r["seq"]["duplicated"],
                r["seq"]["reordered"],
                r["streams_failed"],
            );
        }
        md.push('\n');
    }
    idle_table(&mut md, results);
    ready_table(&mut md, results);
    scrape_table(&mut md, results);
    features_table(&mut md, results);
    targets_table(&mut md, results);
    md
}

/// What route features cost on the per-event path, against the same NDJSON route without them (same run, same
/// scenarios): `provider = "ollama"` (end marker and token usage), `resume` with the memory store; and what
/// that store retains per event.
fn features_table(md: &mut String, results: &[Value]) {
    let retained = results.iter().find(|r| r["kind"] == "resume");
    let cpu = |s: &str, t: &str| find(results, s, t).and_then(|r| f(&r["cpu_us_per_event"]));
    let has = |s: &str| cpu(s, "ssegate-usage").is_some() || cpu(s, "ssegate-resume").is_some();
    let order: Vec<String> = scenarios(results).into_iter().map(|(s, _)| s).filter(|s| has(s)).collect();
    if order.is_empty() && retained.is_none() {
        return;
    }
    md.push_str("### What route features cost per event\n\n");
    if !order.is_empty() {
        md.push_str(
            "| scenario | CPU µs/event, plain NDJSON route | with `provider = \"ollama\"` | ratio | with `resume` (memory) | ratio |\n\
             |---|---|---|---|---|---|\n",
        );
        for s in &order {
            let (plain, usage, resume) =
                (cpu(s, "ssegate-ndjson"), cpu(s, "ssegate-usage"), cpu(s, "ssegate-resume"));
            let _ = writeln!(
                md,
                "| {s} | {} | {} | {} | {} | {} |",
                auto(plain),
                auto(usage),
                ratio(usage, plain),
                auto(resume),
                ratio(resume, plain)
            );
        }
        md.push('\n');
    }
    if let Some(r) = retained {
        let events = f(&r["events"]).filter(|e| *e > 0.0);
        let bytes = f(&r["retained_bytes"]);
        let rss = f(&r["rss_kib"]).zip(f(&r["rss_start_kib"])).map(|(a, b)| (a - b) * 1024.0);
        let _ = writeln!(
            md,
            "Resume: after the paced scenarios (every stream kept for its `ttl`): {} events recorded, **{} bytes \
             retained per event** by the store's count (event names and data), {} bytes of RSS growth per event \
             since the process started.\n",
            auto(events),
            auto(bytes.zip(events).map(|(b, e)| b / e)),
            auto(rss.zip(events).map(|(r, e)| r / e)),
        );
    }
}

fn idle_table(md: &mut String, results: &[Value]) {
    let mut rows: Vec<&Value> = results.iter().filter(|r| r["kind"] == "idle").collect();
    if rows.is_empty() {
        return;
    }
    rows.sort_by_key(|r| rank(r["target"].as_str().unwrap_or("")));
    let _ = writeln!(
        md,
        "### Idle streams\n\n{} streams held open for {} s (mock sends headers, then nothing); RSS per stream = \
         (RSS with the streams open − RSS before) ÷ open streams.\n",
        rows[0]["streams"], rows[0]["hold_s"]
    );
    md.push_str("| target | streams open | RSS before MiB | RSS open MiB | KiB per open stream | vs nginx | heartbeats/s | CPU µs per heartbeat | CPU % of a core | failed |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    let nginx = rows
        .iter()
        .find(|r| r["target"].as_str().is_some_and(|t| t.starts_with("nginx")))
        .and_then(|r| f(&r["kib_per_stream"]));
    for r in rows {
        let mib = |v: &Value| num(f(v).map(|k| k / 1024.0), 1);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            name(r["target"].as_str().unwrap_or("?")),
            r["streams_open"],
            mib(&r["rss_kib"]["base"]),
            mib(&r["rss_kib"]["open"]),
            auto(f(&r["kib_per_stream"])),
            ratio(f(&r["kib_per_stream"]), nginx),
            num(f(&r["heartbeats_per_s"]), 0),
            auto(f(&r["cpu_us_per_heartbeat"])),
            num(f(&r["cpu"]["proxy_cpu_util"]).map(|u| u * 100.0), 1),
            r["streams_failed"],
        );
    }
    md.push('\n');
}

fn ready_table(md: &mut String, results: &[Value]) {
    let rows: Vec<&Value> = results.iter().filter(|r| r["kind"] == "ready").collect();
    if rows.is_empty() {
        return;
    }
    md.push_str("### Start → ready\n\nProcess spawned → first `200` from `/readyz`, and → first event of a proxied stream.\n\n");
    md.push_str("| target | runs | /readyz median ms | min | max | first proxied event median ms | min | max |\n|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r["target"].as_str().unwrap_or("?"),
            r["readyz"]["runs"],
            auto(f(&r["readyz"]["median_ms"])),
            auto(f(&r["readyz"]["min_ms"])),
            auto(f(&r["readyz"]["max_ms"])),
            auto(f(&r["first_event"]["median_ms"])),
            auto(f(&r["first_event"]["min_ms"])),
            auto(f(&r["first_event"]["max_ms"])),
        );
    }
    md.push('\n');
}

fn scrape_table(md: &mut String, results: &[Value]) {
    let with: Vec<&Value> = results
        .iter()
        .filter(|r| r["kind"] == "stream" && r["scrape"]["ok"].as_u64().unwrap_or(0) > 0)
        .collect();
    let probe = results.iter().find(|r| r["kind"] == "scrape");
    if with.is_empty() && probe.is_none() {
        return;
    }
    md.push_str("### Cost of scraping `/metrics` once a second\n\n");
    if let Some(p) = probe {
        let ms = f(&p["cpu_ms_per_scrape"]);
        let _ = writeln!(
            md,
            "Measured directly: {} scrapes of a quiet ssegate whose every series is populated ({} bytes each) cost \
             **{} ms of CPU per scrape**, i.e. {} % of one core at one scrape per second.\n",
            p["scrapes"],
            p["bytes"],
            auto(ms),
            num(ms.map(|m| m / 10.0), 2),
        );
    }
    if with.is_empty() {
        return;
    }
    md.push_str("Under load: the same scenario with and without a `GET /metrics` every second during the window (differences of a few per cent are run-to-run noise).\n\n");
    md.push_str("| scenario | target | CPU µs/event without | with | difference | scrapes | extra CPU per scrape ms | p99 latency µs without / with |\n|---|---|---|---|---|---|---|---|\n");
    for r in with {
        let scenario = r["scenario"].as_str().unwrap_or("");
        let base_scenario = scenario.strip_suffix("-scrape").unwrap_or(scenario);
        let target = r["target"].as_str().unwrap_or("");
        let Some(base) = find(results, base_scenario, target) else { continue };
        let (c0, c1) = (f(&base["cpu_us_per_event"]), f(&r["cpu_us_per_event"]));
        let per_scrape = (|| {
            let util0 = f(&base["cpu"]["proxy_cpu_util"])?;
            let util1 = f(&r["cpu"]["proxy_cpu_util"])?;
            let extra_s = (util1 - util0) * f(&r["window_s"])?;
            Some(extra_s * 1e3 / r["scrape"]["ok"].as_f64()?)
        })();
        let _ = writeln!(
            md,
            "| {base_scenario} | {} | {} | {} | {} | {} | {} | {} / {} |",
            name(target),
            auto(c0),
            auto(c1),
            match (c0, c1) {
                (Some(a), Some(b)) if a > 0.0 => format!("{:+.1} %", (b - a) / a * 100.0),
                _ => "–".into(),
            },
            r["scrape"]["ok"],
            auto(per_scrape),
            auto(f(&base["latency"]["p99_us"])),
            auto(f(&r["latency"]["p99_us"])),
        );
    }
    md.push('\n');
}

fn targets_table(md: &mut String, results: &[Value]) {
    let mut rows: Vec<(String, String, Option<bool>)> = Vec::new();
    let verdict = |ok: Option<bool>| match ok {
        Some(true) => "**met**",
        Some(false) => "**missed**",
        None => "not measured",
    };
    // The two largest paced scenarios (50 and 500 streams in a full run).
    let paced: Vec<String> =
        scenarios(results).into_iter().map(|(s, _)| s).filter(|s| s.starts_with("paced-")).collect();
    for scenario in paced.iter().rev().take(2).rev().map(String::as_str) {
        let s = find(results, scenario, "ssegate-ndjson").and_then(|r| f(&r["latency"]["p99_us"]));
        let n = find(results, scenario, "nginx-ndjson").and_then(|r| f(&r["latency"]["p99_us"]));
        let floor = find(results, scenario, "direct-ndjson").and_then(|r| f(&r["latency"]["p99_us"]));
        let ok = s.zip(n).map(|(s, n)| s <= n);
        let added = |x: Option<f64>| auto(x.zip(floor).map(|(x, fl)| x - fl));
        rows.push((
            format!("p99 added latency, ssegate NDJSON→SSE ≤ nginx passthrough ({scenario})"),
            format!("{} µs vs {} µs (p99 {} vs {} µs)", added(s), added(n), auto(s), auto(n)),
            ok,
        ));
    }
    // CPU per event, per scenario: paced traffic (one message per upstream write) and bursts differ by 20×.
    let order: Vec<String> = paced.iter().cloned().chain(std::iter::once("burst".to_string())).collect();
    for s in &order {
        if let Some(c) = find(results, s, "ssegate-ndjson").and_then(|r| f(&r["cpu_us_per_event"])) {
            let nginx = find(results, s, "nginx-ndjson").and_then(|r| f(&r["cpu_us_per_event"]));
            rows.push((
                format!("CPU per event ≤ 5 µs, ssegate NDJSON→SSE ({s})"),
                format!("{} µs/event (nginx passthrough: {})", auto(Some(c)), auto(nginx)),
                Some(c <= 5.0),
            ));
        }
    }
    // Events per CPU-second against LiteLLM, in every scenario both ran.
    let eps = |s: &str, t: &str| find(results, s, t).and_then(|r| f(&r["events_per_cpu_s"]));
    let mut litellm = false;
    for s in &order {
        if let (Some(a), Some(b)) = (eps(s, "ssegate-ndjson"), eps(s, "litellm")) {
            litellm = true;
            rows.push((
                format!("≥ 50× LiteLLM's events/s per core ({s})"),
                format!("{a:.0} vs {b:.0} events per CPU-second: {:.0}×", a / b),
                Some(a >= 50.0 * b),
            ));
        }
    }
    if !litellm {
        rows.push((
            "≥ 50× LiteLLM's events/s per core".into(),
            "LiteLLM not run (`--with-litellm`)".into(),
            None,
        ));
    }
    if let Some(r) = results.iter().find(|r| r["kind"] == "idle" && r["target"] == "ssegate") {
        let k = f(&r["kib_per_stream"]);
        rows.push((
            format!("≤ 8 KiB RSS per idle open stream ({} streams)", r["streams_open"]),
            format!("{} KiB", auto(k)),
            k.map(|k| k <= 8.0),
        ));
    }
    if let Some(r) = results.iter().find(|r| r["kind"] == "ready" && r["target"] == "ssegate") {
        let m = f(&r["readyz"]["median_ms"]);
        rows.push((
            "ready < 50 ms after process start".into(),
            format!("median {} ms", auto(m)),
            m.map(|m| m < 50.0),
        ));
    }
    md.push_str("### Targets\n\n| target | measured | verdict |\n|---|---|---|\n");
    for (t, m, ok) in rows {
        let _ = writeln!(md, "| {t} | {m} | {} |", verdict(ok));
    }
    md.push('\n');
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn stream(target: &str, floor: Option<&str>, p99: f64, cpu: f64) -> Value {
        json!({
            "kind": "stream", "scenario": "paced-50", "target": target, "floor": floor, "streams": 50, "expect": 200,
            "url": "http://127.0.0.1:1/api/chat?n=200", "window_s": 8.0, "warmup_s": 1.0, "events_per_s": 5000.0,
            "latency": {"p50_us": p99 / 2.0, "p99_us": p99}, "ttfe": {"p50_us": 300.0},
            "cpu_us_per_event": cpu, "events_per_cpu_s": 1e6 / cpu,
            "seq": {"lost": 0, "duplicated": 0, "reordered": 0}, "streams_failed": 0, "scrape": {"ok": 0},
        })
    }

    #[test]
    fn tables_and_verdicts() {
        let results = vec![
            stream("direct-ndjson", None, 100.0, 0.0),
            stream("ssegate-ndjson", Some("direct-ndjson"), 150.0, 4.0),
            stream("nginx-ndjson", Some("direct-ndjson"), 200.0, 8.0),
        ];
        let md = markdown(&json!({"date": "2026-11-21"}), &results);
        assert!(md.contains("### 50 paced streams"), "{md}");
        // ssegate: 50 µs added vs nginx 100 µs added; CPU 4 vs 8.
        assert!(md.contains("| ssegate NDJSON→SSE | 5000 | – | 75.0 | 150 | 25.0 | 50.0 | 0.50× | 300 | 4.00 | 0.50× | 250000 | 0/0/0 | 0 |"), "{md}");
        assert!(
            md.contains(
                "| p99 added latency, ssegate NDJSON→SSE ≤ nginx passthrough (paced-50) | 50.0 µs vs 100 µs"
            ),
            "{md}"
        );
        assert!(md.contains("(paced-50) | 50.0 µs vs 100 µs (p99 150 vs 200 µs) | **met** |"), "{md}");
        assert!(
            md.contains("| CPU per event ≤ 5 µs, ssegate NDJSON→SSE (paced-50) | 4.00 µs/event (nginx passthrough: 8.00) | **met** |"),
            "{md}"
        );
        assert!(md.contains("LiteLLM not run"), "{md}");
        assert!(!md.contains("### What route features cost"), "{md}");
    }

    #[test]
    fn feature_costs_and_resume_retention() {
        let results = vec![
            stream("ssegate-ndjson", Some("direct-ndjson"), 150.0, 4.0),
            stream("ssegate-usage", Some("direct-ndjson"), 150.0, 4.2),
            stream("ssegate-resume", Some("direct-ndjson"), 160.0, 5.0),
            json!({"kind": "resume", "target": "ssegate-resume", "scenario": "resume-retained",
                   "retained_bytes": 20000, "events": 200, "rss_kib": 1100, "rss_start_kib": 1000}),
        ];
        let md = markdown(&json!({"date": "2026-11-27"}), &results);
        assert!(md.contains("| paced-50 | 4.00 | 4.20 | 1.05× | 5.00 | 1.25× |"), "{md}");
        assert!(md.contains("200 events recorded, **100 bytes retained per event**"), "{md}");
        assert!(md.contains("512 bytes of RSS growth per event"), "{md}");
    }

    #[test]
    fn number_formats() {
        assert_eq!(auto(Some(1234.5)), "1234");
        assert_eq!(auto(Some(12.345)), "12.3");
        assert_eq!(auto(Some(1.2345)), "1.23");
        assert_eq!(auto(None), "–");
        assert_eq!(ratio(Some(3.0), Some(2.0)), "1.50×");
        assert_eq!(ratio(Some(3.0), Some(0.0)), "–");
    }
}
