//! AWS eventstream (`application/vnd.amazon.eventstream`): binary, length-prefixed, CRC-checked frames,
//! as Bedrock's `InvokeModelWithResponseStream` and `ConverseStream` (and other AWS streaming APIs) send.
//!
//! A frame is
//!
//! ```text
//! total length (u32 BE) | headers length (u32 BE) | prelude CRC32 (of the 8 bytes before it)
//! headers (headers length bytes) | payload | message CRC32 (of every byte before it)
//! ```
//!
//! and each header is a name (u8 length + bytes), a value type (u8) and a value: `0` true and `1` false
//! (no bytes), `2` byte (1), `3` short (2), `4` int (4), `5` long (8), `6` byte array and `7` string
//! (u16 BE length + bytes), `8` timestamp (i64 ms, 8), `9` UUID (16). Every type is parsed (so a frame
//! whose headers do not parse is an error); only string headers are used.
//!
//! # What a frame becomes
//!
//! - `:message-type` `event`, or no `:message-type` at all: one [`Event`] named by the `:event-type`
//!   header (CR and LF removed; absent or empty means no name). Its data is the payload:
//!   - a payload that is one JSON value is compacted like the other JSON framings (a compact payload that
//!     lies in one input chunk is passed without a copy);
//!   - Bedrock `InvokeModelWithResponseStream` wraps each chunk of the model's output as
//!     `{"bytes":"<base64>"}` (plus, sometimes, other members such as the padding `"p"`): a payload that is
//!     a JSON object with a top-level string member `bytes` whose standard base64 decodes to one JSON
//!     value is replaced by that inner value, compacted. Anything else (not base64, not JSON inside) is
//!     passed as the outer payload: nothing is unwrapped on a guess;
//!   - any other payload (ConverseStream's are JSON already; the AWS test vectors' `{'foo':'bar'}` is not)
//!     is passed as is, and must be UTF-8 ([`DecodeError::InvalidUtf8`] otherwise, frame skipped);
//!   - an empty payload gives an event with empty data.
//! - `:message-type` `exception` (a modelled error: Bedrock's `throttlingException`,
//!   `modelStreamErrorException`, ...) or `error` (a service error): one event named `error` whose data
//!   is `{"error":{"type":T,"message":M}}`, the shape of ssegate's own error bodies, so the gateway
//!   delivers it as `event: error`:
//!   - `exception`: `T` is the `:exception-type` header (`"exception"` if absent); `M` is the payload's
//!     top-level `message` (or `Message`) string when the payload is a JSON object that has one, else the
//!     payload as text (lossy UTF-8), else `""`;
//!   - `error`: `T` is the `:error-code` header (`"error"` if absent), `M` the `:error-message` header
//!     (`""` if absent).
//! - any other `:message-type` is skipped without an item (forward compatibility).
//!
//! [`DecoderOptions::event_field`](crate::DecoderOptions::event_field) does not apply (the name comes
//! from `:event-type`; ssegate's config rejects `event_field` for this format).
//!
//! # Bad input
//!
//! | input | item | then |
//! |---|---|---|
//! | prelude CRC mismatch | `Crc { which: "prelude" }` | unrecoverable: the lengths cannot be trusted, no more items |
//! | total length < 16 | `Frame { reason: "total length below 16", recoverable: false }` | unrecoverable |
//! | total length > 16 MiB | `Frame { reason: "message longer than 16 MiB", recoverable: true }` | the frame is skipped unread |
//! | headers length > 128 KiB | `Frame { reason: "headers longer than 128 KiB", recoverable: true }` | skipped |
//! | headers length > total length − 16 | `Frame { reason: "headers length exceeds the frame", recoverable: true }` | skipped |
//! | payload > `max_event_size` | `TooLarge` | skipped unread (checked at the prelude, before buffering) |
//! | message CRC mismatch | `Crc { which: "message" }` | the frame is skipped |
//! | headers that do not parse | `Frame { reason: "malformed headers", recoverable: true }` | skipped |
//! | non-UTF-8 `:event-type` or event payload | `InvalidUtf8` | skipped |
//! | stream ends inside a frame | `Frame { reason: "truncated frame", recoverable: false }` at [`finish`](crate::Decoder::finish) | — |
//!
//! The prelude is checked as soon as its 12 bytes are there, so a corrupt length never makes the decoder
//! wait for (or buffer) gigabytes. The decoder holds at most one frame: `max_event_size` + 128 KiB + 16
//! bytes (a larger one is skipped unread). What counts against `max_event_size` is the payload as sent
//! (for Bedrock, the base64 wrapper).

