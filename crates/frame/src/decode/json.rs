//! What is *inside* a JSON message: validation, compaction and the `event_field` lookup.
//!
//! The framing decoders (ndjson, json-stream, json-seq, json-array) decide where a message ends; they hand
//! the complete bytes of one message to [`item`], which checks that they hold exactly one JSON value
//! (surrounded by optional whitespace) and turns it into an [`Event`]:
//!
//! - the value is emitted verbatim but compacted: whitespace outside strings is removed, strings, escapes
//!   and numbers are untouched (no re-serialisation);
//! - zero-copy: a value that is already compact and lies inside one input chunk becomes a slice of that
//!   chunk; anything else is copied once;
//! - validation follows RFC 8259's grammar (brackets balance and match, strings are closed and hold no raw
//!   control characters, escapes are well-formed, numbers and literals are exact), nesting is bounded by
//!   [`MAX_DEPTH`], and string contents must be UTF-8 (any non-ASCII byte *outside* a string is a grammar
//!   error). Lone UTF-16 surrogate escapes (`"\ud800"`) are grammatical JSON and are passed through, as
//!   JavaScript's `JSON.parse` accepts them.
//!
//! The hot path is the string scan: eight bytes at a time (SWAR on a `u64`) looking for `"`, `\` or a
//! control character, with non-ASCII bytes only accumulated so that `str::from_utf8` runs only on strings
//! that need it.

use bytes::{BufMut, Bytes};

use crate::{DecodeError, Event, Item};

/// The deepest nesting of arrays and objects a JSON message may have.
pub const MAX_DEPTH: usize = 128;

/// Why a message is not a valid JSON value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Invalid {
    /// A JSON string holds invalid UTF-8.
    Utf8,
    /// A grammar violation, with a short static reason.
    Json(&'static str),
}

impl Invalid {
    /// The error item of a message-level failure (always recoverable: the framing found the boundary).
    pub(crate) fn into_error(self) -> DecodeError {
        match self {
            Invalid::Utf8 => DecodeError::InvalidUtf8,
            Invalid::Json(reason) => DecodeError::MalformedJson { reason, recoverable: true },
        }
    }
}

/// The error item of a framing failure (a stray or mismatched bracket, a truncated value, ...).
pub(crate) fn malformed(reason: &'static str, recoverable: bool) -> Item {
    Item::Error(DecodeError::MalformedJson { reason, recoverable })
}

/// The content of a JSON string in the message: `start..end` excludes the quotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: usize,
    pub end: usize,
    /// Whether the content holds a backslash escape.
    pub escaped: bool,
}

/// A validated message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Checked {
    /// The value without surrounding whitespace.
    pub start: usize,
    pub end: usize,
    /// No whitespace between the value's tokens.
    pub compact: bool,
    /// The string value of the `event_field` key of a top-level object (the last one if repeated).
    pub name: Option<Span>,
}

/// JSON whitespace (RFC 8259: space, tab, LF, CR).
#[inline]
pub(crate) fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

/// The index of the first non-whitespace byte of `b` at or after `i` (or `b.len()`).
#[inline]
pub(crate) fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(&c) = b.get(i) {
        if !is_ws(c) {
            break;
        }
        i += 1;
    }
    i
}

/// Turns the complete bytes of one message into an event (or the error that describes it).
///
/// `shared` is the chunk `raw` lies in, when it does: a compact value is then sliced from it without a copy.
pub(crate) fn item(raw: &[u8], shared: Option<&Bytes>, field: Option<&[u8]>) -> Item {
    match check(raw, field) {
        Err(e) => Item::Error(e.into_error()),
        Ok(c) => event(raw, &c, shared),
    }
}

/// The event of the validated value `c` of `raw`.
#[inline]
pub(crate) fn event(raw: &[u8], c: &Checked, shared: Option<&Bytes>) -> Item {
    let value = raw.get(c.start..c.end).unwrap_or_default();
    let data = if c.compact {
        match shared {
            Some(chunk) => chunk.slice_ref(value),
            None => Bytes::copy_from_slice(value),
        }
    } else {
        let mut out = Vec::with_capacity(value.len());
        compact_into(value, &mut out);
        Bytes::from(out)
    };
    let name = c.name.and_then(|span| event_name(raw, span, shared));
    Item::Event(Event { name, data, id: None, retry: None })
}

