//! The SSE output: [`Event`]s to `text/event-stream` bytes that every conforming client parses back into
//! exactly the same event. [`Output::Sse`](super::Output::Sse) dispatches here; the free functions are
//! re-exported as `ssegate_frame::encode::{event, comment, retry, HEARTBEAT, encoded_len_hint}`.
//!
//! Rules (WHATWG HTML, "Server-sent events", and ssegate's `docs/ARCHITECTURE.md`):
//! - every payload line is its own `data: ` line, always with the space: "If value starts with a U+0020
//!   SPACE character, remove it from value", so a payload that itself starts with a space survives;
//! - CR, LF and CRLF inside the payload are line breaks ("Lines must be separated by either a U+000D
//!   CARRIAGE RETURN U+000A LINE FEED (CRLF) character pair, a single U+000A LINE FEED (LF) character, or a
//!   single U+000D CARRIAGE RETURN (CR) character"), written as LF; an empty payload line is `data: `;
//! - `event:` and `id:` values never contain CR or LF (they are removed, so no field can be injected);
//!   an `id` containing NUL is dropped, because "If the field value does not contain U+0000 NULL" is the
//!   parser's condition for using it; a gateway-assigned [`Id`] prefix has CR, LF and NUL removed;
//! - `retry:` and the sequence number of an [`Id`] are written from integers, so they are digits only;
//! - an event ends with a blank line; comments start with `:`.

use bytes::BufMut;
use memchr::{memchr2, memchr3};

use super::Id;
use crate::Event;

/// The heartbeat comment, a complete SSE block on its own.
///
/// ```
/// assert_eq!(ssegate_frame::encode::HEARTBEAT, b": keepalive\n\n");
/// ```
pub const HEARTBEAT: &[u8] = b": keepalive\n\n";

/// The media type of an SSE response.
pub(super) const CONTENT_TYPE: &str = "text/event-stream; charset=utf-8";

/// Appends `ev` as one complete SSE event (ending in a blank line).
///
/// ```
/// use ssegate_frame::{encode, Event};
///
/// let mut out = Vec::new();
/// encode::event(&Event::data("a\nb").with_name("delta").with_id("7"), &mut out);
/// assert_eq!(out, b"id: 7\nevent: delta\ndata: a\ndata: b\n\n");
/// ```
pub fn event<B: BufMut>(ev: &Event, out: &mut B) {
    if let Some(id) = &ev.id {
        if !id.contains(&0) {
            single_line_field(b"id: ", id, out);
        }
    }
    event_without_id(ev, out);
}

/// Appends `ev` with the gateway-assigned `id` instead of its own (see [`Id`]).
pub(super) fn event_with_id<B: BufMut>(ev: &Event, id: Id<'_>, out: &mut B) {
    out.put_slice(b"id: ");
    if let Some(prefix) = id.prefix.filter(|p| !p.is_empty()) {
        let mut rest = prefix;
        while let Some(i) = memchr3(b'\r', b'\n', 0, rest) {
            out.put_slice(&rest[..i]);
            rest = &rest[i + 1..];
        }
        out.put_slice(rest);
        out.put_u8(b'.');
    }
    super::put_u64(id.seq, out);
    out.put_u8(b'\n');
    event_without_id(ev, out);
}

/// Appends `json` as an `event: error` whose data is `json` (one `data:` line for one-line JSON).
pub(super) fn error<B: BufMut>(json: &[u8], out: &mut B) {
    out.put_slice(b"event: error\n");
    data_lines(json, out);
    out.put_u8(b'\n');
}

/// The fields after `id:`: `event:`, `retry:`, the data lines and the blank line.
fn event_without_id<B: BufMut>(ev: &Event, out: &mut B) {
    if let Some(name) = &ev.name {
        if !name.is_empty() {
            single_line_field(b"event: ", name, out);
        }
    }
    if let Some(ms) = ev.retry {
        retry_line(ms, out);
    }
    data_lines(&ev.data, out);
    out.put_u8(b'\n');
}

/// Appends a comment block (`: text` per line, then a blank line). Line breaks in `text` start new comment
/// lines, so a comment can never turn into a field.
///
/// ```
/// let mut out = Vec::new();
/// ssegate_frame::encode::comment(b"ping\ndata: x", &mut out);
/// assert_eq!(out, b": ping\n: data: x\n\n");
/// ```
pub fn comment<B: BufMut>(text: &[u8], out: &mut B) {
    for_each_line(text, |line| {
        out.put_slice(b":");
        if !line.is_empty() {
            out.put_u8(b' ');
            out.put_slice(line);
        }
        out.put_u8(b'\n');
    });
    out.put_u8(b'\n');
}

/// Appends a standalone `retry:` block telling clients how long to wait before reconnecting.
///
/// ```
/// let mut out = Vec::new();
/// ssegate_frame::encode::retry(2500, &mut out);
/// assert_eq!(out, b"retry: 2500\n\n");
/// ```
pub fn retry<B: BufMut>(ms: u64, out: &mut B) {
    retry_line(ms, out);
    out.put_u8(b'\n');
}

