//! The gateway's JSON log as test data: every line with its fields flattened, and the access lines
//! (`stream finished`) a test waits for.

use std::time::{Duration, Instant};

use crate::gateway::Gateway;

impl Gateway {
    /// Every JSON line the process logged so far (stderr, then stdout), with tracing-subscriber's `fields`
    /// flattened into the line (the gateway must run with `--log-format json`).
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        format!("{}\n{}", self.stderr(), self.stdout())
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| {
                let mut flat = v.as_object().cloned().unwrap_or_default();
                if let Some(serde_json::Value::Object(f)) = flat.remove("fields") {
                    flat.extend(f);
                }
                serde_json::Value::Object(flat)
            })
            .collect()
    }

    /// The access-log lines (`stream finished`) of [`Gateway::log_lines`].
    pub fn access_lines_now(&self) -> Vec<serde_json::Value> {
        let mut lines = self.log_lines();
        lines.retain(|v| v.get("message").and_then(|m| m.as_str()) == Some("stream finished"));
        lines
    }

    /// [`Gateway::access_lines_now`], waiting up to 5 s until there are `n`.
    pub async fn access_lines(&self, n: usize) -> Vec<serde_json::Value> {
        let t = Instant::now();
        loop {
            let lines = self.access_lines_now();
            if lines.len() >= n || t.elapsed() > Duration::from_secs(5) {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The `n`th access line (from 1), waiting up to `within` for it; panics with the log without it.
    pub async fn access_line(&self, n: usize, within: Duration) -> serde_json::Value {
        let t = Instant::now();
        loop {
            if let Some(l) = self.access_lines_now().into_iter().nth(n - 1) {
                return l;
            }
            assert!(t.elapsed() < within, "no access line #{n} within {within:?}; log:\n{}", self.stderr());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