/// The event name from the `event_field` string: unescaped, CR and LF removed, empty means none.
fn event_name(raw: &[u8], span: Span, shared: Option<&Bytes>) -> Option<Bytes> {
    let content = raw.get(span.start..span.end)?;
    if content.is_empty() {
        return None;
    }
    if !span.escaped {
        // Raw CR/LF cannot occur in a valid string, so the content is the name.
        return Some(match shared {
            Some(chunk) => chunk.slice_ref(content),
            None => Bytes::copy_from_slice(content),
        });
    }
    let mut name = unescape(content);
    name.retain(|&c| c != b'\r' && c != b'\n');
    (!name.is_empty()).then(|| Bytes::from(name))
}

/// Validates that `b` is exactly one JSON value with optional surrounding whitespace.
pub(crate) fn check(b: &[u8], field: Option<&[u8]>) -> Result<Checked, Invalid> {
    // Valid JSON is UTF-8 as a whole, so one fast check over the message usually settles UTF-8 for every
    // string. Only a message that fails it is parsed checking string by string, which decides whether
    // the bad bytes are inside a string (`Utf8`) or a grammar error.
    let c = if b.is_ascii() || std::str::from_utf8(b).is_ok() {
        parse::<false>(b, field)
    } else {
        parse::<true>(b, field)
    }?;
    if skip_ws(b, c.end) != b.len() {
        return Err(Invalid::Json("content after the value"));
    }
    Ok(c)
}

/// Validates the JSON value at the start of `b` (which must not start with whitespace) and returns it;
/// `end` tells where it stops, whatever follows. Used to frame and validate a value in one pass.
pub(crate) fn check_prefix(b: &[u8], field: Option<&[u8]>) -> Result<Checked, Invalid> {
    parse::<true>(b, field)
}

/// The validator; `UTF8` checks the UTF-8 of every string with non-ASCII bytes.
#[inline(always)]
fn parse<const UTF8: bool>(b: &[u8], field: Option<&[u8]>) -> Result<Checked, Invalid> {
    let start = skip_ws(b, 0);
    let mut p = Parser::<UTF8> { b, i: start, compact: true };
    let mut depth = 0usize;
    // Bit `d - 1` is set when the container at depth `d` is an object; `in_object` caches the innermost.
    let mut objects: u128 = 0;
    let mut in_object = false;
    let mut name = None;
    let mut next_is_name = false;
    'value: loop {
        let is_name = std::mem::take(&mut next_is_name);
        match p.peek() {
            open @ (b'{' | b'[') => {
                p.i += 1;
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(Invalid::Json("nesting too deep"));
                }
                in_object = open == b'{';
                if in_object {
                    objects |= 1 << (depth - 1);
                } else {
                    objects &= !(1 << (depth - 1));
                }
                p.inner_ws();
                // An empty container is closed by the loop below like any other.
                if p.peek() != if in_object { b'}' } else { b']' } {
                    if in_object {
                        next_is_name = p.key(depth == 1, field)?;
                    }
                    continue 'value;
                }
            }
            b'"' => {
                let span = p.string()?;
                if is_name {
                    name = Some(span);
                }
            }
            b'-' | b'0'..=b'9' => p.number()?,
            b't' => p.literal(b"true")?,
            b'f' => p.literal(b"false")?,
            b'n' => p.literal(b"null")?,
            _ if p.i >= b.len() => return Err(Invalid::Json("unexpected end of value")),
            _ => return Err(Invalid::Json("expected a value")),
        }
        // After a value: close containers until a separator starts the next value.
        while depth > 0 {
            p.inner_ws();
            match p.peek() {
                b',' => {
                    p.i += 1;
                    p.inner_ws();
                    if in_object {
                        next_is_name = p.key(depth == 1, field)?;
                    }
                    continue 'value;
                }
                close @ (b'}' | b']') if (close == b'}') == in_object => {
                    p.i += 1;
                    depth -= 1;
                    in_object = depth > 0 && (objects >> (depth - 1)) & 1 == 1;
                }
                _ if p.i >= b.len() => return Err(Invalid::Json("unexpected end of value")),
                _ if in_object => return Err(Invalid::Json("expected ',' or '}'")),
                _ => return Err(Invalid::Json("expected ',' or ']'")),
            }
        }
        break;
    }
    Ok(Checked { start, end: p.i, compact: p.compact, name })
}

