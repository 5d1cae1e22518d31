//! `text/event-stream`, parsed as the WHATWG HTML standard ("Server-sent events", "Event stream
//! interpretation") says, with these defined additions for a proxy:
//!
//! - **BOM**: one UTF-8 BOM at the very start of the stream is skipped (also when it arrives split over
//!   chunks); anywhere else it is content.
//! - **Line breaks**: CR, LF and CRLF; a CR ending one chunk and an LF starting the next are one break.
//! - **Fields**: `data` lines are joined with LF; `event` sets the name (empty means the default type, so
//!   `None`); `id` sets the last event id unless its value contains NUL; `retry` is used only if it is all
//!   ASCII digits and fits a `u64`; unknown fields are ignored; a line without a colon is a field name with
//!   an empty value; exactly one leading space of a value is removed.
//! - **Dispatch**: a blank line dispatches; a block with no `data` field dispatches nothing; the unfinished
//!   block at end of stream is dropped.
//! - **Ids**: per spec the last-event-id buffer persists across events. An event carries `id: Some(..)`
//!   exactly when an `id` field was seen since the previous dispatched event (also in a block that did not
//!   dispatch), so re-encoding the events gives every client the same `lastEventId`.
//! - **Retry**: a `retry` in a block that dispatches an event travels on that event
//!   ([`Event::retry`](crate::Event::retry)); in a block that dispatches nothing it becomes
//!   [`Item::Retry`] at the blank line. Both round-trip through [`encode`](crate::encode).
//! - **Comments** (`:` first) are dropped, or surfaced as [`Item::Comment`] (text after the colon, one
//!   leading space removed) when [`DecoderOptions::comments`](crate::DecoderOptions::comments) is set.
//! - **Invalid UTF-8** in a `data`, `event` or `id` value (or a surfaced comment): the block yields one
//!   [`DecodeError::InvalidUtf8`] at its blank line instead of its event and has no other effect (its `id`
//!   is not used). (The spec would decode with U+FFFD replacement; a gateway reports instead.)
//! - **Size**: the bytes of a block's lines (without line breaks, comments included) may not exceed
//!   `max_event_size`. A longer block yields one [`DecodeError::TooLarge`] when the limit is crossed, is
//!   skipped up to its blank line and has no effect (its `id`/`retry`/`event` are discarded).

use bytes::{BufMut, Bytes, BytesMut};
use memchr::memchr;

use super::split::{Breaks, LineSink, LineSplitter};
use crate::{DecodeError, Event, Item};

const BOM: &[u8; 3] = b"\xEF\xBB\xBF";

/// The SSE decoder.
#[derive(Debug)]
pub(crate) struct SseDecoder {
    /// How many BOM bytes have matched at the stream start; `None` once the start is past.
    bom: Option<usize>,
    lines: LineSplitter,
    state: Block,
}

/// The data buffer: absent, one line (kept as a slice when possible), or several joined lines.
#[derive(Debug, Default)]
enum Data {
    #[default]
    None,
    One(Bytes),
    Many(BytesMut),
}

#[derive(Debug)]
struct Block {
    max: usize,
    comments: bool,
    /// Bytes of the current block's lines.
    size: usize,
    /// The current block went over the limit and is skipped up to its blank line.
    skipping: bool,
    /// The current block had invalid UTF-8 in a field we use.
    bad_utf8: bool,
    data: Data,
    name: Option<Bytes>,
    id: Option<Bytes>,
    retry: Option<u64>,
    /// An id seen in an earlier block that dispatched nothing, to put on the next event.
    pending_id: Option<Bytes>,
}

impl SseDecoder {
    pub(crate) fn new(max: usize, comments: bool) -> Self {
        SseDecoder {
            bom: Some(0),
            lines: LineSplitter::new(Breaks::Any),
            state: Block {
                max,
                comments,
                size: 0,
                skipping: false,
                bad_utf8: false,
                data: Data::None,
                name: None,
                id: None,
                retry: None,
                pending_id: None,
            },
        }
    }

    pub(crate) fn push(&mut self, chunk: &Bytes, out: &mut Vec<Item>) {
        let Some(matched) = self.bom else {
            self.lines.push(&mut self.state, chunk, out);
            return;
        };
        let mut m = matched;
        let mut i = 0;
        while m < BOM.len() && chunk.get(i) == BOM.get(m) {
            m += 1;
            i += 1;
        }
        if m == BOM.len() {
            self.bom = None;
            self.lines.push(&mut self.state, &chunk.slice(i..), out);
        } else if i == chunk.len() {
            // Still a BOM prefix (or an empty chunk): wait for more.
            self.bom = Some(m);
        } else {
            // Not a BOM: what matched so far is content.
            self.bom = None;
            if m > 0 {
                self.lines.push(&mut self.state, &Bytes::from_static(&BOM[..m]), out);
            }
            self.lines.push(&mut self.state, &chunk.slice(i..), out);
        }
    }

