//! Incremental decoders: byte chunks in, complete [`Item`]s out.
//!
//! Each decoder keeps only the unfinished tail of the current message between calls, bounded by
//! [`DecoderOptions::max_event_size`]. Splitting the same input differently never changes the output
//! (chunk-boundary invariance, tested at every byte offset).

use bytes::Bytes;

use crate::{Format, Item};

/// The default [`DecoderOptions::max_event_size`]: 1 MiB.
pub const DEFAULT_MAX_EVENT_SIZE: usize = 1 << 20;

/// Per-stream decoder settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecoderOptions {
    /// The largest message, in bytes of input, that is delivered; larger ones become
    /// [`DecodeError::TooLarge`](crate::DecodeError::TooLarge) and are skipped.
    pub max_event_size: usize,
    /// JSON formats: a top-level string field whose value becomes the event name (e.g. `type`).
    pub event_field: Option<String>,
    /// SSE: surface comment lines as [`Item::Comment`] instead of dropping them.
    pub comments: bool,
}

impl Default for DecoderOptions {
    fn default() -> Self {
        DecoderOptions { max_event_size: DEFAULT_MAX_EVENT_SIZE, event_field: None, comments: false }
    }
}

/// A decoder for one stream in one [`Format`].
#[derive(Debug)]
pub struct Decoder {
    format: Format,
    _opts: DecoderOptions,
}

impl Decoder {
    /// A fresh decoder for `format`.
    pub fn new(format: Format, opts: DecoderOptions) -> Self {
        Decoder { format, _opts: opts }
    }

    /// The format this decoder reads.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Feeds the next chunk of upstream bytes; appends every item it completes to `out`, in order.
    pub fn push(&mut self, chunk: &Bytes, out: &mut Vec<Item>) {
        let _ = (chunk, out);
    }

    /// Ends the stream: appends what the format says an end of stream completes (e.g. NDJSON's unterminated
    /// last line) and discards the rest (e.g. SSE's unfinished event).
    pub fn finish(&mut self, out: &mut Vec<Item>) {
        let _ = out;
    }
}
