//! Scraping the admin listener's `/metrics` and reading the Prometheus text format.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// A parsed scrape.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub status: u16,
    pub content_type: Option<String>,
    pub text: String,
    pub samples: Vec<Sample>,
}

impl Scrape {
    /// `GET /metrics` on the admin listener.
    pub async fn fetch(admin: SocketAddr) -> Scrape {
        let mut resp = crate::request(admin, "GET", "/metrics", &[], b"").await;
        let body = resp.body_to_end().await;
        let text = String::from_utf8(body).expect("metrics are UTF-8");
        let samples = parse(&text);
        Scrape {
            status: resp.status,
            content_type: resp.header("content-type").map(str::to_string),
            text,
            samples,
        }
    }

    /// Scrapes until `pred` holds (up to 3 s: metrics are updated one after another, a moment after the
    /// client saw the response); returns the last scrape either way.
    pub async fn until(admin: SocketAddr, pred: impl Fn(&Scrape) -> bool) -> Scrape {
        let t = Instant::now();
        loop {
            let s = Scrape::fetch(admin).await;
            if pred(&s) || t.elapsed() > Duration::from_secs(3) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The sum of every sample named `name` whose labels include all of `labels`; 0 when there is none.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// Whether any sample named `name` with `labels` exists.
    pub fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.matching(name, labels).next().is_some()
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&str, &str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name && labels.iter().all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
    }

    /// Every sample name.
    pub fn names(&self) -> BTreeSet<String> {
        self.samples.iter().map(|s| s.name.clone()).collect()
    }

    /// The metric family names from `# TYPE` lines.
    pub fn families(&self) -> BTreeSet<String> {
        self.text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect()
    }
}

/// Parses the sample lines of the Prometheus text format (comments skipped).
pub fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = line[..name_end].to_string();
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(r) = rest.strip_prefix('{') {
            let mut chars = r.char_indices().peekable();
            let mut key = String::new();
            let mut end = r.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '}' => {
                        end = i + 1;
                        break;
                    }
                    ',' | ' ' => {}
                    '=' => {
                        // Quoted value with escapes.
                        let _ = chars.next(); // opening quote
                        let mut val = String::new();
                        while let Some((_, c)) = chars.next() {
                            match c {
                                '\\' => match chars.next().map(|(_, c)| c) {
                                    Some('n') => val.push('\n'),
                                    Some(o) => val.push(o),
                                    None => {}
                                },
                                '"' => break,
                                o => val.push(o),
                            }
                        }
                        labels.push((std::mem::take(&mut key), val));
                    }
                    o => key.push(o),
                }
            }
            rest = &r[end..];
        }
        let value_text = rest.split_whitespace().next().unwrap_or("");
        let value = match value_text {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or(f64::NAN),
        };
        out.push(Sample { name, labels, value });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_samples() {
        let s = parse(
            "# HELP a x\n# TYPE a counter\na_total{route=\"r\",kind=\"x\\\"y\"} 3\nb 1.5\nh_bucket{le=\"+Inf\"} 2\n",
        );
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].name, "a_total");
        assert_eq!(s[0].labels, vec![("route".into(), "r".into()), ("kind".into(), "x\"y".into())]);
        assert_eq!(s[0].value, 3.0);
        assert_eq!(s[1].value, 1.5);
        assert_eq!(s[2].labels[0].1, "+Inf");
    }
}
