//! Raw text, one event per line.
//!
//! - A line ends at LF, CRLF or CR (a CR ending one chunk and an LF starting the next are one break).
//! - An empty line is an event with empty data (raw text keeps its blank lines; the encoder writes it as
//!   `data: `).
//! - The unterminated last line is emitted at [`finish`](crate::Decoder::finish) (nothing if the stream
//!   ends with a line break).
//! - A line that is not valid UTF-8 yields [`DecodeError::InvalidUtf8`] instead of its event.
//! - A line longer than `max_event_size` yields one `TooLarge` and is skipped up to its line break.

use bytes::Bytes;

use super::split::{Breaks, LineDecoder, LineSink};
use crate::{DecodeError, Event, Item};

/// The lines decoder.
pub(crate) type LinesDecoder = LineDecoder<Sink>;

#[derive(Debug)]
pub(crate) struct Sink {
    max: usize,
}

impl LinesDecoder {
    pub(crate) fn new(max: usize) -> Self {
        LineDecoder::from_sink(Breaks::Any, Sink { max })
    }
}

impl LineSink for Sink {
    #[inline]
    fn budget(&self) -> usize {
        self.max
    }

    fn line(&mut self, line: &[u8], shared: Option<&Bytes>, out: &mut Vec<Item>) {
        out.push(if std::str::from_utf8(line).is_err() {
            Item::Error(DecodeError::InvalidUtf8)
        } else {
            let data = match shared {
                Some(chunk) => chunk.slice_ref(line),
                None => Bytes::copy_from_slice(line),
            };
            Item::Event(Event::data(data))
        });
    }

    fn too_long(&mut self, out: &mut Vec<Item>) {
        out.push(Item::Error(DecodeError::TooLarge { limit: self.max }));
    }
}