use base64::Engine as _;
use bytes::Bytes;

use super::json;
use crate::{DecodeError, Event, Item};

/// The prelude: total length, headers length, prelude CRC.
const PRELUDE: usize = 12;
/// Prelude plus message CRC: the smallest frame.
const OVERHEAD: usize = PRELUDE + 4;
/// The largest frame the protocol allows (AWS SDKs reject larger ones).
pub const MAX_MESSAGE_LEN: usize = 16 << 20;
/// The largest headers section the protocol allows.
pub const MAX_HEADERS_LEN: usize = 128 << 10;

/// What the decoder is doing with the bytes that come next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting a frame: `need` is 12 until the prelude is known, then the total length.
    Frame { need: usize },
    /// Discarding the rest of a frame already reported.
    Skip { left: usize },
    /// The framing is lost (bad prelude): everything is ignored.
    Lost,
}

/// The AWS eventstream decoder.
#[derive(Debug)]
pub(crate) struct EventstreamDecoder {
    max: usize,
    state: State,
    /// The bytes of the current frame when it spans chunks.
    buf: Vec<u8>,
}

impl EventstreamDecoder {
    pub(crate) fn new(max: usize) -> Self {
        EventstreamDecoder { max, state: State::Frame { need: PRELUDE }, buf: Vec::new() }
    }

    pub(crate) fn push(&mut self, chunk: &Bytes, out: &mut Vec<Item>) {
        let mut pos = 0;
        while pos < chunk.len() {
            let rest = chunk.get(pos..).unwrap_or_default();
            match self.state {
                State::Lost => return,
                State::Skip { left } => {
                    let n = left.min(rest.len());
                    pos += n;
                    self.state = if n == left {
                        State::Frame { need: PRELUDE }
                    } else {
                        State::Skip { left: left - n }
                    };
                }
                State::Frame { need } if self.buf.is_empty() && need == PRELUDE && rest.len() >= PRELUDE => {
                    // A prelude inside this chunk, and often the whole frame: no copy.
                    self.state = prelude(self.max, rest.get(..PRELUDE).unwrap_or_default(), out);
                    match self.state {
                        State::Frame { need: total } if rest.len() >= total => {
                            out.extend(frame(rest.get(..total).unwrap_or_default(), Some(chunk)));
                            pos += total;
                            self.state = State::Frame { need: PRELUDE };
                        }
                        State::Frame { .. } => {
                            self.buf.extend_from_slice(rest);
                            pos += rest.len();
                        }
                        State::Skip { .. } | State::Lost => pos += PRELUDE,
                    }
                }
                State::Frame { need } => {
                    let n = (need - self.buf.len()).min(rest.len());
                    self.buf.extend_from_slice(rest.get(..n).unwrap_or_default());
                    pos += n;
                    if self.buf.len() < need {
                        continue;
                    }
                    if need == PRELUDE {
                        self.state = prelude(self.max, &self.buf, out);
                        if !matches!(self.state, State::Frame { .. }) {
                            self.buf.clear();
                        }
                    } else {
                        out.extend(frame(&self.buf, None));
                        self.state = State::Frame { need: PRELUDE };
                        if self.buf.capacity() > 64 << 10 {
                            self.buf = Vec::new();
                        } else {
                            self.buf.clear();
                        }
                    }
                }
            }
        }
    }

