//! `application/stream+json`: JSON values one after another, separated by any whitespace or by nothing
//! (`{"a":1}{"b":2}`, newline-separated values, `1 2 "x"`).
//!
//! - Objects, arrays and strings end at their closing bracket or quote and are emitted at once; a top-level
//!   number or literal ends at whitespace, a structural character (`{}[],:"`) or the end of the stream.
//! - Each value is validated and compacted (see the `json` module).
//! - **Bad content in a framed value** (brackets balanced, strings closed, but e.g. `{"a" 1}` or `tru`):
//!   [`MalformedJson`](crate::DecodeError::MalformedJson) `{recoverable: true}` (or `InvalidUtf8`) and
//!   decoding continues right after the value.
//! - **Framing errors** (a stray `}` `]` `,` `:` between values, a closing bracket of the wrong kind):
//!   `MalformedJson{recoverable: true}` and the decoder resynchronises at the next LF, dropping the rest of
//!   that line.
//! - A value longer than `max_event_size` yields one `TooLarge` when the limit is crossed; the decoder keeps
//!   tracking the value without buffering it and continues after its end.
//! - A value still open at [`finish`](crate::Decoder::finish) (unclosed object/array/string) yields
//!   `MalformedJson{reason: "truncated", recoverable: false}`.

use bytes::Bytes;
use memchr::memchr;

use super::json::{malformed, skip_ws};
use super::scan::{Fed, Framer};
use crate::Item;

/// The json-stream decoder.
#[derive(Debug)]
pub(crate) struct JsonStreamDecoder {
    framer: Framer,
    in_value: bool,
    /// After a framing error: skip to the next LF.
    resync: bool,
}

impl JsonStreamDecoder {
    pub(crate) fn new(max: usize, field: Option<Box<[u8]>>) -> Self {
        JsonStreamDecoder { framer: Framer::new(max, field), in_value: false, resync: false }
    }

    pub(crate) fn push(&mut self, chunk: &Bytes, out: &mut Vec<Item>) {
        let d: &[u8] = chunk;
        let mut pos = 0;
        while pos < d.len() {
            if self.resync {
                match memchr(b'\n', d.get(pos..).unwrap_or_default()) {
                    Some(k) => {
                        pos += k + 1;
                        self.resync = false;
                    }
                    None => return,
                }
            }
            if !self.in_value {
                pos = skip_ws(d, pos);
                let Some(&first) = d.get(pos) else { return };
                if let Err(reason) = self.framer.begin(first) {
                    out.push(malformed(reason, true));
                    self.resync = true;
                    continue;
                }
                self.in_value = true;
            }
            match self.framer.feed(chunk, pos..d.len(), out, |item, out| out.push(item)) {
                Fed::More => return,
                Fed::TooLarge(next) => pos = next,
                Fed::Done(next) => {
                    self.in_value = false;
                    pos = next;
                }
                Fed::Error(at, reason) => {
                    out.push(malformed(reason, true));
                    self.in_value = false;
                    self.resync = true;
                    pos = at;
                }
            }
        }
    }

    pub(crate) fn buffered(&self) -> usize {
        self.framer.buffered()
    }

    pub(crate) fn finish(&mut self, out: &mut Vec<Item>) {
        if self.in_value && !self.resync {
            if self.framer.is_scalar() {
                self.framer.finish_scalar(out, |item, out| out.push(item));
            } else {
                out.push(malformed("truncated", false));
            }
        }
        self.framer.clear();
        self.in_value = false;
        self.resync = false;
    }
}
