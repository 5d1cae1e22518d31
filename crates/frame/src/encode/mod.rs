//! Output encoders: [`Event`]s, comments, heartbeats, `retry:` and errors as the bytes of the response
//! format a route serves, chosen once per stream as an [`Output`].
//!
//! Each format is one file beside this one ([`Output::Sse`] in `sse.rs`, [`Output::Ndjson`] in
//! `ndjson.rs`); a new format is a new
//! variant and a new file, and callers that go through [`Output`] do not change. Every writer appends to
//! any [`BufMut`] (a reused `BytesMut` in the gateway) and allocates nothing per event.
//!
//! The free functions [`event`], [`comment`], [`retry`], [`encoded_len_hint`] and the [`HEARTBEAT`]
//! constant are the SSE writers, kept for callers that only ever write SSE.
//!
//! ```
//! use bytes::BytesMut;
//! use ssegate_frame::encode::{Id, Output};
//! use ssegate_frame::Event;
//!
//! let output = Output::Sse;
//! let mut out = BytesMut::new();
//! output.event_with_id(&Event::data("{\"t\":1}").with_id("upstream-7"), Id::new(1), &mut out);
//! output.heartbeat(&mut out);
//! assert_eq!(&out[..], b"id: 1\ndata: {\"t\":1}\n\n: keepalive\n\n");
//! assert_eq!(output.content_type(), "text/event-stream; charset=utf-8");
//! ```

use bytes::BufMut;

use crate::Event;

mod ndjson;
mod sse;

pub use sse::{comment, encoded_len_hint, event, retry, HEARTBEAT};

/// The format of a response body, chosen once per stream.
///
/// Enum dispatch (no trait object): every method is a `match` on a `Copy` value, so the format costs one
/// branch per call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Output {
    /// Server-Sent Events (`text/event-stream`), per the WHATWG HTML standard, "Server-sent events".
    ///
    /// ```
    /// use ssegate_frame::encode::Output;
    ///
    /// assert_eq!(Output::default(), Output::Sse);
    /// ```
    #[default]
    Sse,
    /// Newline-delimited JSON (`application/x-ndjson`): one JSON value per line.
    ///
    /// An event with no name and no id whose data is JSON is written as that value (compacted); any
    /// other event as `{"event":NAME,"data":DATA,"id":ID}` (`event` and `id` only when present; `DATA`
    /// the JSON itself when the data is a JSON object or array, else a JSON string of the data). A
    /// heartbeat is an empty line, which clients must skip; comments and `retry` write nothing; an error
    /// is its JSON body on a line of its own. The exact rules are in the module's source documentation
    /// (`encode/ndjson.rs`).
    ///
    /// ```
    /// use ssegate_frame::encode::{Id, Output};
    /// use ssegate_frame::Event;
    ///
    /// let mut out = Vec::new();
    /// Output::Ndjson.event(&Event::data("{\"t\": 1}"), &mut out);
    /// Output::Ndjson.event(&Event::data("{\"t\":2}").with_name("delta"), &mut out);
    /// Output::Ndjson.event_with_id(&Event::data("plain text"), Id::new(3), &mut out);
    /// Output::Ndjson.heartbeat(&mut out);
    /// assert_eq!(
    ///     out,
    ///     &b"{\"t\":1}\n{\"event\":\"delta\",\"data\":{\"t\":2}}\n{\"data\":\"plain text\",\"id\":\"3\"}\n\n"[..]
    /// );
    /// assert_eq!(Output::Ndjson.content_type(), "application/x-ndjson");
    /// ```
    Ndjson,
}

/// An event id assigned by the gateway: written as `id: <prefix>.<seq>`, or `id: <seq>` without a
/// prefix (or with an empty one).
///
/// The prefix is written as given except that CR, LF and NUL are removed: "If the field value does not
/// contain U+0000 NULL, then set the last event ID buffer to the field value", so an id with a NUL would
/// be ignored by every client, and a line break would end the field. The sequence number is digits only.
///
/// ```
/// use ssegate_frame::encode::{Id, Output};
/// use ssegate_frame::Event;
///
/// let mut out = Vec::new();
/// Output::Sse.event_with_id(&Event::data("x"), Id::with_prefix(b"r1", 42), &mut out);
/// assert_eq!(out, b"id: r1.42\ndata: x\n\n");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Id<'a> {
    /// Written before the sequence number and a `.` (e.g. a stream or process identifier).
    pub prefix: Option<&'a [u8]>,
    /// The sequence number of the event in its stream.
    pub seq: u64,
}