    pub(crate) fn buffered(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn finish(&mut self, out: &mut Vec<Item>) {
        if !self.buf.is_empty() {
            out.push(frame_error("truncated frame", false));
        }
        *self = EventstreamDecoder::new(self.max);
    }
}

/// Checks a prelude and decides what to do with the frame it starts: read it (`Frame { need: total }`),
/// skip it, or give up on the stream.
fn prelude(max: usize, p: &[u8], out: &mut Vec<Item>) -> State {
    let total = len32(p, 0);
    let headers = len32(p, 4);
    if crc32fast::hash(p.get(..8).unwrap_or_default()) != be32(p, 8) {
        out.push(Item::Error(DecodeError::Crc { which: "prelude" }));
        return State::Lost;
    }
    if total < OVERHEAD {
        out.push(frame_error("total length below 16", false));
        return State::Lost;
    }
    let error = if total > MAX_MESSAGE_LEN {
        frame_error("message longer than 16 MiB", true)
    } else if headers > MAX_HEADERS_LEN {
        frame_error("headers longer than 128 KiB", true)
    } else if headers > total - OVERHEAD {
        frame_error("headers length exceeds the frame", true)
    } else if total - OVERHEAD - headers > max {
        Item::Error(DecodeError::TooLarge { limit: max })
    } else {
        return State::Frame { need: total };
    };
    out.push(error);
    State::Skip { left: total - PRELUDE }
}

fn frame_error(reason: &'static str, recoverable: bool) -> Item {
    Item::Error(DecodeError::Frame { reason, recoverable })
}

/// The big-endian u32 at `at` of `b` (zero-filled past the end).
fn be32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        w.copy_from_slice(s);
    }
    u32::from_be_bytes(w)
}

/// The big-endian length at `at` of `b`.
fn len32(b: &[u8], at: usize) -> usize {
    usize::try_from(be32(b, at)).unwrap_or(usize::MAX)
}

/// The string headers a frame's meaning depends on.
#[derive(Debug, Default)]
struct Headers<'a> {
    message_type: Option<&'a [u8]>,
    event_type: Option<&'a [u8]>,
    exception_type: Option<&'a [u8]>,
    error_code: Option<&'a [u8]>,
    error_message: Option<&'a [u8]>,
}

/// Parses every header of `h`; `None` if they do not parse.
fn headers(mut h: &[u8]) -> Option<Headers<'_>> {
    let mut found = Headers::default();
    while let Some((&name_len, rest)) = h.split_first() {
        let name_len = usize::from(name_len);
        let name = rest.get(..name_len)?;
        let (&kind, rest) = rest.get(name_len..)?.split_first()?;
        let (value, rest): (Option<&[u8]>, &[u8]) = match kind {
            0 | 1 => (None, rest),
            2..=5 | 8 | 9 => {
                let n = match kind {
                    2 => 1,
                    3 => 2,
                    4 => 4,
                    9 => 16,
                    _ => 8,
                };
                (None, rest.get(n..)?)
            }
            6 | 7 => {
                let len = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
                let value = rest.get(2..2 + len)?;
                ((kind == 7).then_some(value), rest.get(2 + len..)?)
            }
            _ => return None,
        };
        if name.is_empty() {
            return None;
        }
        if let Some(v) = value {
            match name {
                b":message-type" => found.message_type = Some(v),
                b":event-type" => found.event_type = Some(v),
                b":exception-type" => found.exception_type = Some(v),
                b":error-code" => found.error_code = Some(v),
                b":error-message" => found.error_message = Some(v),
                _ => {}
            }
        }
        h = rest;
    }
    Some(found)
}

/// The item of one complete frame whose prelude was checked (`None`: a message type that is skipped).
fn frame(f: &[u8], shared: Option<&Bytes>) -> Option<Item> {
    let total = f.len();
    let body = f.get(..total - 4).unwrap_or_default();
    if crc32fast::hash(body) != be32(f, total - 4) {
        return Some(Item::Error(DecodeError::Crc { which: "message" }));
    }
    let headers_len = len32(f, 4);
    let Some(h) = headers(f.get(PRELUDE..PRELUDE + headers_len).unwrap_or_default()) else {
        return Some(frame_error("malformed headers", true));
    };
    let payload = body.get(PRELUDE + headers_len..).unwrap_or_default();
    match h.message_type {
        None | Some(b"event") => Some(event(&h, payload, shared)),
        Some(b"exception") => {
            let kind = h.exception_type.unwrap_or(b"exception");
            Some(error_event(kind, Message::Payload(payload)))
        }
        Some(b"error") => {
            let kind = h.error_code.unwrap_or(b"error");
            Some(error_event(kind, Message::Text(h.error_message.unwrap_or_default())))
        }
        Some(_) => None,
    }
}