struct Parser<'a, const UTF8: bool> {
    b: &'a [u8],
    i: usize,
    compact: bool,
}

impl<const UTF8: bool> Parser<'_, UTF8> {
    /// The current byte, or 0 at the end (0 is never valid where `peek` is used, so it reads as an error).
    #[inline]
    fn peek(&self) -> u8 {
        self.b.get(self.i).copied().unwrap_or(0)
    }

    /// Skips whitespace between tokens (which makes the value non-compact).
    #[inline(always)]
    fn inner_ws(&mut self) {
        if let Some(&c) = self.b.get(self.i) {
            if is_ws(c) {
                self.compact = false;
                self.i = skip_ws(self.b, self.i + 1);
            }
        }
    }

    /// An object key and its colon. Returns whether the key is `field` (only asked for top-level keys).
    #[inline(always)]
    fn key(&mut self, top: bool, field: Option<&[u8]>) -> Result<bool, Invalid> {
        if self.peek() != b'"' {
            return Err(Invalid::Json("expected a string key"));
        }
        let span = self.string()?;
        self.inner_ws();
        if self.peek() != b':' {
            return Err(Invalid::Json("expected ':'"));
        }
        self.i += 1;
        self.inner_ws();
        Ok(match field {
            Some(field) if top => key_is(self.b, span, field),
            _ => false,
        })
    }

    /// A string starting at the opening quote; leaves `i` after the closing quote.
    #[inline(always)]
    fn string(&mut self) -> Result<Span, Invalid> {
        const UNTERMINATED: Invalid = Invalid::Json("unterminated string");
        let b = self.b;
        let start = self.i + 1;
        let mut i = start;
        let mut high = 0u64;
        let mut escaped = false;
        loop {
            let (w, avail) = load8(b, i);
            let m = special_mask(w);
            if m == 0 {
                if avail < 8 {
                    return Err(UNTERMINATED);
                }
                if UTF8 {
                    high |= w;
                }
                i += 8;
                continue;
            }
            let bit = m.trailing_zeros();
            let k = (bit / 8) as usize;
            if k >= avail {
                return Err(UNTERMINATED);
            }
            // `bit - 7` is the first bit of the special byte: keep the bytes before it, then read it.
            if UTF8 {
                high |= w & ((1u64 << (bit - 7)) - 1);
            }
            let c = (w >> (bit - 7)) as u8;
            i += k;
            match c {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    i = escape(b, i)?;
                }
                _ => return Err(Invalid::Json("control character in string")),
            }
        }
        if UTF8 && high & HIGH != 0 && std::str::from_utf8(b.get(start..i).unwrap_or_default()).is_err() {
            return Err(Invalid::Utf8);
        }
        self.i = i + 1;
        Ok(Span { start, end: i, escaped })
    }

    fn number(&mut self) -> Result<(), Invalid> {
        const BAD: Invalid = Invalid::Json("invalid number");
        let b = self.b;
        let mut i = self.i;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => i = digits(b, i + 1),
            _ => return Err(BAD),
        }
        if b.get(i) == Some(&b'.') {
            let j = digits(b, i + 1);
            if j == i + 1 {
                return Err(BAD);
            }
            i = j;
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let j = digits(b, i);
            if j == i {
                return Err(BAD);
            }
            i = j;
        }
        self.i = i;
        Ok(())
    }

    fn literal(&mut self, lit: &'static [u8]) -> Result<(), Invalid> {
        if self.b.get(self.i..self.i + lit.len()) == Some(lit) {
            self.i += lit.len();
            Ok(())
        } else {
            Err(Invalid::Json("invalid literal"))
        }
    }
}