impl Id<'static> {
    /// An id without prefix: `id: <seq>`.
    ///
    /// ```
    /// assert_eq!(ssegate_frame::encode::Id::new(3).prefix, None);
    /// ```
    pub fn new(seq: u64) -> Self {
        Id { prefix: None, seq }
    }
}

impl<'a> Id<'a> {
    /// An id `<prefix>.<seq>`.
    ///
    /// ```
    /// let id = ssegate_frame::encode::Id::with_prefix(b"abc", 3);
    /// assert_eq!((id.prefix, id.seq), (Some(&b"abc"[..]), 3));
    /// ```
    pub fn with_prefix(prefix: &'a [u8], seq: u64) -> Self {
        Id { prefix: Some(prefix), seq }
    }
}

impl Output {
    /// The `Content-Type` of a response in this format.
    ///
    /// ```
    /// use ssegate_frame::encode::Output;
    ///
    /// assert_eq!(Output::Sse.content_type(), "text/event-stream; charset=utf-8");
    /// ```
    pub fn content_type(self) -> &'static str {
        match self {
            Output::Sse => sse::CONTENT_TYPE,
            Output::Ndjson => ndjson::CONTENT_TYPE,
        }
    }

    /// Appends `ev` as one complete message, with its own id (if any). For SSE this is [`event`].
    ///
    /// ```
    /// use ssegate_frame::encode::Output;
    /// use ssegate_frame::Event;
    ///
    /// let mut out = Vec::new();
    /// Output::Sse.event(&Event::data("hi").with_name("greeting"), &mut out);
    /// assert_eq!(out, b"event: greeting\ndata: hi\n\n");
    /// ```
    pub fn event<B: BufMut>(self, ev: &Event, out: &mut B) {
        match self {
            Output::Sse => sse::event(ev, out),
            Output::Ndjson => ndjson::event(ev, out),
        }
    }

    /// Appends `ev` as one complete message with the gateway-assigned `id` replacing any id of `ev`
    /// (written in place: no allocation per event).
    ///
    /// ```
    /// use ssegate_frame::encode::{Id, Output};
    /// use ssegate_frame::Event;
    ///
    /// let ev = Event::data("x").with_id("from-upstream");
    /// let mut out = Vec::new();
    /// Output::Sse.event_with_id(&ev, Id::new(7), &mut out);
    /// Output::Sse.event_with_id(&ev, Id::with_prefix(b"s", 8), &mut out);
    /// assert_eq!(out, b"id: 7\ndata: x\n\nid: s.8\ndata: x\n\n");
    /// ```
    pub fn event_with_id<B: BufMut>(self, ev: &Event, id: Id<'_>, out: &mut B) {
        match self {
            Output::Sse => sse::event_with_id(ev, id, out),
            Output::Ndjson => ndjson::event_with_id(ev, id, out),
        }
    }

    /// An upper bound of the bytes [`Output::event`] (`id: None`) or [`Output::event_with_id`] writes for
    /// `ev`, for reserving capacity.
    ///
    /// ```
    /// use ssegate_frame::encode::{Id, Output};
    /// use ssegate_frame::Event;
    ///
    /// let ev = Event::data("a\nb");
    /// let mut out = Vec::new();
    /// Output::Sse.event_with_id(&ev, Id::new(u64::MAX), &mut out);
    /// assert!(out.len() <= Output::Sse.encoded_len_hint(&ev, Some(Id::new(u64::MAX))));
    /// ```
    pub fn encoded_len_hint(self, ev: &Event, id: Option<Id<'_>>) -> usize {
        match (self, id) {
            (Output::Sse, None) => sse::encoded_len_hint(ev),
            (Output::Sse, Some(id)) => sse::encoded_len_hint_with_id(ev, id),
            (Output::Ndjson, id) => ndjson::encoded_len_hint(ev, id),
        }
    }

    /// Appends a comment: text for people reading the raw stream, ignored by clients. Line breaks in
    /// `text` cannot turn it into anything else. For SSE this is [`comment`]; NDJSON has no comments, so
    /// [`Output::Ndjson`] writes nothing.
    ///
    /// ```
    /// use ssegate_frame::encode::Output;
    ///
    /// let mut out = Vec::new();
    /// Output::Sse.comment(b"hello", &mut out);
    /// assert_eq!(out, b": hello\n\n");
    /// ```
    pub fn comment<B: BufMut>(self, text: &[u8], out: &mut B) {
        match self {
            Output::Sse => sse::comment(text, out),
            Output::Ndjson => {}
        }
    }

    /// Appends a heartbeat: bytes that keep an idle connection (and the proxies on its way) alive and
    /// that clients ignore. For SSE, the comment [`HEARTBEAT`]; for [`Output::Ndjson`], an empty line
    /// (`\n`), which NDJSON clients must skip.
    ///
    /// ```
    /// use ssegate_frame::encode::Output;
    ///
    /// let mut out = Vec::new();
    /// Output::Sse.heartbeat(&mut out);
    /// assert_eq!(out, b": keepalive\n\n");
    /// ```
    pub fn heartbeat<B: BufMut>(self, out: &mut B) {
        match self {
            Output::Sse => out.put_slice(HEARTBEAT),
            Output::Ndjson => out.put_slice(ndjson::HEARTBEAT),
        }
    }

    /// Appends a reconnection delay in milliseconds, as a message of its own. For SSE this is [`retry`];
    /// NDJSON has no such thing, so [`Output::Ndjson`] writes nothing.
    ///
    /// ```
    /// use ssegate_frame::encode::Output;
    ///
    /// let mut out = Vec::new();
    /// Output::Sse.retry(3000, &mut out);
    /// assert_eq!(out, b"retry: 3000\n\n");
    /// ```
    pub fn retry<B: BufMut>(self, ms: u64, out: &mut B) {
        match self {
            Output::Sse => sse::retry(ms, out),
            Output::Ndjson => {}
        }
    }

    /// Appends an error report after the response was committed, framed as the format does it. The
    /// caller builds `json_body` (ssegate's `{"error":{"type":..,"message":..,"status":N}}`); the
    /// encoder only frames it. For SSE: `event: error` with the body as data, i.e.
    /// `event: error\ndata: <json>\n\n` for one-line JSON (a line break in the body would start another
    /// `data:` line, never another field). For [`Output::Ndjson`]: the body, compacted, as a line of its
    /// own (a body that is not JSON becomes a JSON string).
    ///
    /// ```
    /// use ssegate_frame::encode::Output;
    ///
    /// let mut out = Vec::new();
    /// Output::Sse.error(br#"{"error":{"type":"shutdown","message":"bye","status":503}}"#, &mut out);
    /// assert_eq!(
    ///     out,
    ///     &b"event: error\ndata: {\"error\":{\"type\":\"shutdown\",\"message\":\"bye\",\"status\":503}}\n\n"[..]
    /// );
    /// ```
    pub fn error<B: BufMut>(self, json_body: &[u8], out: &mut B) {
        match self {
            Output::Sse => sse::error(json_body, out),
            Output::Ndjson => ndjson::error(json_body, out),
        }
    }
}