/// An `event` frame's event.
fn event(h: &Headers<'_>, payload: &[u8], shared: Option<&Bytes>) -> Item {
    let name = match h.event_type {
        Some(t) => match std::str::from_utf8(t) {
            Ok(t) => {
                let t: Vec<u8> = t.bytes().filter(|&c| c != b'\r' && c != b'\n').collect();
                (!t.is_empty()).then(|| Bytes::from(t))
            }
            Err(_) => return Item::Error(DecodeError::InvalidUtf8),
        },
        None => None,
    };
    let mut item = data(payload, shared);
    if let Item::Event(ev) = &mut item {
        ev.name = name;
    }
    item
}

/// The data of an event payload: compacted JSON (unwrapped if it is Bedrock's base64 wrapper), or the
/// payload's text.
fn data(payload: &[u8], shared: Option<&Bytes>) -> Item {
    let Ok(checked) = json::check(payload, Some(b"bytes")) else {
        return match std::str::from_utf8(payload) {
            Ok(_) => Item::Event(Event::data(match shared {
                Some(chunk) if !payload.is_empty() => chunk.slice_ref(payload),
                _ => Bytes::copy_from_slice(payload),
            })),
            Err(_) => Item::Error(DecodeError::InvalidUtf8),
        };
    };
    if let Some(inner) = checked.name.and_then(|span| unwrap_bytes(payload, span)) {
        return inner;
    }
    // `check` found the `bytes` member for us; the event carries no name from it.
    let c = json::Checked { name: None, ..checked };
    json::event(payload, &c, shared)
}

/// The event of Bedrock's `{"bytes":"<base64>"}` wrapper, if `span` (the `bytes` string) decodes to JSON.
fn unwrap_bytes(payload: &[u8], span: json::Span) -> Option<Item> {
    if payload.get(json::skip_ws(payload, 0)) != Some(&b'{') {
        return None;
    }
    let raw = payload.get(span.start..span.end)?;
    let b64 = if span.escaped { json::unescape(raw) } else { raw.to_vec() };
    let inner = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let c = json::check(&inner, None).ok()?;
    Some(json::event(&inner, &c, None))
}

