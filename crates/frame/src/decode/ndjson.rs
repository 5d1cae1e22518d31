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
use super::split::{Breaks, LineDecoder, LineSink};
use crate::{DecodeError, Item};

/// The NDJSON decoder.
pub(crate) type NdjsonDecoder = LineDecoder<Sink>;

#[derive(Debug)]
pub(crate) struct Sink {
    max: usize,
    field: Option<Box<[u8]>>,
}

impl NdjsonDecoder {
    pub(crate) fn new(max: usize, field: Option<Box<[u8]>>) -> Self {
        LineDecoder::from_sink(Breaks::Lf, Sink { max, field })
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
