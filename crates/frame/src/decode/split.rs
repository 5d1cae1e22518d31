//! Where a line ends: the line splitter shared by `sse`, `lines` and `ndjson`.
//!
//! Lines that lie inside one chunk are handed out as slices of it (zero-copy); only the unfinished last
//! line of a chunk is buffered, and never beyond what the consumer's [`LineSink::budget`] allows: a longer
//! line is reported once through [`LineSink::too_long`] and then discarded up to its end.
//!
//! In [`Breaks::Any`] mode CR, LF and CRLF all end a line, and a CR ending one chunk followed by an LF
//! starting the next is one line break.

use bytes::Bytes;
use memchr::{memchr, memchr2};

use super::scan::KEEP_CAPACITY;
use crate::Item;

/// Which bytes end a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Breaks {
    /// LF or CRLF; a lone CR is not a break (NDJSON: it is JSON whitespace).
    Lf,
    /// CR, LF or CRLF.
    Any,
}

/// The consumer of complete lines.
pub(crate) trait LineSink {
    /// The longest line (without its break) the sink accepts right now.
    fn budget(&self) -> usize;
    /// A complete line without its break. `shared` is the chunk it lies in, if it does.
    fn line(&mut self, line: &[u8], shared: Option<&Bytes>, out: &mut Vec<Item>);
    /// The current line is longer than the budget; it will be discarded up to its end.
    fn too_long(&mut self, out: &mut Vec<Item>);
}

/// A decoder that is a [`LineSplitter`] feeding one [`LineSink`] (`lines` and `ndjson`; `sse` adds the BOM
/// and its end-of-stream rule around its own).
#[derive(Debug)]
pub(crate) struct LineDecoder<S> {
    lines: LineSplitter,
    sink: S,
}

impl<S: LineSink> LineDecoder<S> {
    pub(crate) fn from_sink(breaks: Breaks, sink: S) -> Self {
        LineDecoder { lines: LineSplitter::new(breaks), sink }
    }

    pub(crate) fn push(&mut self, chunk: &Bytes, out: &mut Vec<Item>) {
        self.lines.push(&mut self.sink, chunk, out);
    }

    pub(crate) fn buffered(&self) -> usize {
        self.lines.buffered()
    }

    /// Ends the stream: the unterminated last line, if there is one, goes to the sink.
    pub(crate) fn finish(&mut self, out: &mut Vec<Item>) {
        let last = self.lines.finish();
        if !last.is_empty() {
            self.sink.line(&last, None, out);
        }
    }
}

/// Splits a byte stream into lines.
#[derive(Debug)]
pub(crate) struct LineSplitter {
    breaks: Breaks,
    /// The unfinished line.
    buf: Vec<u8>,
    /// The last chunk ended in CR: an LF starting the next chunk belongs to that break.
    pending_cr: bool,
    /// The current line is too long and is being discarded.
    skipping: bool,
}

impl LineSplitter {
    pub(crate) fn new(breaks: Breaks) -> Self {
        LineSplitter { breaks, buf: Vec::new(), pending_cr: false, skipping: false }
    }

    /// Feeds a chunk; complete lines go to `sink`.
    pub(crate) fn push<S: LineSink>(&mut self, sink: &mut S, chunk: &Bytes, out: &mut Vec<Item>) {
        let d: &[u8] = chunk;
        let mut pos = 0;
        if self.pending_cr && !d.is_empty() {
            self.pending_cr = false;
            if d.first() == Some(&b'\n') {
                pos = 1;
            }
        }
        if !self.buf.is_empty() || self.skipping {
            let Some((end, next)) = self.find(d, pos) else {
                self.extend(sink, d.get(pos..).unwrap_or_default(), out);
                return;
            };
            let tail = d.get(pos..end).unwrap_or_default();
            if self.skipping {
                self.skipping = false;
            } else if self.line_len(&self.buf, tail) > sink.budget() {
                sink.too_long(out);
                self.clear();
            } else {
                self.buf.extend_from_slice(tail);
                let mut line = std::mem::take(&mut self.buf);
                if self.breaks == Breaks::Lf && line.last() == Some(&b'\r') {
                    line.pop();
                }
                sink.line(&line, None, out);
                self.buf = line;
                self.clear();
            }
            pos = next;
        }
        while let Some((end, next)) = self.find(d, pos) {
            let mut line = d.get(pos..end).unwrap_or_default();
            if self.breaks == Breaks::Lf {
                if let Some((b'\r', rest)) = line.split_last() {
                    line = rest;
                }
            }
            if line.len() > sink.budget() {
                sink.too_long(out);
            } else {
                sink.line(line, Some(chunk), out);
            }
            pos = next;
        }
        self.extend(sink, d.get(pos..).unwrap_or_default(), out);
    }