/// Where an error event's message comes from.
enum Message<'a> {
    /// An exception's payload: its `message` / `Message` member, or the payload as text.
    Payload(&'a [u8]),
    /// An `:error-message` header.
    Text(&'a [u8]),
}

/// `event: error` with data `{"error":{"type":..,"message":..}}`.
fn error_event(kind: &[u8], message: Message<'_>) -> Item {
    let mut data = Vec::with_capacity(48 + kind.len());
    data.extend_from_slice(b"{\"error\":{\"type\":\"");
    json::escape_string_into(kind, &mut data);
    data.extend_from_slice(b"\",\"message\":\"");
    match message {
        Message::Text(text) => json::escape_string_into(text, &mut data),
        Message::Payload(payload) => {
            let member = [&b"message"[..], b"Message"].into_iter().find_map(|field| {
                let c = json::check(payload, Some(field)).ok()?;
                (payload.get(c.start) == Some(&b'{')).then_some(c.name).flatten()
            });
            match member {
                // Already valid JSON string content (escapes and all).
                Some(span) => data.extend_from_slice(payload.get(span.start..span.end).unwrap_or_default()),
                None => json::escape_string_into(payload, &mut data),
            }
        }
    }
    data.extend_from_slice(b"\"}}");
    Item::Event(Event::data(data).with_name("error"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &[u8]) -> String {
        let mut out = Vec::new();
        json::escape_string_into(s, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// A prelude (total length, headers length, CRC) with a correct CRC.
    fn prelude_bytes(total: usize, headers: usize) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&(total as u32).to_be_bytes());
        p.extend_from_slice(&(headers as u32).to_be_bytes());
        let crc = crc32fast::hash(&p);
        p.extend_from_slice(&crc.to_be_bytes());
        p
    }

    fn kinds(items: &[Item]) -> Vec<&'static str> {
        items.iter().filter_map(|i| if let Item::Error(e) = i { Some(e.kind()) } else { None }).collect()
    }

    #[test]
    fn the_limits_are_inclusive() {
        // cargo-mutants: `total > MAX_MESSAGE_LEN` and `headers > MAX_HEADERS_LEN` as `>=` were not caught.
        let mut out = Vec::new();
        let mut d = EventstreamDecoder::new(MAX_MESSAGE_LEN);
        d.push(&Bytes::from(prelude_bytes(MAX_MESSAGE_LEN, MAX_HEADERS_LEN)), &mut out);
        assert!(out.is_empty(), "a frame at both limits is read: {out:?}");
        assert!(matches!(d.state, State::Frame { need } if need == MAX_MESSAGE_LEN));
        for (total, headers) in [(MAX_MESSAGE_LEN + 1, 0), (MAX_MESSAGE_LEN, MAX_HEADERS_LEN + 1)] {
            let mut out = Vec::new();
            let mut d = EventstreamDecoder::new(MAX_MESSAGE_LEN);
            d.push(&Bytes::from(prelude_bytes(total, headers)), &mut out);
            assert_eq!(kinds(&out), ["malformed_frame"], "{total} {headers}");
        }
    }

    #[test]
    fn a_large_frame_buffer_is_released_a_small_one_kept() {
        // cargo-mutants: the `capacity > 64 << 10` release after a frame was not caught.
        let frame = |payload: usize| {
            let total = OVERHEAD + payload;
            let mut f = prelude_bytes(total, 0);
            f.extend(std::iter::repeat_n(b'x', payload));
            let crc = crc32fast::hash(&f);
            f.extend_from_slice(&crc.to_be_bytes());
            f
        };
        for (payload, released) in [(100 << 10, true), (1 << 10, false)] {
            let mut d = EventstreamDecoder::new(MAX_MESSAGE_LEN);
            let f = frame(payload);
            let mut out = Vec::new();
            // Two chunks, so the frame is assembled in the decoder's buffer.
            let (a, b) = f.split_at(f.len() / 2);
            d.push(&Bytes::copy_from_slice(a), &mut out);
            d.push(&Bytes::copy_from_slice(b), &mut out);
            assert_eq!(out.len(), 1, "{payload}: {:?}", kinds(&out));
            assert_eq!(d.buf.capacity() == 0, released, "{payload}: capacity {}", d.buf.capacity());
        }
    }

    #[test]
    fn escapes() {
        assert_eq!(esc(b"a\"b\\c\nd\r\te\x01\x7f"), "a\\\"b\\\\c\\nd\\r\\te\\u0001\x7f");
        assert_eq!(esc(b"\xff\xc3\xa9"), "\u{fffd}\u{e9}");
    }

    #[test]
    fn header_types() {
        // Every value type, then a truncated one.
        let mut h = Vec::new();
        for (kind, value) in [
            (0u8, &b""[..]),
            (1, b""),
            (2, b"\x01"),
            (3, b"\x00\x02"),
            (4, b"\0\0\0\x03"),
            (5, b"\0\0\0\0\0\0\0\x04"),
            (6, b"\x00\x02ab"),
            (7, b"\x00\x05event"),
            (8, b"\0\0\0\0\0\0\0\x05"),
            (9, b"0123456789abcdef"),
        ] {
            h.push(1);
            h.push(b'0' + kind);
            h.push(kind);
            h.extend_from_slice(value);
        }
        assert!(headers(&h).is_some());
        assert!(headers(&h[..h.len() - 1]).is_none());
        assert!(headers(b"\x01x\x0a").is_none(), "unknown type");
        assert!(headers(b"\x00\x00").is_none(), "empty name");
        let found = headers(b"\x0d:message-type\x07\x00\x05event").unwrap_or_default();
        assert_eq!(found.message_type, Some(&b"event"[..]));
    }
}