/// An upper bound of the bytes [`event`] writes for `ev` (for reserving capacity).
///
/// ```
/// use ssegate_frame::{encode, Event};
///
/// let ev = Event::data("a\nb");
/// let mut out = Vec::new();
/// encode::event(&ev, &mut out);
/// assert!(out.len() <= encode::encoded_len_hint(&ev));
/// ```
pub fn encoded_len_hint(ev: &Event) -> usize {
    ev.id.as_ref().map_or(0, |v| v.len() + 5) + len_hint_without_id(ev)
}

/// An upper bound of the bytes [`Output::event_with_id`](super::Output::event_with_id) writes.
pub(super) fn encoded_len_hint_with_id(ev: &Event, id: Id<'_>) -> usize {
    // "id: " + prefix + "." + at most 20 digits + LF.
    id.prefix.map_or(0, |p| p.len() + 1) + 25 + len_hint_without_id(ev)
}

fn len_hint_without_id(ev: &Event) -> usize {
    let fields = ev.name.as_ref().map_or(0, |v| v.len() + 8) + ev.retry.map_or(0, |_| 28);
    // Worst case every data byte is a line break: 7 bytes ("data: " + LF) per byte.
    fields + 8 + if memchr2(b'\r', b'\n', &ev.data).is_some() { ev.data.len() * 7 } else { ev.data.len() + 7 }
}

fn data_lines<B: BufMut>(data: &[u8], out: &mut B) {
    for_each_line(data, |line| {
        out.put_slice(b"data: ");
        out.put_slice(line);
        out.put_u8(b'\n');
    });
}

fn retry_line<B: BufMut>(ms: u64, out: &mut B) {
    out.put_slice(b"retry: ");
    super::put_u64(ms, out);
    out.put_u8(b'\n');
}

/// Writes `name` + `value` with every CR and LF removed from `value`, then LF.
fn single_line_field<B: BufMut>(name: &[u8], value: &[u8], out: &mut B) {
    out.put_slice(name);
    let mut rest = value;
    while let Some(i) = memchr2(b'\r', b'\n', rest) {
        out.put_slice(&rest[..i]);
        rest = &rest[i + 1..];
    }
    out.put_slice(rest);
    out.put_u8(b'\n');
}

/// Calls `f` for every line of `text`, splitting at CRLF, LF and CR. An empty `text` is one empty line;
/// a trailing line break yields a trailing empty line (so `"a\n"` is `"a"`, `""`).
fn for_each_line(text: &[u8], mut f: impl FnMut(&[u8])) {
    let mut rest = text;
    while let Some(i) = memchr2(b'\r', b'\n', rest) {
        f(&rest[..i]);
        let skip = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') { 2 } else { 1 };
        rest = &rest[i + skip..];
    }
    f(rest);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn enc(ev: &Event) -> String {
        let mut out = Vec::new();
        event(ev, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn single_line() {
        assert_eq!(enc(&Event::data("hi")), "data: hi\n\n");
    }

    #[test]
    fn leading_space_is_kept_by_the_mandatory_space() {
        assert_eq!(enc(&Event::data(" x")), "data:  x\n\n");
    }

    #[test]
    fn every_line_break_kind_splits_data() {
        assert_eq!(enc(&Event::data("a\nb\r\nc\rd")), "data: a\ndata: b\ndata: c\ndata: d\n\n");
        assert_eq!(enc(&Event::data("a\n\nb")), "data: a\ndata: \ndata: b\n\n");
        assert_eq!(enc(&Event::data("a\n")), "data: a\ndata: \n\n");
        assert_eq!(enc(&Event::data("\r\r\n")), "data: \ndata: \ndata: \n\n");
    }

    #[test]
    fn empty_data_is_one_empty_data_line() {
        assert_eq!(enc(&Event::data("")), "data: \n\n");
    }

    #[test]
    fn fields_cannot_be_injected() {
        let ev = Event::data("x").with_name("a\r\ndata: evil").with_id("1\nevent: evil");
        assert_eq!(enc(&ev), "id: 1event: evil\nevent: adata: evil\ndata: x\n\n");
    }

    #[test]
    fn id_with_nul_is_dropped_and_empty_name_omitted() {
        let ev = Event::data("x").with_name("").with_id(Bytes::from_static(b"a\0b"));
        assert_eq!(enc(&ev), "data: x\n\n");
    }

    #[test]
    fn empty_id_resets() {
        assert_eq!(enc(&Event::data("x").with_id("")), "id: \ndata: x\n\n");
    }

    #[test]
    fn retry_is_digits() {
        let ev = Event { retry: Some(0), ..Event::data("x") };
        assert_eq!(enc(&ev), "retry: 0\ndata: x\n\n");
        let mut out = Vec::new();
        retry(u64::MAX, &mut out);
        assert_eq!(out, b"retry: 18446744073709551615\n\n");
    }

    #[test]
    fn comments_stay_comments() {
        let mut out = Vec::new();
        comment(b"ping\ndata: evil", &mut out);
        assert_eq!(out, b": ping\n: data: evil\n\n");
        assert_eq!(HEARTBEAT, b": keepalive\n\n");
    }

    #[test]
    fn len_hint_is_an_upper_bound() {
        for data in ["", "a", "\n\n\n", "a\r\nb", "\r"] {
            let ev = Event::data(data).with_name("n\n").with_id("i");
            let ev = Event { retry: Some(u64::MAX), ..ev };
            let mut out = Vec::new();
            event(&ev, &mut out);
            assert!(out.len() <= encoded_len_hint(&ev), "{data:?}");
        }
    }
}