    /// Bytes of the unfinished line held.
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Ends the stream: returns the unfinished last line (empty if there is none or it was too long) and
    /// resets the splitter.
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        let line = if self.skipping { Vec::new() } else { std::mem::take(&mut self.buf) };
        self.buf = Vec::new();
        self.pending_cr = false;
        self.skipping = false;
        line
    }

    /// The next line break in `d` at or after `from`: (end of line, start of the next line).
    #[inline]
    fn find(&mut self, d: &[u8], from: usize) -> Option<(usize, usize)> {
        let rest = d.get(from..)?;
        match self.breaks {
            Breaks::Lf => memchr(b'\n', rest).map(|k| (from + k, from + k + 1)),
            Breaks::Any => {
                let end = from + memchr2(b'\r', b'\n', rest)?;
                let next = if d.get(end) == Some(&b'\r') {
                    match d.get(end + 1) {
                        Some(b'\n') => end + 2,
                        Some(_) => end + 1,
                        None => {
                            self.pending_cr = true;
                            end + 1
                        }
                    }
                } else {
                    end + 1
                };
                Some((end, next))
            }
        }
    }

    /// Buffers the start of an unfinished line, within the budget.
    fn extend<S: LineSink>(&mut self, sink: &mut S, rest: &[u8], out: &mut Vec<Item>) {
        if self.skipping || rest.is_empty() {
            return;
        }
        if self.line_len(&self.buf, rest) > sink.budget() {
            sink.too_long(out);
            self.skipping = true;
            self.clear();
        } else {
            self.buf.extend_from_slice(rest);
        }
    }

    /// The length of the line `head` + `tail` without its break. In LF mode a final CR may be the start
    /// of a CRLF break, so it is not counted (if the line goes on instead, the next byte counts for it).
    fn line_len(&self, head: &[u8], tail: &[u8]) -> usize {
        let len = head.len() + tail.len();
        let last = tail.last().or(head.last());
        if self.breaks == Breaks::Lf && last == Some(&b'\r') {
            len - 1
        } else {
            len
        }
    }

    fn clear(&mut self) {
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drops the lines; accepts lines up to `.0` bytes; reports a too-long line as `Retry(0)`.
    struct Budget(usize);

    impl LineSink for Budget {
        fn budget(&self) -> usize {
            self.0
        }
        fn line(&mut self, _: &[u8], _: Option<&Bytes>, _: &mut Vec<Item>) {}
        fn too_long(&mut self, out: &mut Vec<Item>) {
            out.push(Item::Retry(0));
        }
    }

    fn push(s: &mut LineSplitter, sink: &mut Budget, bytes: Vec<u8>, out: &mut Vec<Item>) {
        s.push(sink, &Bytes::from(bytes), out);
    }

    #[test]
    fn a_long_line_does_not_leave_a_large_buffer_behind() {
        let mut sink = Budget(100 << 10);
        let mut s = LineSplitter::new(Breaks::Any);
        let mut out = Vec::new();
        push(&mut s, &mut sink, vec![b'a'; 60 << 10], &mut out);
        push(&mut s, &mut sink, vec![b'a'; 10 << 10], &mut out);
        assert!(s.buf.capacity() > KEEP_CAPACITY);
        assert_eq!(s.buffered(), 70 << 10);
        push(&mut s, &mut sink, vec![b'a'; 40 << 10], &mut out);
        assert_eq!(out, [Item::Retry(0)], "reported once as too long");
        assert_eq!((s.buffered(), s.buf.capacity()), (0, 0), "the large allocation is released");
    }

    #[test]
    fn a_small_buffer_is_kept_for_reuse() {
        let mut sink = Budget(5);
        let mut s = LineSplitter::new(Breaks::Lf);
        let mut out = Vec::new();
        push(&mut s, &mut sink, b"abc".to_vec(), &mut out);
        let capacity = s.buf.capacity();
        assert!(capacity >= 3);
        push(&mut s, &mut sink, b"defgh".to_vec(), &mut out);
        assert_eq!(out, [Item::Retry(0)]);
        assert_eq!((s.buffered(), s.buf.capacity()), (0, capacity));

        // A 60 KiB buffer is kept too (the limit is 64 KiB).
        let mut sink = Budget(62 << 10);
        let mut s = LineSplitter::new(Breaks::Lf);
        push(&mut s, &mut sink, vec![b'a'; 60 << 10], &mut out);
        push(&mut s, &mut sink, vec![b'b'; 5 << 10], &mut out);
        assert_eq!((s.buffered(), s.buf.capacity()), (0, 60 << 10));

        // Up to KEEP_CAPACITY itself.
        let mut sink = Budget(KEEP_CAPACITY);
        let mut s = LineSplitter::new(Breaks::Lf);
        push(&mut s, &mut sink, vec![b'a'; KEEP_CAPACITY], &mut out);
        assert_eq!(s.buf.capacity(), KEEP_CAPACITY);
        push(&mut s, &mut sink, b"b".to_vec(), &mut out);
        assert_eq!((s.buffered(), s.buf.capacity()), (0, KEEP_CAPACITY));
    }
}