#[inline]
fn digits(b: &[u8], mut i: usize) -> usize {
    while let Some(b'0'..=b'9') = b.get(i) {
        i += 1;
    }
    i
}

/// Validates the escape at `b[i] == '\\'`; returns the index after it.
#[inline]
fn escape(b: &[u8], i: usize) -> Result<usize, Invalid> {
    match b.get(i + 1) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(i + 2),
        Some(b'u') => match b.get(i + 2..i + 6) {
            Some(hex) if hex.iter().all(u8::is_ascii_hexdigit) => Ok(i + 6),
            Some(_) => Err(Invalid::Json("invalid \\u escape")),
            None => Err(Invalid::Json("unterminated string")),
        },
        None => Err(Invalid::Json("unterminated string")),
        Some(_) => Err(Invalid::Json("invalid escape")),
    }
}

const HIGH: u64 = 0x8080_8080_8080_8080;
const ONES: u64 = 0x0101_0101_0101_0101;

/// A mask whose *lowest* set bit is the high bit of the first byte of `w` (little endian) that is `"`, `\`
/// or below 0x20, and which is zero when there is none. (The borrow-based test can flag bytes above a true
/// match, never below one and never without one, so only `trailing_zeros` of the result is meaningful.)
#[inline(always)]
fn special_mask(w: u64) -> u64 {
    let q = w ^ (ONES * u64::from(b'"'));
    let s = w ^ (ONES * u64::from(b'\\'));
    (q.wrapping_sub(ONES) & !q | s.wrapping_sub(ONES) & !s | w.wrapping_sub(ONES * 0x20) & !w) & HIGH
}

/// The index of the first `"` or `\` in `b` (SWAR, for the short strings typical of JSON, where a
/// `memchr2` call costs more than it saves).
#[inline]
pub(crate) fn find_quote_or_backslash(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        let (w, avail) = load8(b, i);
        let q = w ^ (ONES * u64::from(b'"'));
        let s = w ^ (ONES * u64::from(b'\\'));
        let m = (q.wrapping_sub(ONES) & !q | s.wrapping_sub(ONES) & !s) & HIGH;
        if m != 0 {
            let k = (m.trailing_zeros() / 8) as usize;
            return (k < avail).then_some(i + k);
        }
        if avail < 8 {
            return None;
        }
        i += 8;
    }
}

/// The 8 bytes of `b` at `i` as a little-endian word, and how many of them are real: past the end the
/// word is padded with `a` (not special).
#[inline(always)]
fn load8(b: &[u8], i: usize) -> (u64, usize) {
    match b.get(i..i + 8).and_then(|s| <[u8; 8]>::try_from(s).ok()) {
        Some(word) => (u64::from_le_bytes(word), 8),
        None => {
            let rest = b.get(i..).unwrap_or_default();
            let mut word = [b'a'; 8];
            for (dst, &src) in word.iter_mut().zip(rest) {
                *dst = src;
            }
            (u64::from_le_bytes(word), rest.len().min(8))
        }
    }
}

/// Whether the key string `span` of `b` equals `field` once unescaped.
fn key_is(b: &[u8], span: Span, field: &[u8]) -> bool {
    let Some(raw) = b.get(span.start..span.end) else { return false };
    if span.escaped {
        unescape(raw) == field
    } else {
        raw == field
    }
}

/// Decodes the escapes of validated string content. A lone surrogate becomes U+FFFD.
pub(crate) fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(k) = memchr::memchr(b'\\', raw.get(i..).unwrap_or_default()) {
        out.extend_from_slice(raw.get(i..i + k).unwrap_or_default());
        i += k;
        let c = raw.get(i + 1).copied().unwrap_or(b'\\');
        i += 2;
        let byte = match c {
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let unit = hex4(raw, i);
                i += 4;
                let ch = if (0xd800..0xdc00).contains(&unit)
                    && raw.get(i) == Some(&b'\\')
                    && raw.get(i + 1) == Some(&b'u')
                    && (0xdc00..0xe000).contains(&hex4(raw, i + 2))
                {
                    let low = hex4(raw, i + 2);
                    i += 6;
                    char::from_u32(0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00))
                } else {
                    char::from_u32(unit)
                };
                let mut utf8 = [0u8; 4];
                out.extend_from_slice(ch.unwrap_or('\u{fffd}').encode_utf8(&mut utf8).as_bytes());
                continue;
            }
            other => other,
        };
        out.push(byte);
    }
    out.extend_from_slice(raw.get(i..).unwrap_or_default());
    out
}