/// Writes `ms` in decimal digits (no allocation).
fn put_u64<B: BufMut>(ms: u64, out: &mut B) {
    let mut digits = [0u8; 20];
    let mut n = ms;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};

    fn with_id(ev: &Event, id: Id<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        Output::Sse.event_with_id(ev, id, &mut out);
        assert!(
            out.len() <= Output::Sse.encoded_len_hint(ev, Some(id)),
            "{:?}",
            String::from_utf8_lossy(&out)
        );
        out
    }

    #[test]
    fn event_with_id_replaces_the_events_id() {
        let ev = Event { retry: Some(5), ..Event::data("a\nb").with_name("n").with_id("up") };
        assert_eq!(with_id(&ev, Id::new(0)), b"id: 0\nevent: n\nretry: 5\ndata: a\ndata: b\n\n");
        assert_eq!(
            with_id(&ev, Id::new(u64::MAX)),
            b"id: 18446744073709551615\nevent: n\nretry: 5\ndata: a\ndata: b\n\n"
        );
        // An id the plain writer would drop (NUL) is replaced all the same.
        let nul = Event::data("x").with_id(Bytes::from_static(b"a\0b"));
        assert_eq!(with_id(&nul, Id::new(12)), b"id: 12\ndata: x\n\n");
    }

    #[test]
    fn len_hint_is_a_close_upper_bound() {
        // Exact for the longest sequence number: "id: " + prefix + "." + 20 digits + LF.
        let ev = Event::data("x");
        let longest = with_id(&ev, Id::with_prefix(b"abc", u64::MAX));
        let hint = Output::Sse.encoded_len_hint(&ev, Some(Id::with_prefix(b"abc", u64::MAX)));
        let plain = Output::Sse.encoded_len_hint(&ev, None);
        assert_eq!(hint - plain, "id: abc.18446744073709551615\n".len());
        assert!(longest.len() <= hint && hint <= longest.len() + 8, "{} {hint}", longest.len());
        let no_prefix = Output::Sse.encoded_len_hint(&ev, Some(Id::new(u64::MAX)));
        assert_eq!(no_prefix - plain, "id: 18446744073709551615\n".len());
        // An event's own id counts as "id: " + id + LF.
        let own = Event::data("x").with_id("abc");
        assert_eq!(encoded_len_hint(&own) - plain, "id: abc\n".len());
        // Without line breaks in the data, the hint is within a few bytes.
        let ev = Event { retry: Some(u64::MAX), ..Event::data("hello").with_name("n").with_id("i") };
        let mut out = Vec::new();
        event(&ev, &mut out);
        assert!(out.len() <= encoded_len_hint(&ev) && encoded_len_hint(&ev) <= out.len() + 8);
    }

    #[test]
    fn id_prefix_is_one_clean_field() {
        let ev = Event::data("x");
        assert_eq!(with_id(&ev, Id::with_prefix(b"gw-1", 9)), b"id: gw-1.9\ndata: x\n\n");
        assert_eq!(with_id(&ev, Id::with_prefix(b"", 9)), b"id: 9\ndata: x\n\n");
        assert_eq!(with_id(&ev, Id::with_prefix(b"a\r\nb\0c\rd\ne", 10)), b"id: abcde.10\ndata: x\n\n");
        assert_eq!(with_id(&ev, Id::with_prefix(b"\0", 1)), b"id: .1\ndata: x\n\n");
    }

    #[test]
    fn event_with_id_is_the_old_gateway_writer() {
        // What the gateway wrote before `Output`: `writeln!(out, "id: {}", n)` then `encode::event` of the
        // event with its id cleared.
        let ev = Event { retry: Some(100), ..Event::data("d\r\n").with_name("x").with_id("old") };
        for n in [0, 1, 9, 10, 99, 100, 12_345, u64::MAX] {
            let mut old = BytesMut::new();
            let _ = std::fmt::Write::write_fmt(&mut old, format_args!("id: {n}\n"));
            event(&Event { id: None, ..ev.clone() }, &mut old);
            let mut new = BytesMut::new();
            Output::Sse.event_with_id(&ev, Id::new(n), &mut new);
            assert_eq!(new, old, "{n}");
        }
    }

    #[test]
    fn plain_methods_are_the_sse_writers() {
        let ev = Event::data(" a\rb").with_name("n").with_id("i");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        Output::Sse.event(&ev, &mut a);
        event(&ev, &mut b);
        assert_eq!(a, b"id: i\nevent: n\ndata:  a\ndata: b\n\n");
        assert_eq!(a, b);
        assert_eq!(Output::Sse.encoded_len_hint(&ev, None), encoded_len_hint(&ev));

        let mut out = Vec::new();
        Output::Sse.comment(b"c\r\nd", &mut out);
        Output::Sse.retry(42, &mut out);
        Output::Sse.heartbeat(&mut out);
        assert_eq!(out, b": c\n: d\n\nretry: 42\n\n: keepalive\n\n");
        assert_eq!(Output::Sse.content_type(), "text/event-stream; charset=utf-8");
    }

    /// The gateway's `respond::error_event` (`event: error\ndata: ` + body + `\n\n`), built by hand here.
    #[test]
    fn error_is_byte_identical_to_the_gateways_error_event() {
        for body in [
            &br#"{"error":{"type":"shutdown","message":"bye event: x","status":503}}"#[..],
            br#"{"error":{"type":"upstream_status","message":"upstream said \"no\"\n","status":429}}"#,
            br#"{"error":{"type":"decode","message":"","status":502}}"#,
        ] {
            let mut by_hand = BytesMut::new();
            by_hand.extend_from_slice(b"event: error\ndata: ");
            by_hand.extend_from_slice(body);
            by_hand.extend_from_slice(b"\n\n");
            let mut out = BytesMut::new();
            Output::Sse.error(body, &mut out);
            assert_eq!(out, by_hand);
        }
    }

    #[test]
    fn error_body_line_breaks_stay_data() {
        let mut out = Vec::new();
        Output::Sse.error(b"{\n\"a\":1}\r\nevent: x", &mut out);
        assert_eq!(out, b"event: error\ndata: {\ndata: \"a\":1}\ndata: event: x\n\n");
    }
}
