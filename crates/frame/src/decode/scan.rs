//! Where a JSON value *ends*: an incremental scanner that is fed arbitrary chunks and tells when the value
//! that started in an earlier byte is complete. It tracks strings, escapes and nesting (bracket kinds for
//! the first [`MAX_DEPTH`] levels, plain depth beyond, so an over-deep value is still framed and then
//! rejected by the validator), never looks back at earlier chunks and buffers nothing itself.
//!
//! [`Framer`] puts a scanner together with the buffer of a value spanning chunks and the size limit.

use std::ops::Range;

use bytes::Bytes;

use super::json::{self, MAX_DEPTH};
use crate::{DecodeError, Item};

/// What a [`ValueScanner::feed`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scan {
    /// The value goes on past the end of the input.
    More,
    /// The value ends after this many bytes of the input (a scalar's delimiter is not part of it).
    Done(usize),
    /// The byte at this index cannot be part of the value (a closing bracket of the wrong kind).
    Error(usize, &'static str),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Kind {
    /// An array, object or string: ends when its outermost bracket or quote closes.
    #[default]
    Nested,
    /// A number or literal (or garbage): ends at whitespace, a structural character or the end of stream.
    Scalar,
}

/// Byte classes outside strings: 1 = `"`, 2 = opener, 3 = `}`, 4 = `]`.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b'"' as usize] = 1;
    t[b'{' as usize] = 2;
    t[b'[' as usize] = 2;
    t[b'}' as usize] = 3;
    t[b']' as usize] = 4;
    t
};

/// Bytes that end a top-level scalar: JSON whitespace and structural characters.
pub(crate) static DELIMITER: [bool; 256] = {
    let mut t = [false; 256];
    let delims = b" \t\r\n{}[],:\"";
    let mut i = 0;
    while i < delims.len() {
        t[delims[i] as usize] = true;
        i += 1;
    }
    t
};

/// Tracks one JSON value across chunks.
#[derive(Clone, Debug, Default)]
pub(crate) struct ValueScanner {
    kind: Kind,
    depth: usize,
    /// Bit `d - 1` set: the container at depth `d` is an object.
    objects: u128,
    in_string: bool,
    escaped: bool,
}

impl ValueScanner {
    /// A scanner for the value whose first byte is `first` (not consumed: feed it too).
    pub(crate) fn begin(first: u8) -> Result<Self, &'static str> {
        match first {
            b'}' | b']' | b',' | b':' => Err("unexpected character between values"),
            b'{' | b'[' | b'"' => Ok(ValueScanner::default()),
            _ => Ok(ValueScanner { kind: Kind::Scalar, ..ValueScanner::default() }),
        }
    }

    /// Whether the value is a number or literal, which only ends at a delimiter or the end of stream.
    pub(crate) fn is_scalar(&self) -> bool {
        self.kind == Kind::Scalar
    }

    /// Scans the next bytes of the value.
    pub(crate) fn feed(&mut self, d: &[u8]) -> Scan {
        if self.kind == Kind::Scalar {
            return match d.iter().position(|&c| DELIMITER[usize::from(c)]) {
                Some(n) => Scan::Done(n),
                None => Scan::More,
            };
        }
        let mut i = 0;
        loop {
            if self.in_string {
                if self.escaped {
                    if i >= d.len() {
                        return Scan::More;
                    }
                    self.escaped = false;
                    i += 1;
                }
                match json::find_quote_or_backslash(d.get(i..).unwrap_or_default()) {
                    None => return Scan::More,
                    Some(k) => {
                        i += k;
                        if d.get(i) == Some(&b'\\') {
                            self.escaped = true;
                        } else {
                            self.in_string = false;
                            if self.depth == 0 {
                                return Scan::Done(i + 1);
                            }
                        }
                        i += 1;
                    }
                }
            } else {
                let rest = d.get(i..).unwrap_or_default();
                let Some(k) = rest.iter().position(|&c| CLASS[usize::from(c)] != 0) else {
                    return Scan::More;
                };
                i += k;
                let c = d.get(i).copied().unwrap_or(0);
                match CLASS[usize::from(c)] {
                    1 => self.in_string = true,
                    2 => {
                        self.depth += 1;
                        if self.depth <= MAX_DEPTH {
                            let bit = 1u128 << (self.depth - 1);
                            if c == b'{' {
                                self.objects |= bit;
                            } else {
                                self.objects &= !bit;
                            }
                        }
                    }
                    _ => {
                        if self.depth == 0 {
                            return Scan::Error(i, "unexpected closing bracket");
                        }
                        if self.depth <= MAX_DEPTH {
                            let is_object = (self.objects >> (self.depth - 1)) & 1 == 1;
                            if is_object != (c == b'}') {
                                return Scan::Error(i, "mismatched closing bracket");
                            }
                        }
                        self.depth -= 1;
                        if self.depth == 0 {
                            return Scan::Done(i + 1);
                        }
                    }
                }
                i += 1;
            }
        }
    }
}