    pub(crate) fn buffered(&self) -> usize {
        let s = &self.state;
        let data = match &s.data {
            Data::None => 0,
            Data::One(b) => b.len(),
            Data::Many(m) => m.len(),
        };
        let len = |f: &Option<Bytes>| f.as_ref().map_or(0, Bytes::len);
        self.lines.buffered() + data + len(&s.name) + len(&s.id) + len(&s.pending_id)
    }

    /// Drops the unfinished block (and line), as the spec says for the end of the stream.
    pub(crate) fn finish(&mut self, _out: &mut Vec<Item>) {
        let _ = self.lines.finish();
    }
}

/// Removes one leading space.
#[inline]
fn strip_space(v: &[u8]) -> &[u8] {
    match v.split_first() {
        Some((b' ', rest)) => rest,
        _ => v,
    }
}

#[inline]
fn bytes_of(v: &[u8], shared: Option<&Bytes>) -> Bytes {
    match shared {
        Some(chunk) => chunk.slice_ref(v),
        None => Bytes::copy_from_slice(v),
    }
}

impl Block {
    fn dispatch(&mut self, out: &mut Vec<Item>) {
        if self.skipping {
            self.skipping = false;
            self.reset();
            return;
        }
        if self.bad_utf8 {
            out.push(Item::Error(DecodeError::InvalidUtf8));
            self.reset();
            return;
        }
        if let Some(id) = self.id.take() {
            self.pending_id = Some(id);
        }
        match std::mem::take(&mut self.data) {
            Data::None => {
                if let Some(ms) = self.retry {
                    out.push(Item::Retry(ms));
                }
            }
            data => {
                let data = match data {
                    Data::One(b) => b,
                    Data::Many(m) => m.freeze(),
                    Data::None => Bytes::new(),
                };
                out.push(Item::Event(Event {
                    name: self.name.take().filter(|n| !n.is_empty()),
                    data,
                    id: self.pending_id.take(),
                    retry: self.retry,
                }));
            }
        }
        self.reset();
    }

    /// Forgets the current block (the pending id of earlier blocks stays).
    fn reset(&mut self) {
        self.size = 0;
        self.bad_utf8 = false;
        self.data = Data::None;
        self.name = None;
        self.id = None;
        self.retry = None;
    }

    fn append_data(&mut self, value: &[u8], shared: Option<&Bytes>) {
        self.data = match std::mem::take(&mut self.data) {
            Data::None => Data::One(bytes_of(value, shared)),
            Data::One(first) => {
                let mut m = BytesMut::with_capacity(first.len() + 1 + value.len());
                m.put_slice(&first);
                m.put_u8(b'\n');
                m.put_slice(value);
                Data::Many(m)
            }
            Data::Many(mut m) => {
                m.put_u8(b'\n');
                m.put_slice(value);
                Data::Many(m)
            }
        };
    }
}

impl LineSink for Block {
    #[inline]
    fn budget(&self) -> usize {
        if self.skipping {
            0
        } else {
            self.max.saturating_sub(self.size)
        }
    }

    fn line(&mut self, line: &[u8], shared: Option<&Bytes>, out: &mut Vec<Item>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        self.size += line.len();
        let (field, value) = match memchr(b':', line) {
            Some(0) => {
                if self.comments {
                    let text = strip_space(line.get(1..).unwrap_or_default());
                    out.push(if std::str::from_utf8(text).is_ok() {
                        Item::Comment(bytes_of(text, shared))
                    } else {
                        Item::Error(DecodeError::InvalidUtf8)
                    });
                }
                return;
            }
            Some(i) => {
                (line.get(..i).unwrap_or_default(), strip_space(line.get(i + 1..).unwrap_or_default()))
            }
            None => (line, &[][..]),
        };
        match field {
            b"data" => {
                if std::str::from_utf8(value).is_err() {
                    self.bad_utf8 = true;
                } else if !self.bad_utf8 {
                    self.append_data(value, shared);
                }
            }
            b"event" => {
                if std::str::from_utf8(value).is_err() {
                    self.bad_utf8 = true;
                } else {
                    self.name = Some(bytes_of(value, shared));
                }
            }
            b"id" if !value.contains(&0) => {
                if std::str::from_utf8(value).is_err() {
                    self.bad_utf8 = true;
                } else {
                    self.id = Some(bytes_of(value, shared));
                }
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                let ms = value.iter().try_fold(0u64, |acc, &c| {
                    acc.checked_mul(10).and_then(|v| v.checked_add(u64::from(c - b'0')))
                });
                if ms.is_some() {
                    self.retry = ms;
                }
            }
            _ => {}
        }
    }

    fn too_long(&mut self, out: &mut Vec<Item>) {
        if !self.skipping {
            out.push(Item::Error(DecodeError::TooLarge { limit: self.max }));
            self.reset();
            self.skipping = true;
        }
    }
}