fn hex4(b: &[u8], i: usize) -> u32 {
    b.get(i..i + 4).unwrap_or_default().iter().fold(0, |acc, &c| {
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => 0,
        };
        (acc << 4) | u32::from(v)
    })
}

/// Appends the validated value `b` to `out` without the whitespace outside its strings.
pub(crate) fn compact_into<B: BufMut>(b: &[u8], out: &mut B) {
    let mut i = 0;
    while i < b.len() {
        let rest = b.get(i..).unwrap_or_default();
        let run = rest.iter().position(|&c| c == b'"' || is_ws(c)).unwrap_or(rest.len());
        out.put_slice(rest.get(..run).unwrap_or_default());
        i += run;
        match b.get(i) {
            Some(b'"') => {
                let end = string_end(b, i + 1);
                out.put_slice(b.get(i..end).unwrap_or_default());
                i = end;
            }
            Some(_) => i = skip_ws(b, i),
            None => break,
        }
    }
}

/// Appends `text` (lossy UTF-8: invalid sequences become U+FFFD) as the content of a JSON string: `"` and
/// `\` escaped, control characters as `\n`, `\r`, `\t`, `\b`, `\f` or `\u00XX` (what `serde_json` writes).
pub(crate) fn escape_string_into<B: BufMut>(text: &[u8], out: &mut B) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for chunk in text.utf8_chunks() {
        let valid = chunk.valid().as_bytes();
        let mut start = 0;
        for (i, &c) in valid.iter().enumerate() {
            let short: &[u8] = match c {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0x08 => b"\\b",
                0x0c => b"\\f",
                0..=0x1f => b"",
                _ => continue,
            };
            out.put_slice(valid.get(start..i).unwrap_or_default());
            start = i + 1;
            if short.is_empty() {
                out.put_slice(b"\\u00");
                out.put_u8(HEX[usize::from(c >> 4)]);
                out.put_u8(HEX[usize::from(c & 0xf)]);
            } else {
                out.put_slice(short);
            }
        }
        out.put_slice(valid.get(start..).unwrap_or_default());
        if !chunk.invalid().is_empty() {
            out.put_slice("\u{fffd}".as_bytes());
        }
    }
}