/// What [`Framer::feed`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fed {
    /// The whole range was consumed; the value goes on.
    More,
    /// The value ended; continue at this index. Its item was handed to the callback unless it was too large.
    Done(usize),
    /// The value just crossed the size limit at this index ([`DecodeError::TooLarge`] is pushed). Feeding
    /// on from there tracks the rest of the value without buffering it, to find its end.
    TooLarge(usize),
    /// A framing error at this index (the value is dropped).
    Error(usize, &'static str),
}

/// One JSON value being framed: the scanner, the bytes of a value that spans chunks and the size limit.
///
/// The limit is exact and independent of chunking: a value is too large when it has more than `max` bytes,
/// and that is noticed at its `max + 1`-th byte, before anything the scanner could find later.
#[derive(Debug)]
pub(crate) struct Framer {
    scanner: ValueScanner,
    buf: Vec<u8>,
    /// Bytes of the current value so far (also those not buffered because it is too large).
    len: usize,
    /// The value began in an earlier chunk.
    spans: bool,
    too_large: bool,
    max: usize,
    field: Option<Box<[u8]>>,
}

/// A buffer keeps at most this much capacity between messages (a stream that once carried a huge message
/// does not keep its memory).
pub(crate) const KEEP_CAPACITY: usize = 64 * 1024;

impl Framer {
    pub(crate) fn new(max: usize, field: Option<Box<[u8]>>) -> Self {
        Framer {
            scanner: ValueScanner::default(),
            buf: Vec::new(),
            len: 0,
            spans: false,
            too_large: false,
            max,
            field,
        }
    }

