//! Which output a client gets on a converting route: the route's `outputs` (the first is the default)
//! against the request's `Accept` header (RFC 9110 §12.5.1: the most specific matching media range gives a
//! media type its weight `q`; `q=0` means "not acceptable").
//!
//! The output with the highest weight wins; ties go to the one listed first in `outputs`. Without `Accept`,
//! or when no listed output is acceptable, the first listed is used (a streaming answer is never refused
//! with 406: the client asked for a stream, and SSE is what every client of this route has received so far).

use http::HeaderValue;
use ssegate_frame::encode::Output;

/// The media types that select each output.
fn media_types(output: Output) -> &'static [&'static str] {
    match output {
        Output::Sse => &["text/event-stream"],
        Output::Ndjson => &["application/x-ndjson", "application/jsonl", "application/x-jsonlines"],
        // `Output` is non-exhaustive: a new output is only chosen once it is listed here.
        _ => &[],
    }
}

/// The output for a request with `accept` on a route with `outputs` (never empty; validated by config).
pub fn choose(outputs: &[Output], accept: Option<&HeaderValue>) -> Output {
    let default = outputs.first().copied().unwrap_or_default();
    let Some(accept) = accept.and_then(|a| a.to_str().ok()) else { return default };
    if outputs.len() < 2 {
        return default;
    }
    let mut best: Option<(u32, Output)> = None;
    for &out in outputs {
        let q = media_types(out).iter().filter_map(|t| weight(accept, t)).max();
        if let Some(q) = q.filter(|q| *q > 0) {
            if best.is_none_or(|(b, _)| q > b) {
                best = Some((q, out));
            }
        }
    }
    best.map_or(default, |(_, o)| o)
}

/// The weight (q × 1000) that `accept` gives `media_type` through its most specific matching range;
/// `None` when no range matches.
fn weight(accept: &str, media_type: &str) -> Option<u32> {
    let (ty, _) = media_type.split_once('/')?;
    let mut best: Option<(u8, u32)> = None; // (specificity, q)
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let r = parts.next().unwrap_or("").trim();
        let specificity = if r.eq_ignore_ascii_case(media_type) {
            3
        } else if r.len() == ty.len() + 2 && r[..ty.len()].eq_ignore_ascii_case(ty) && r.ends_with("/*") {
            2
        } else if r == "*/*" {
            1
        } else {
            continue;
        };
        let q = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(1000, |(_, v)| parse_q(v.trim()));
        if best.is_none_or(|(s, _)| specificity > s) {
            best = Some((specificity, q));
        }
    }
    best.map(|(_, q)| q)
}

/// `q` as thousandths (`0.5` → 500); anything unreadable counts as 0 (not acceptable).
fn parse_q(v: &str) -> u32 {
    let Some((int, frac)) = v.split_once('.').or(Some((v, ""))) else { return 0 };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !digits(frac) || frac.len() > 3 || int.is_empty() {
        return 0;
    }
    let whole: u32 = int.parse().unwrap_or(0);
    let mut thousandths: u32 = 0;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u32::from(b - b'0') * [100, 10, 1][i];
    }
    (whole * 1000 + thousandths).min(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: &[Output] = &[Output::Sse, Output::Ndjson];

    fn pick(outputs: &[Output], accept: Option<&str>) -> Output {
        let h = accept.map(|a| HeaderValue::from_str(a).unwrap());
        choose(outputs, h.as_ref())
    }

    #[test]
    fn table() {
        let rows: &[(&[Output], Option<&str>, Output)] = &[
            (BOTH, None, Output::Sse),
            (BOTH, Some("text/event-stream"), Output::Sse),
            (BOTH, Some("application/x-ndjson"), Output::Ndjson),
            (BOTH, Some("application/jsonl"), Output::Ndjson),
            (BOTH, Some("APPLICATION/X-NDJSON; charset=utf-8"), Output::Ndjson),
            (BOTH, Some("*/*"), Output::Sse),
            (BOTH, Some("application/*"), Output::Ndjson),
            (BOTH, Some("text/event-stream;q=0.5, application/x-ndjson"), Output::Ndjson),
            (BOTH, Some("text/event-stream, application/x-ndjson;q=0.9"), Output::Sse),
            (BOTH, Some("text/event-stream, application/x-ndjson"), Output::Sse), // tie: listed first
            (&[Output::Ndjson, Output::Sse], Some("text/event-stream, application/x-ndjson"), Output::Ndjson),
            (&[Output::Ndjson, Output::Sse], None, Output::Ndjson),
            (BOTH, Some("text/event-stream;q=0, */*"), Output::Ndjson),
            (BOTH, Some("application/x-ndjson;q=0"), Output::Sse), // nothing acceptable: the default
            (BOTH, Some("text/html"), Output::Sse),
            (BOTH, Some("application/x-ndjson;q=abc"), Output::Sse),
            // a route that lists only SSE never gives NDJSON
            (&[Output::Sse], Some("application/x-ndjson"), Output::Sse),
        ];
        for (outputs, accept, want) in rows {
            assert_eq!(pick(outputs, *accept), *want, "{outputs:?} {accept:?}");
        }
    }

    #[test]
    fn q_values() {
        assert_eq!(parse_q("1"), 1000);
        assert_eq!(parse_q("1.0"), 1000);
        assert_eq!(parse_q("0.5"), 500);
        assert_eq!(parse_q("0.123"), 123);
        assert_eq!(parse_q("0.1234"), 0);
        assert_eq!(parse_q("2"), 1000);
        assert_eq!(parse_q(""), 0);
        assert_eq!(parse_q("-1"), 0);
    }
}
