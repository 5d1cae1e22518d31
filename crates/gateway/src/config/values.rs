//! Values that appear in more than one section: durations, sizes, listen addresses (one or a list) and URL
//! paths, as serde reads them (`DurationStr`, `SizeValue`, `StrList`) and as they are validated. The
//! `parse_*` / `check_*` functions are pure and return a message without position; the [`Cx`] methods
//! below apply them to a spanned raw value, report a problem at its position and fall back to the default.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use super::cx::Cx;

pub(super) const KIB: u64 = 1024;
pub(super) const MIB: u64 = 1024 * 1024;
pub(super) const GIB: u64 = 1024 * 1024 * 1024;

// ---- raw value types: what serde reads; their own types only for a helpful "expected ..." ---------

/// A duration string (`"15s"`); its own type only for a helpful "expected ..." in type errors.
#[derive(Debug)]
pub(super) struct DurationStr(String);

impl<'de> Deserialize<'de> for DurationStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DurationStr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"15s\", \"250ms\" or \"1h\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationStr, E> {
                Ok(DurationStr(v.to_owned()))
            }
        }
        d.deserialize_str(V)
    }
}

/// A size: integer bytes or a string with a unit (`"64KiB"`).
#[derive(Debug)]
pub(super) enum SizeValue {
    Int(i64),
    Str(String),
}

