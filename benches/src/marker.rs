//! The marker every benchmark message carries: `@@<seq>:<send time ns>@@`.
//!
//! It sits inside the message's text (Ollama `message.content`, OpenAI `delta.content`, …) so that it
//! survives any proxy that re-frames or re-serialises the message (ssegate, nginx, LiteLLM). The send time
//! is `CLOCK_REALTIME` in nanoseconds since the Unix epoch; sender and receiver run on the same machine.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// `CLOCK_REALTIME` now, in nanoseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// Appends `@@<seq>:<t_ns>@@` to `out`.
pub fn write(seq: u64, t_ns: u64, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail.
    let _ = write!(out, "@@{seq}:{t_ns}@@");
}

/// The first well-formed marker in `data`: `(seq, t_ns)`.
pub fn find(data: &[u8]) -> Option<(u64, u64)> {
    let mut from = 0;
    while let Some(pos) = memchr::memmem::find(&data[from..], b"@@") {
        let start = from + pos + 2;
        if let Some(found) = parse_at(&data[start..]) {
            return Some(found);
        }
        from = start - 1;
    }
    None
}

/// Parses `<digits>:<digits>@@` at the start of `s`.
fn parse_at(s: &[u8]) -> Option<(u64, u64)> {
    let (seq, rest) = digits(s)?;
    let rest = rest.strip_prefix(b":")?;
    let (t, rest) = digits(rest)?;
    rest.starts_with(b"@@").then_some((seq, t))
}

fn digits(s: &[u8]) -> Option<(u64, &[u8])> {
    let len = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 || len > 19 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in &s[..len] {
        v = v * 10 + u64::from(b - b'0');
    }
    Some((v, &s[len..]))
}

/// Latency of an event received at `recv_ns` that was sent at `sent_ns`, in nanoseconds. A receive time
/// before the send time (clock adjustment) counts as 0.
pub fn latency_ns(sent_ns: u64, recv_ns: u64) -> u64 {
    recv_ns.saturating_sub(sent_ns)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn round_trip() {
        let mut v = b"{\"content\":\"".to_vec();
        write(42, 1_763_700_000_123_456_789, &mut v);
        v.extend_from_slice(b" xxxx\"}");
        assert_eq!(find(&v), Some((42, 1_763_700_000_123_456_789)));
    }

    #[test]
    fn skips_malformed_markers() {
        assert_eq!(find(b"@@@@1:2@@"), Some((1, 2)));
        assert_eq!(find(b"@@x@@3:4@@"), Some((3, 4)));
        assert_eq!(find(b"@@1:2@"), None);
        assert_eq!(find(b"@@1:@@"), None);
        assert_eq!(find(b"@@:2@@"), None);
        assert_eq!(find(b"no marker"), None);
        assert_eq!(find(b"@@99999999999999999999:1@@"), None);
    }

    #[test]
    fn latency_math() {
        assert_eq!(latency_ns(1_000, 1_250), 250);
        assert_eq!(latency_ns(2_000, 1_000), 0);
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a && a > 1_600_000_000_000_000_000);
    }
}
