//! NDJSON / JSON Lines (`application/x-ndjson`, `application/jsonl`, `application/x-jsonlines`): one JSON
//! value per line.
//!
//! - A line ends at LF or CRLF; a lone CR elsewhere is JSON whitespace (and compacted away).
//! - Blank and whitespace-only lines are skipped.
//! - The unterminated last line is emitted at [`finish`](crate::Decoder::finish).
//! - Each line must be exactly one JSON value; it is validated and compacted (see the `json` module). A
//!   malformed line yields [`DecodeError::MalformedJson`] with
//!   `recoverable: true`, invalid UTF-8 in a string yields `InvalidUtf8`; decoding resumes at the next line.
//! - A line longer than `max_event_size` (without its LF or CRLF) yields one `TooLarge` and is skipped up
//!   to its LF.

use bytes::Bytes;

use super::json::{self, is_ws};
use super::split::{Breaks, LineSink, LineSplitter};
use crate::{DecodeError, Item};

/// The NDJSON decoder.
#[derive(Debug)]
pub(crate) struct NdjsonDecoder {
    lines: LineSplitter,
    sink: Sink,
}

#[derive(Debug)]
struct Sink {
    max: usize,
    field: Option<Box<[u8]>>,
}

impl NdjsonDecoder {
    pub(crate) fn new(max: usize, field: Option<Box<[u8]>>) -> Self {
        NdjsonDecoder { lines: LineSplitter::new(Breaks::Lf), sink: Sink { max, field } }
    }

    pub(crate) fn push(&mut self, chunk: &Bytes, out: &mut Vec<Item>) {
        self.lines.push(&mut self.sink, chunk, out);
    }

    pub(crate) fn buffered(&self) -> usize {
        self.lines.buffered()
    }

    pub(crate) fn finish(&mut self, out: &mut Vec<Item>) {
        let last = self.lines.finish();
        self.sink.line(&last, None, out);
    }
}

impl LineSink for Sink {
    #[inline]
    fn budget(&self) -> usize {
        self.max
    }

    #[inline]
    fn line(&mut self, line: &[u8], shared: Option<&Bytes>, out: &mut Vec<Item>) {
        if line.iter().all(|&c| is_ws(c)) {
            return;
        }
        out.push(json::item(line, shared, self.field.as_deref()));
    }

    fn too_long(&mut self, out: &mut Vec<Item>) {
        out.push(Item::Error(DecodeError::TooLarge { limit: self.max }));
    }
}