impl<'de> Deserialize<'de> for SizeValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SizeValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size: integer bytes or a string such as \"64KiB\", \"1MiB\" or \"10MB\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<SizeValue, E> {
                Ok(SizeValue::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<SizeValue, E> {
                Ok(SizeValue::Int(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SizeValue, E> {
                Ok(SizeValue::Str(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// `listen = "addr"` or `listen = ["addr", ...]`.
#[derive(Debug)]
pub(super) enum StrList {
    One(String),
    Many(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for StrList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an address string or an array of address strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StrList, E> {
                Ok(StrList::One(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrList, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<String>>()? {
                    out.push(item);
                }
                Ok(StrList::Many(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// Longest accepted duration anywhere in the file (365 days): keeps every `Instant + d` far from overflow.
pub const MAX_DURATION_VALUE: Duration = Duration::from_secs(365 * 24 * 3600);

impl Cx<'_> {
    /// A header name configured under `what` (`upstream_headers`, `response_headers.set`): valid, not one of
    /// `reserved` (which the gateway sets itself), not `taken` already (names are case-insensitive). Each
    /// problem is reported at the key.
    pub(super) fn header_name(
        &mut self,
        what: &str,
        key: &Spanned<String>,
        reserved: &[&str],
        taken: impl Fn(&http::HeaderName) -> bool,
    ) -> Option<http::HeaderName> {
        let k = key.get_ref();
        let problem = match http::HeaderName::from_bytes(k.as_bytes()) {
            Err(_) => "is not a valid header name",
            Ok(name) if reserved.contains(&name.as_str()) => "is set by the gateway and cannot be configured",
            Ok(name) if taken(&name) => "is given twice (names are case-insensitive)",
            Ok(name) => return Some(name),
        };
        self.err(key.span(), format!("{what}: {k:?} {problem}"));
        None
    }

    /// A duration that must be > 0 (or >= 0 when `zero_ok`).
    pub(super) fn duration(
        &mut self,
        key: &str,
        raw: Option<Spanned<DurationStr>>,
        default: Duration,
        zero_ok: bool,
    ) -> Duration {
        let Some(raw) = raw else { return default };
        match parse_duration(&raw.get_ref().0) {
            Err(msg) => {
                self.err(raw.span(), format!("{key}: {msg}"));
                default
            }
            Ok(d) if d.is_zero() && !zero_ok => {
                self.err(raw.span(), format!("{key} must be greater than 0"));
                default
            }
            Ok(d) => d,
        }
    }

    /// A duration where `"0s"` means disabled (`None`); non-zero values must be at least `min`.
    pub(super) fn optional_duration(
        &mut self,
        key: &str,
        raw: Option<Spanned<DurationStr>>,
        default: Duration,
        min: Option<Duration>,
    ) -> Option<Duration> {
        let Some(raw) = raw else { return Some(default) };
        match parse_duration(&raw.get_ref().0) {
            Err(msg) => {
                self.err(raw.span(), format!("{key}: {msg}"));
                Some(default)
            }
            Ok(d) if d.is_zero() => None,
            Ok(d) => match min {
                Some(min) if d < min => {
                    self.err(
                        raw.span(),
                        format!(
                            "{key} must be \"0s\" (disabled) or at least {}, got {:?}",
                            humantime::format_duration(min),
                            raw.get_ref().0
                        ),
                    );
                    Some(default)
                }
                _ => Some(d),
            },
        }
    }

    /// A size in bytes within `min..=max`.
    pub(super) fn size(
        &mut self,
        key: &str,
        raw: Option<Spanned<SizeValue>>,
        default: usize,
        min: usize,
        max: usize,
    ) -> usize {
        let Some(raw) = raw else { return default };
        let span = raw.span();
        let (parsed, shown) = match raw.into_inner() {
            SizeValue::Int(i) => {
                (u64::try_from(i).map_err(|_| format!("size must not be negative, got {i}")), i.to_string())
            }
            SizeValue::Str(s) => (parse_size(&s), format!("{s:?}")),
        };
        match parsed {
            Err(msg) => {
                self.err(span, format!("{key}: {msg}"));
                default
            }
            Ok(v) if v < min as u64 || v > max as u64 => {
                self.err(
                    span,
                    format!("{key} must be between {} and {}, got {shown}", show_size(min), show_size(max)),
                );
                default
            }
            Ok(v) => usize::try_from(v).unwrap_or(default),
        }
    }

    /// A listen address; `key` (`server.listen`) names it in the message.
    pub(super) fn listen_addr(&mut self, key: &str, s: &str, span: Range<usize>) -> Option<SocketAddr> {
        match parse_listen(s) {
            Ok(addr) => Some(addr),
            Err(msg) => {
                self.err(span, format!("invalid {key} address {s:?}: {msg}"));
                None
            }
        }
    }
}

/// `ip:port`, `[v6]:port` or `localhost:port`.
pub(super) fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Some(port) = s.strip_prefix("localhost:") {
        return match parse_port(port) {
            Some(port) => Ok(SocketAddr::from(([127, 0, 0, 1], port))),
            None => Err(format!("invalid port {port:?}: expected 0-65535")),
        };
    }
    Err("expected ip:port such as \"127.0.0.1:8080\", \"0.0.0.0:8080\" or \"[::1]:8080\"".to_owned())
}

/// Decimal digits only (no sign), 0..=65535.
pub(super) fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

pub(super) fn strip_prefix_ci<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

/// A character allowed in a URL path segment (RFC 3986 `pchar` minus `%`, which is checked separately).
fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@".contains(c)
}

/// Checks RFC 3986 path characters and percent escapes in `path` (which starts with `/`).
pub(super) fn check_path_chars(path: &str) -> Result<(), String> {
    let bytes = path.as_bytes();
    let mut i = 0;
    for c in path.chars() {
        // `i` tracks the byte index of `c`.
        if c == '%' {
            let hex = |j: usize| bytes.get(j).is_some_and(|b| b.is_ascii_hexdigit());
            if !(hex(i + 1) && hex(i + 2)) {
                return Err("`%` must start a percent escape such as %20".to_owned());
            }
        } else if c == '?' || c == '#' {
            return Err(format!("must not contain `{c}` (no query or fragment)"));
        } else if c != '/' && !is_path_char(c) {
            return Err(format!("character {c:?} is not allowed in a URL path (percent-encode it)"));
        }
        i += c.len_utf8();
    }
    Ok(())
}

/// A humantime duration (`"15s"`, `"250ms"`, `"1h 30m"`), at most [`MAX_DURATION_VALUE`].
pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration; expected e.g. \"15s\", \"250ms\" or \"1h\"".to_owned());
    }
    if t.chars().all(|c| c.is_ascii_digit()) && t != "0" {
        return Err(format!("duration {s:?} has no unit; write e.g. \"{t}s\" or \"{t}ms\""));
    }
    match humantime::parse_duration(t) {
        Ok(d) if d > MAX_DURATION_VALUE => Err(format!("duration {s:?} is too long (at most 365 days)")),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("invalid duration {s:?} ({e}); expected e.g. \"15s\", \"250ms\" or \"1h\"")),
    }
}

/// `"512"`, `"512B"`, `"64KiB"`, `"10MB"`, `"1 GiB"` (units case-insensitive: B, KB, KiB, MB, MiB, GB, GiB).
pub(super) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits_end);
    let unit = unit.trim();
    if num.is_empty() {
        return Err(format!("invalid size {s:?}; expected bytes or e.g. \"64KiB\", \"1MiB\", \"10MB\""));
    }
    if unit.starts_with('.') || unit.starts_with(',') {
        return Err(format!("invalid size {s:?}: use a whole number (e.g. \"1536KiB\" for 1.5 MiB)"));
    }
    let mult = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" => KIB,
        "mb" => 1000 * 1000,
        "mib" => MIB,
        "gb" => 1000 * 1000 * 1000,
        "gib" => GIB,
        _ => {
            return Err(format!(
                "invalid size unit {unit:?} in {s:?}; expected one of B, KB, KiB, MB, MiB, GB, GiB"
            ))
        }
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// `1048576` -> `"1MiB"`, `1500` -> `"1500B"`.
pub(super) fn show_size(n: usize) -> String {
    let n = n as u64;
    for (unit, name) in [(GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")] {
        if n >= unit && n.checked_rem(unit) == Some(0) {
            return format!("{}{name}", n / unit);
        }
    }
    format!("{n}B")
}