    /// Starts a value at its first byte `first`.
    pub(crate) fn begin(&mut self, first: u8) -> Result<(), &'static str> {
        self.scanner = ValueScanner::begin(first)?;
        self.len = 0;
        self.spans = false;
        self.too_large = false;
        Ok(())
    }

    pub(crate) fn is_scalar(&self) -> bool {
        self.scanner.is_scalar()
    }

    /// Feeds `chunk[range]`; the item of a complete value that is not too large (its event, zero-copy when
    /// it lies in this chunk, or the error describing it) goes to `emit`.
    pub(crate) fn feed(
        &mut self,
        chunk: &Bytes,
        range: Range<usize>,
        out: &mut Vec<Item>,
        emit: impl FnOnce(Item, &mut Vec<Item>),
    ) -> Fed {
        let start = range.start;
        let d = chunk.get(range).unwrap_or_default();
        if self.len == 0 && !self.spans && !self.too_large {
            if let Some((n, item)) = self.whole_value(d, chunk) {
                self.len = n;
                emit(item, out);
                return Fed::Done(start + n);
            }
        }
        // Scan no further than the byte that would cross the limit.
        let room = if self.too_large { d.len() } else { self.max.saturating_sub(self.len).saturating_add(1) };
        let head = d.get(..room).unwrap_or(d);
        match self.scanner.feed(head) {
            Scan::More => {
                self.len += head.len();
                if self.over_limit(out) {
                    return Fed::TooLarge(start + head.len());
                }
                if !self.too_large {
                    self.buf.extend_from_slice(head);
                }
                self.spans = true;
                Fed::More
            }
            Scan::Done(n) => {
                self.len += n;
                if !self.over_limit(out) && !self.too_large {
                    let value = head.get(..n).unwrap_or_default();
                    let field = self.field.as_deref();
                    let item = if self.spans {
                        self.buf.extend_from_slice(value);
                        json::item(&self.buf, None, field)
                    } else {
                        json::item(value, Some(chunk), field)
                    };
                    emit(item, out);
                }
                self.clear();
                Fed::Done(start + n)
            }
            Scan::Error(n, reason) => {
                self.clear();
                Fed::Error(start + n, reason)
            }
        }
    }

    /// The end of stream completes a scalar: hands its item to `emit` as [`Framer::feed`] would.
    pub(crate) fn finish_scalar(&mut self, out: &mut Vec<Item>, emit: impl FnOnce(Item, &mut Vec<Item>)) {
        if !self.too_large {
            let item = json::item(&self.buf, None, self.field.as_deref());
            emit(item, out);
        }
        self.clear();
    }

    /// The fast path for a value that starts at `d[0]`: validate it as a prefix of `d`, which also finds
    /// where it ends, in one pass. Taken only when that is certainly the framing the scanner would find and
    /// the item it would produce: the value is valid, complete inside `d` (a number or literal must be
    /// followed by a delimiter in `d`) and within the size limit. Anything else (incomplete, invalid, too
    /// large, too deep) goes the general way.
    #[inline]
    fn whole_value(&self, d: &[u8], chunk: &Bytes) -> Option<(usize, Item)> {
        let c = json::check_prefix(d, self.field.as_deref()).ok()?;
        if c.end > self.max {
            return None;
        }
        if self.scanner.is_scalar() && !DELIMITER[usize::from(*d.get(c.end)?)] {
            return None;
        }
        Some((c.end, json::event(d, &c, Some(chunk))))
    }

    /// Bytes of the current value held.
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Drops the buffered bytes of the current value.
    pub(crate) fn clear(&mut self) {
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
        self.spans = false;
    }

    /// Whether the value has just now crossed the limit (then `TooLarge` is pushed, once per value).
    fn over_limit(&mut self, out: &mut Vec<Item>) -> bool {
        if self.too_large || self.len <= self.max {
            return false;
        }
        self.too_large = true;
        out.push(Item::Error(DecodeError::TooLarge { limit: self.max }));
        self.buf = Vec::new();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A string value of `n` bytes fed in two chunks (all but the closing quote, then the quote): the
    /// framer's buffer capacity after the value is done.
    fn capacity_after_spanning_string(n: usize) -> usize {
        let mut f = Framer::new(1 << 20, None);
        let mut out = Vec::new();
        let mut head = vec![b'a'; n - 1];
        head[0] = b'"';
        let head = Bytes::from(head);
        assert!(f.begin(b'"').is_ok());
        assert!(matches!(f.feed(&head, 0..head.len(), &mut out, |i, o| o.push(i)), Fed::More));
        let tail = Bytes::from_static(b"\"");
        assert!(matches!(f.feed(&tail, 0..1, &mut out, |i, o| o.push(i)), Fed::Done(1)));
        assert!(matches!(&out[..], [Item::Event(ev)] if ev.data.len() == n));
        f.buf.capacity()
    }

    #[test]
    fn framer_releases_large_buffers_and_keeps_small_ones() {
        // The buffer grows to the value's first chunk, then doubles for the closing quote.
        assert_eq!(capacity_after_spanning_string(1001), 2000, "small: kept");
        assert_eq!(capacity_after_spanning_string(32 * 1024 + 1), 64 * 1024, "exactly 64 KiB: kept");
        assert_eq!(capacity_after_spanning_string(40 * 1024 + 1), 0, "80 KiB: released");
    }

    fn scan_whole(s: &[u8]) -> Scan {
        match s.first() {
            Some(&c) => match ValueScanner::begin(c) {
                Ok(mut sc) => sc.feed(s),
                Err(r) => Scan::Error(0, r),
            },
            None => Scan::More,
        }
    }

    #[test]
    fn ends() {
        assert_eq!(scan_whole(b"{\"a\":\"}]\\\"\"} x"), Scan::Done(12));
        assert_eq!(scan_whole(b"[[],{}]]"), Scan::Done(7));
        assert_eq!(scan_whole(b"\"ab\\\\\"x"), Scan::Done(6));
        assert_eq!(scan_whole(b"123,"), Scan::Done(3));
        assert_eq!(scan_whole(b"true"), Scan::More);
        assert_eq!(scan_whole(b"{\"a\":[1}"), Scan::Error(7, "mismatched closing bracket"));
        assert!(matches!(scan_whole(b"}"), Scan::Error(0, _)));
        assert_eq!(scan_whole(b"{\"a\":1"), Scan::More);
    }

    #[test]
    fn byte_at_a_time() {
        let v = b"{\"k\":[\"\\\"]\",{\"x\":\"\\\\\"}]}";
        let first = v.first().copied().unwrap_or_default();
        let Ok(mut sc) = ValueScanner::begin(first) else { panic!() };
        for (i, b) in v.iter().enumerate() {
            let r = sc.feed(std::slice::from_ref(b));
            if i + 1 == v.len() {
                assert_eq!(r, Scan::Done(1));
            } else {
                assert_eq!(r, Scan::More, "at {i}");
            }
        }
    }

    #[test]
    fn deep_values_are_framed() {
        let deep = "[".repeat(300) + &"]".repeat(300);
        assert_eq!(scan_whole(deep.as_bytes()), Scan::Done(600));
    }
}
