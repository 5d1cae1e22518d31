//! Incremental decoders: byte chunks in, complete [`Item`]s out.
//!
//! Each decoder keeps only the unfinished tail of the current message between calls, bounded by
//! [`DecoderOptions::max_event_size`] (plus, transiently, the chunk being processed). Splitting the same
//! input differently never changes the output (chunk-boundary invariance, tested at every byte offset);
//! the one exception is [`Format::Chunks`], whose contract is one event per upstream chunk.
//!
//! Internally, *where a message ends* (a line splitter; a resumable JSON value scanner; RS for json-seq)
//! is kept apart from *what is inside* (JSON validation, compaction and `event_field`, see [`MAX_DEPTH`]).
//! Each format's rules and its outcome for bad input are documented on its module ([`sse`], [`ndjson`],
//! [`json_stream`], [`json_seq`], [`json_array`], [`lines`], [`chunks`], [`eventstream`]); in short:
//!
//! | format | message ends at | bad message | resynchronises at |
//! |---|---|---|---|
//! | `sse` | blank line | `InvalidUtf8` / `TooLarge` for the block | next blank line |
//! | `ndjson` | LF | `MalformedJson{recoverable}` / `InvalidUtf8` / `TooLarge` | next LF |
//! | `json-stream` | closing bracket/quote, or delimiter after a scalar | content: `MalformedJson{recoverable}`, framing: same | after the value; framing errors: next LF |
//! | `json-seq` | LF after a complete value, next RS, end | `MalformedJson{recoverable}` / `InvalidUtf8` / `TooLarge` | next RS |
//! | `json-array` | end of each element | content: `MalformedJson{recoverable}`; structure: `MalformedJson{recoverable: false}` | next element; structural errors: never |
//! | `lines` | LF, CRLF, CR | `InvalidUtf8` / `TooLarge` | next line |
//! | `chunks` | each chunk | `InvalidUtf8` for invalid bytes (skipped) | next valid byte |
//! | `aws-eventstream` | the length in the CRC-checked prelude | `Crc{which: "message"}` / `Frame{recoverable: true}` / `TooLarge` / `InvalidUtf8`; bad prelude: `Crc{which: "prelude"}` | next frame; bad prelude: never |
//!
//! A value still open at [`Decoder::finish`] in the JSON framings is
//! `MalformedJson{reason: "truncated", recoverable: false}`.

// The per-format modules are public for their documentation (each states its format's rules and its
// outcome for bad input); their decoders are crate-private behind [`Decoder`].
pub mod chunks;
pub mod eventstream;
pub(crate) mod json;
pub mod json_array;
pub mod json_seq;
pub mod json_stream;
pub mod lines;
pub mod ndjson;
mod scan;
mod split;
pub mod sse;

use bytes::Bytes;

pub use json::MAX_DEPTH;

use crate::{Format, Item};

/// The default [`DecoderOptions::max_event_size`]: 1 MiB.
pub const DEFAULT_MAX_EVENT_SIZE: usize = 1 << 20;

/// Per-stream decoder settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecoderOptions {
    /// The largest message, in bytes of input, that is delivered; larger ones become
    /// [`DecodeError::TooLarge`](crate::DecodeError::TooLarge) and are skipped. What counts: SSE, the
    /// bytes of a block's lines without their line breaks; `ndjson` and `lines`, the line without its
    /// line break (LF/CRLF, or CR for `lines`); the other JSON framings, the value from its first to its last byte; `chunks`, the text of one
    /// event (longer chunks are split); `aws-eventstream`, the frame's payload as sent (checked at its prelude,
    /// before it is read).
    pub max_event_size: usize,
    /// JSON formats: a top-level string field whose value becomes the event name (e.g. `type`). The value
    /// is unescaped; CR and LF are removed; an empty value means no name.
    pub event_field: Option<String>,
    /// SSE: surface comment lines as [`Item::Comment`] instead of dropping them.
    pub comments: bool,
}

impl Default for DecoderOptions {
    fn default() -> Self {
        DecoderOptions { max_event_size: DEFAULT_MAX_EVENT_SIZE, event_field: None, comments: false }
    }
}

/// A decoder for one stream in one [`Format`]: feed it the upstream body chunk by chunk with
/// [`push`](Decoder::push), then call [`finish`](Decoder::finish) once at the end of the stream.
#[derive(Debug)]
pub struct Decoder {
    format: Format,
    opts: DecoderOptions,
    inner: Inner,
}

/// The per-format decoders (static dispatch).
#[derive(Debug)]
enum Inner {
    Sse(sse::SseDecoder),
    Ndjson(ndjson::NdjsonDecoder),
    JsonStream(json_stream::JsonStreamDecoder),
    JsonSeq(json_seq::JsonSeqDecoder),
    JsonArray(json_array::JsonArrayDecoder),
    Lines(lines::LinesDecoder),
    Chunks(chunks::ChunksDecoder),
    Eventstream(eventstream::EventstreamDecoder),
}

impl Inner {
    fn new(format: Format, opts: &DecoderOptions) -> Self {
        let max = opts.max_event_size;
        let field = || opts.event_field.as_deref().map(|f| Box::<[u8]>::from(f.as_bytes()));
        match format {
            Format::Sse => Inner::Sse(sse::SseDecoder::new(max, opts.comments)),
            Format::Ndjson => Inner::Ndjson(ndjson::NdjsonDecoder::new(max, field())),
            Format::JsonStream => Inner::JsonStream(json_stream::JsonStreamDecoder::new(max, field())),
            Format::JsonSeq => Inner::JsonSeq(json_seq::JsonSeqDecoder::new(max, field())),
            Format::JsonArray => Inner::JsonArray(json_array::JsonArrayDecoder::new(max, field())),
            Format::Lines => Inner::Lines(lines::LinesDecoder::new(max)),
            Format::Chunks => Inner::Chunks(chunks::ChunksDecoder::new(max)),
            Format::AwsEventstream => Inner::Eventstream(eventstream::EventstreamDecoder::new(max)),
        }
    }
}

