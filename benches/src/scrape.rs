//! Scraping a URL (the admin `/metrics`): one GET (`loadgen stream --scrape` during a window) and the CPU a
//! process spends per GET (`loadgen scrape`, run.sh's "CPU per /metrics scrape").

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::http::Url;
use crate::procfs;

/// One GET of `url` (`Connection: close`): the size of the whole answer (head and body), or why it failed
/// (no connection, no answer within 5 s, not 200).
pub async fn get_once(url: &Url) -> Result<usize, String> {
    let mut sock = TcpStream::connect(url.addr).await.map_err(|e| e.to_string())?;
    sock.write_all(&url.request("GET", None, &[])).await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    timeout(Duration::from_secs(5), sock.read_to_end(&mut out))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    if !out.starts_with(b"HTTP/1.1 200") {
        return Err("not 200".into());
    }
    Ok(out.len())
}

/// `count` GETs of `url`, one after another, and the CPU time of `pids` (summed) over them: the result file
/// of kind `scrape`.
pub async fn cost(url: &Url, count: u64, pids: &[u32], target: &str) -> Result<Value, String> {
    let before = procfs::cpu_ns_all(pids);
    let mut bytes = 0;
    for _ in 0..count {
        bytes = get_once(url).await.map_err(|e| format!("GET {}: {e}", url.target))?;
    }
    let after = procfs::cpu_ns_all(pids);
    Ok(result(target, count, bytes, after.saturating_sub(before)))
}

/// The result of `scrapes` GETs whose last answer had `bytes` bytes and that cost `cpu_ns` of CPU in all;
/// milliseconds per scrape rounded to µs.
pub fn result(target: &str, scrapes: u64, bytes: usize, cpu_ns: u64) -> Value {
    let per_ms = if scrapes == 0 { 0.0 } else { cpu_ns as f64 / scrapes as f64 / 1e6 };
    json!({
        "kind": "scrape",
        "target": target,
        "scenario": "scrape",
        "scrapes": scrapes,
        "bytes": bytes,
        "cpu_ms_per_scrape": (per_ms * 1e3).round() / 1e3,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn result_is_cpu_per_scrape_in_ms() {
        let r = result("ssegate", 20, 30_000, 7_000_123);
        assert_eq!(r["kind"], "scrape");
        assert_eq!(r["scenario"], "scrape");
        assert_eq!(r["target"], "ssegate");
        assert_eq!(r["scrapes"], 20);
        assert_eq!(r["bytes"], 30_000);
        assert_eq!(r["cpu_ms_per_scrape"], 0.35);
        assert_eq!(result("x", 3, 1, 1_000_000)["cpu_ms_per_scrape"], 0.333);
        assert_eq!(result("x", 0, 0, 5)["cpu_ms_per_scrape"], 0.0);
    }

    /// A server answering `answers` in turn, one connection each, split into two writes.
    async fn serve(answers: Vec<&'static [u8]>) -> Url {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for answer in answers {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut head = [0u8; 1024];
                let _ = s.read(&mut head).await.unwrap();
                let (a, b) = answer.split_at(answer.len() / 2);
                s.write_all(a).await.unwrap();
                s.flush().await.unwrap();
                s.write_all(b).await.unwrap();
            }
        });
        Url::parse(&format!("http://{addr}/metrics")).unwrap()
    }

    #[tokio::test]
    async fn counts_whole_answers_and_refuses_other_statuses() {
        let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        let url = serve(vec![ok, ok, b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"]).await;
        let r = cost(&url, 2, &[std::process::id()], "me").await.unwrap();
        assert_eq!(r["scrapes"], 2);
        assert_eq!(r["bytes"], ok.len());
        assert!(get_once(&url).await.unwrap_err().contains("not 200"));
        // Nothing listens any more: an error, not a zero.
        assert!(get_once(&url).await.is_err());
    }
}
