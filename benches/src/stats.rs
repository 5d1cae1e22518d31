//! Latency histograms and their JSON summaries.

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// A histogram of nanosecond values from 1 ns to 10 minutes, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts.
    Histogram::new_with_bounds(1, 600_000_000_000, 3).unwrap_or_else(|_| unreachable!())
}

/// Records `ns`, clamped into the histogram's range.
pub fn record(h: &mut Histogram<u64>, ns: u64) {
    h.saturating_record(ns.max(1));
}

/// Percentiles in microseconds: `{count, p50_us, p90_us, p99_us, p999_us, max_us, mean_us}`.
pub fn summary(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({ "count": 0 });
    }
    let us = |ns: u64| (ns as f64 / 1_000.0 * 10.0).round() / 10.0;
    json!({
        "count": h.len(),
        "p50_us": us(h.value_at_quantile(0.50)),
        "p90_us": us(h.value_at_quantile(0.90)),
        "p99_us": us(h.value_at_quantile(0.99)),
        "p999_us": us(h.value_at_quantile(0.999)),
        "max_us": us(h.max()),
        "mean_us": (h.mean() / 100.0).round() / 10.0,
    })
}

/// The median of a list of values (`None` when empty).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn percentiles_in_microseconds() {
        let mut h = histogram();
        for i in 1..=100u64 {
            record(&mut h, i * 1_000);
        }
        record(&mut h, 0);
        let s = summary(&h);
        assert_eq!(s["count"], 101);
        assert_eq!(s["p50_us"], 50.0);
        assert_eq!(s["p99_us"], 99.0);
        assert_eq!(s["max_us"], 100.0);
        assert_eq!(summary(&histogram())["count"], 0);
        // Out of range: clamped to the top of the range (10 minutes), not dropped, no panic.
        record(&mut h, u64::MAX);
        let s = summary(&h);
        assert_eq!(s["count"], 102);
        let max_us = s["max_us"].as_f64().unwrap();
        assert!(max_us <= h.max() as f64 / 1_000.0 + 1.0);
        assert!((600e6..=610e6).contains(&max_us), "{max_us}");
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