impl Decoder {
    /// A fresh decoder for `format`.
    pub fn new(format: Format, opts: DecoderOptions) -> Self {
        Decoder { format, inner: Inner::new(format, &opts), opts }
    }

    /// The format this decoder reads.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The options this decoder was made with.
    pub fn options(&self) -> &DecoderOptions {
        &self.opts
    }

    /// Feeds the next chunk of upstream bytes; appends every item it completes to `out`, in order.
    /// An empty chunk changes nothing.
    #[inline]
    pub fn push(&mut self, chunk: &Bytes, out: &mut Vec<Item>) {
        match &mut self.inner {
            Inner::Sse(d) => d.push(chunk, out),
            Inner::Ndjson(d) => d.push(chunk, out),
            Inner::JsonStream(d) => d.push(chunk, out),
            Inner::JsonSeq(d) => d.push(chunk, out),
            Inner::JsonArray(d) => d.push(chunk, out),
            Inner::Lines(d) => d.push(chunk, out),
            Inner::Chunks(d) => d.push(chunk, out),
            Inner::Eventstream(d) => d.push(chunk, out),
        }
    }

    /// How many bytes of unfinished messages the decoder holds right now (bounded by about
    /// `max_event_size`; for per-stream memory accounting).
    pub fn buffered_len(&self) -> usize {
        match &self.inner {
            Inner::Sse(d) => d.buffered(),
            Inner::Ndjson(d) => d.buffered(),
            Inner::JsonStream(d) => d.buffered(),
            Inner::JsonSeq(d) => d.buffered(),
            Inner::JsonArray(d) => d.buffered(),
            Inner::Lines(d) => d.buffered(),
            Inner::Chunks(d) => d.buffered(),
            Inner::Eventstream(d) => d.buffered(),
        }
    }

    /// Ends the stream: appends what the format says an end of stream completes (e.g. NDJSON's unterminated
    /// last line) and discards the rest (e.g. SSE's unfinished event). The decoder is then fresh again and
    /// can read a new stream.
    pub fn finish(&mut self, out: &mut Vec<Item>) {
        match &mut self.inner {
            Inner::Sse(d) => d.finish(out),
            Inner::Ndjson(d) => d.finish(out),
            Inner::JsonStream(d) => d.finish(out),
            Inner::JsonSeq(d) => d.finish(out),
            Inner::JsonArray(d) => d.finish(out),
            Inner::Lines(d) => d.finish(out),
            Inner::Chunks(d) => d.finish(out),
            Inner::Eventstream(d) => d.finish(out),
        }
        self.inner = Inner::new(self.format, &self.opts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_kept() {
        let opts = DecoderOptions { max_event_size: 7, event_field: Some("t".into()), comments: true };
        let dec = Decoder::new(Format::Lines, opts.clone());
        assert_eq!(dec.options(), &opts);
        assert_eq!(dec.format(), Format::Lines);
    }

    #[test]
    fn buffered_len_counts_unfinished_messages() {
        let partial: [(Format, &[u8]); 8] = [
            (Format::Sse, b"data: abc"),
            (Format::Ndjson, b"{\"a\":"),
            (Format::JsonStream, b"{\"a\":"),
            (Format::JsonSeq, b"\x1e{\"a\":"),
            (Format::JsonArray, b"[{\"a\":"),
            (Format::Lines, b"abc"),
            (Format::Chunks, b"x\xe2\x82"),
            (Format::AwsEventstream, b"\x00\x00\x00\x10\x00"),
        ];
        for (format, input) in partial {
            let mut dec = Decoder::new(format, DecoderOptions::default());
            let mut out = Vec::new();
            assert_eq!(dec.buffered_len(), 0, "{format}");
            dec.push(&Bytes::from_static(input), &mut out);
            let held = dec.buffered_len();
            assert!(held > 0 && held <= input.len(), "{format}: {held}");
            dec.finish(&mut out);
            assert_eq!(dec.buffered_len(), 0, "{format}");
        }
        // Exactly the incomplete character.
        let mut dec = Decoder::new(Format::Chunks, DecoderOptions::default());
        dec.push(&Bytes::from_static(b"x\xe2\x82"), &mut Vec::new());
        assert_eq!(dec.buffered_len(), 2);
        // sse: the unfinished line, the block's data, name and id, and an id waiting for an event.
        let mut dec = Decoder::new(Format::Sse, DecoderOptions::default());
        let mut out = Vec::new();
        dec.push(&Bytes::from_static(b"id: 123456\n\ndata: abc\nevent: name\nid: 12345\nda"), &mut out);
        assert_eq!((out.len(), dec.buffered_len()), (0, 2 + 3 + 4 + 5 + 6));
        // json-seq: a complete value waiting for its LF counts, and so does the next one's beginning.
        let mut dec = Decoder::new(Format::JsonSeq, DecoderOptions::default());
        let mut out = Vec::new();
        dec.push(&Bytes::from_static(b"\x1e{\"a\": 1}"), &mut out);
        assert_eq!((out.len(), dec.buffered_len()), (0, 7));
        dec.push(&Bytes::from_static(b"\n\x1e[1, "), &mut out);
        assert_eq!(out.len(), 1);
        assert!(dec.buffered_len() > 0 && dec.buffered_len() <= 4, "{}", dec.buffered_len());
    }
}