/// The index after the closing quote of the validated string whose content starts at `i`.
fn string_end(b: &[u8], mut i: usize) -> usize {
    while let Some(k) = memchr::memchr2(b'"', b'\\', b.get(i..).unwrap_or_default()) {
        i += k;
        if b.get(i) == Some(&b'"') {
            return i + 1;
        }
        i += 2;
    }
    b.len()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn ok(s: &str) -> Checked {
        check(s.as_bytes(), None).unwrap_or_else(|e| panic!("{s:?}: {e:?}"))
    }

    fn bad(s: &[u8]) -> Invalid {
        check(s, None).expect_err(&String::from_utf8_lossy(s))
    }

    fn compacted(s: &str) -> String {
        let c = ok(s);
        let mut out = Vec::new();
        compact_into(&s.as_bytes()[c.start..c.end], &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn unescape_reads_hex_escapes_in_either_case() {
        // cargo-mutants: the `A`..=`F` arm of hex4 (deleted, or its arithmetic changed) was not caught.
        assert_eq!(unescape(br"caf\u00e9 caf\u00E9"), "café café".as_bytes());
        assert_eq!(unescape(br"\uD83D\uDE00 \ud83d\ude00"), "😀 😀".as_bytes());
        assert_eq!(unescape(br"\u00AF\u00bF\u004A"), "¯¿J".as_bytes());
        // A lone surrogate is not a character: U+FFFD.
        assert_eq!(unescape(br"\uDBFF!"), "\u{fffd}!".as_bytes());
    }

    #[test]
    fn escaping_writes_what_serde_json_writes() {
        // cargo-mutants: deleting the `\b`/`\f` arms (then written as `\u0008`/`\u000c`) was not caught.
        let mut text: String = (0u8..0x20).map(char::from).collect();
        text.push_str("\"\\/ é 😀 \u{7f}");
        let mut out = b"\"".to_vec();
        escape_string_into(text.as_bytes(), &mut out);
        out.push(b'"');
        assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&text).unwrap());
    }

    #[test]
    fn valid_values() {
        for s in [
            "0",
            "-0",
            "1.5e10",
            "-12.34E-5",
            "1e+2",
            "true",
            "false",
            "null",
            "\"\"",
            "\"a\\\"b\\\\c\\/\\b\\f\\n\\r\\t\\u00e9\\uD83D\\uDE00\"",
            "\"\\ud800\"",
            "[]",
            "{}",
            "[1,[2,[3]],{\"a\":{\"b\":[]}}]",
            "{\"k\":\"v\",\"n\":null}",
            "\"héllo wörld ✓ 😀\"",
            "\"0123456789abcdefghij\"",
        ] {
            let c = ok(s);
            assert!(c.compact, "{s}");
            assert_eq!((c.start, c.end), (0, s.len()), "{s}");
        }
    }

    #[test]
    fn structure_error_reasons() {
        for (s, reason) in [
            ("[1", "unexpected end of value"),
            ("{\"a\":1", "unexpected end of value"),
            ("[1 2]", "expected ',' or ']'"),
            ("[1}", "expected ',' or ']'"),
            ("{\"a\":1 \"b\":2}", "expected ',' or '}'"),
            ("{\"a\":1]", "expected ',' or '}'"),
            ("[{\"a\":[1]]", "expected ',' or '}'"),
        ] {
            assert_eq!(bad(s.as_bytes()), Invalid::Json(reason), "{s}");
        }
    }

    #[test]
    fn invalid_values() {
        for s in [
            "",
            " ",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "1e+",
            "+1",
            "tru",
            "nul",
            "True",
            "[",
            "]",
            "[1,]",
            "[,1]",
            "{\"a\"}",
            "{\"a\":}",
            "{a:1}",
            "{\"a\":1,}",
            "[1 2]",
            "{\"a\":1]",
            "[1}",
            "\"abc",
            "\"a\\x\"",
            "\"\\u12G4\"",
            "\"\\u12\"",
            "1 2",
            "{} x",
            "\"a\nb\"",
            "\"tab\there\"",
            "NaN",
            "[1]]",
        ] {
            assert!(matches!(bad(s.as_bytes()), Invalid::Json(_)), "{s:?}");
        }
        assert_eq!(bad(b"\"\xff\""), Invalid::Utf8);
        assert_eq!(bad(b"[\"ok\",\"\xe2\x82\"]"), Invalid::Utf8);
        assert_eq!(bad(b"\"long string with bad byte \xc3\x28 in the middle\""), Invalid::Utf8);
        assert!(matches!(bad(b"\xff"), Invalid::Json(_)));
        assert!(matches!(bad(b"[1,\xc3\xa9]"), Invalid::Json(_)));
    }

    #[test]
    fn depth_is_bounded() {
        let ok_depth = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(check(ok_depth.as_bytes(), None).is_ok());
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(check(deep.as_bytes(), None), Err(Invalid::Json("nesting too deep")));
        let mixed = "{\"a\":".repeat(MAX_DEPTH) + "1" + &"}".repeat(MAX_DEPTH);
        assert!(check(mixed.as_bytes(), None).is_ok());
    }

    #[test]
    fn compaction_keeps_strings() {
        assert_eq!(
            compacted(" { \"a b\" : [ 1 , 2 ] ,\r\n \"c\" : \" x \\\" y \" }\n"),
            "{\"a b\":[1,2],\"c\":\" x \\\" y \"}"
        );
        assert_eq!(compacted("[\n\t\"\\\\\" ,\"\\\\\\\"\"\n]"), "[\"\\\\\",\"\\\\\\\"\"]");
        let c = ok("  [1]  ");
        assert!(c.compact);
        assert_eq!((c.start, c.end), (2, 5));
        assert!(!ok("[1, 2]").compact);
    }

    #[test]
    fn event_field() {
        let name = |s: &str| match item(s.as_bytes(), None, Some(b"type")) {
            Item::Event(ev) => ev.name,
            other => panic!("{other:?}"),
        };
        assert_eq!(name("{\"type\":\"delta\",\"x\":1}"), Some(Bytes::from("delta")));
        assert_eq!(name("{\"x\":{\"type\":\"inner\"},\"type\" : \"outer\"}"), Some(Bytes::from("outer")));
        assert_eq!(name("{\"type\":\"a\",\"type\":\"b\"}"), Some(Bytes::from("b")));
        assert_eq!(name("{\"type\":[\"x\"]}"), None);
        assert_eq!(name("{\"type\":1}"), None);
        assert_eq!(name("{\"type\":\"\"}"), None);
        assert_eq!(name("[{\"type\":\"x\"}]"), None);
        assert_eq!(
            name("{\"ty\\u0070e\":\"a\\r\\nb\\u00e9\\ud83d\\ude00\\ud800\"}"),
            Some(Bytes::from("ab\u{e9}😀\u{fffd}"))
        );
        assert_eq!(name("{\"type\":\"\\n\"}"), None);
    }

    #[test]
    fn special_mask_finds_the_first_special_byte() {
        let special = |c: u8| c == b'"' || c == b'\\' || c < 0x20;
        for c in 0..=255u8 {
            for d in [0u8, b'"', b'\\', 0x1f, 0x20, b'a', 0x80, 0xff] {
                for pos in 0..8 {
                    let mut bytes = [b'a'; 8];
                    bytes[pos] = c;
                    if pos < 7 {
                        bytes[pos + 1] = d;
                    }
                    let first = bytes.iter().position(|&b| special(b));
                    let m = special_mask(u64::from_le_bytes(bytes));
                    let found = (m != 0).then(|| (m.trailing_zeros() / 8) as usize);
                    assert_eq!(found, first, "{bytes:?}");
                }
            }
        }
    }

    #[test]
    fn numbers_at_every_length() {
        for len in 1..30 {
            let digits = "7".repeat(len);
            for s in [digits.clone(), format!("-{digits}.{digits}e-{digits}"), format!("[{digits},{digits}]")]
            {
                assert!(check(s.as_bytes(), None).is_ok(), "{s}");
            }
            for bad in
                [format!("{digits}x"), format!("{digits}."), format!("-{digits}e"), format!("0{digits}")]
            {
                assert!(check(bad.as_bytes(), None).is_err(), "{bad}");
            }
        }
        for c in 0..=255u8 {
            let s = [b'1', b'2', c];
            assert_eq!(check(&s, None).is_ok(), c.is_ascii_digit() || is_ws(c), "{s:?}");
        }
    }

    #[test]
    fn strings_at_every_length_and_offset() {
        for len in 0..40 {
            for special in [None, Some(b'"'), Some(b'\\'), Some(0x01), Some(0xff)] {
                let mut s = vec![b'"'];
                s.extend(std::iter::repeat_n(b'x', len));
                if let Some(c) = special {
                    s.push(c);
                }
                s.push(b'"');
                let r = check(&s, None);
                match special {
                    None => assert!(r.is_ok(), "{s:?}"),
                    Some(b'"') => assert_eq!(r, Err(Invalid::Json("content after the value"))),
                    Some(b'\\') => assert_eq!(r, Err(Invalid::Json("unterminated string"))),
                    Some(0x01) => assert_eq!(r, Err(Invalid::Json("control character in string"))),
                    _ => assert_eq!(r, Err(Invalid::Utf8)),
                }
                let mut open = vec![b'"'];
                open.extend(std::iter::repeat_n(b'x', len));
                assert_eq!(check(&open, None), Err(Invalid::Json("unterminated string")), "{open:?}");
            }
        }
    }
}
