//! The NDJSON output (`application/x-ndjson`): one JSON value per line, every line ending in LF, one line
//! per message (so a message is flushed as soon as it is written). [`Output::Ndjson`](super::Output::Ndjson)
//! dispatches here.
//!
//! Rules:
//! - **Bare form.** An event with no name (or an empty one) and no id, whose data is one JSON value (by
//!   ssegate's validator, the one the JSON decoders use), is written as that value, compacted: a JSON
//!   stream in gives the same JSON stream out.
//! - **Object form.** Every other event is written as `{"event":NAME,"data":DATA,"id":ID}` in that key
//!   order, `event` left out without a name (or with an empty one), `id` left out without an id:
//!   - `NAME` and `ID` are JSON strings (lossy UTF-8: invalid bytes become U+FFFD);
//!   - `DATA` is the data itself, compacted, when the data is a JSON **object or array**; otherwise
//!     (text, a JSON scalar, empty) it is a JSON string holding the data exactly (lossy UTF-8). So in the
//!     object form a string `data` always means text, and `"data":"42"` is the text `42`, never a
//!     number: nothing is ambiguous;
//!   - a gateway-assigned id (`event_with_id`) is the string `"<prefix>.<seq>"` (or `"<seq>"`), with
//!     CR, LF and NUL removed from the prefix as for SSE, so both outputs carry the same ids.
//! - [`Event::retry`] is not written (NDJSON has no reconnection delay).
//! - A reader cannot tell a bare object from the object form by its shape alone (a bare value may well
//!   be `{"event":..,"data":..}`): routes whose events have names or ids produce object forms.
//! - **Comments** are not written (NDJSON has none). A **heartbeat** is an empty line (`\n`): clients must
//!   skip empty lines (most NDJSON readers do). `retry` writes nothing.
//! - **Errors** (`error(json_body)`): the body on a line of its own, compacted; a body that is not valid
//!   JSON is written as a JSON string instead, so every line stays one JSON value.

use bytes::BufMut;

use super::Id;
use crate::decode::json;
use crate::Event;

/// The media type of an NDJSON response.
pub(super) const CONTENT_TYPE: &str = "application/x-ndjson";

/// The heartbeat: an empty line.
pub(super) const HEARTBEAT: &[u8] = b"\n";

/// Appends `ev` as one line, with its own id (if any).
pub(super) fn event<B: BufMut>(ev: &Event, out: &mut B) {
    let named = ev.name.as_ref().is_some_and(|n| !n.is_empty());
    if !named && ev.id.is_none() {
        if let Ok(c) = json::check(&ev.data, None) {
            put_json(&ev.data, &c, out);
            out.put_u8(b'\n');
            return;
        }
    }
    object(ev, out);
    if let Some(id) = &ev.id {
        out.put_slice(b",\"id\":\"");
        json::escape_string_into(id, out);
        out.put_u8(b'"');
    }
    out.put_slice(b"}\n");
}

/// Appends `ev` in the object form with the gateway-assigned `id` instead of its own.
pub(super) fn event_with_id<B: BufMut>(ev: &Event, id: Id<'_>, out: &mut B) {
    object(ev, out);
    out.put_slice(b",\"id\":\"");
    if let Some(prefix) = id.prefix.filter(|p| !p.is_empty()) {
        for piece in prefix.split(|&c| matches!(c, b'\r' | b'\n' | 0)) {
            json::escape_string_into(piece, out);
        }
        out.put_u8(b'.');
    }
    super::put_u64(id.seq, out);
    out.put_slice(b"\"}\n");
}

/// An upper bound of the bytes [`event`] (`id: None`) or [`event_with_id`] writes: escaping writes at
/// most 6 bytes per input byte.
pub(super) fn encoded_len_hint(ev: &Event, id: Option<Id<'_>>) -> usize {
    let name = ev.name.as_ref().map_or(0, |n| n.len());
    let own_id = ev.id.as_ref().map_or(0, |i| i.len());
    let given = id.map_or(0, |id| id.prefix.map_or(0, <[u8]>::len) + 21);
    6 * (name + ev.data.len() + own_id + given) + 32
}

/// Appends `json_body` as a line of its own: compacted, or as a JSON string if it is not JSON.
pub(super) fn error<B: BufMut>(json_body: &[u8], out: &mut B) {
    match json::check(json_body, None) {
        Ok(c) => put_json(json_body, &c, out),
        Err(_) => {
            out.put_u8(b'"');
            json::escape_string_into(json_body, out);
            out.put_u8(b'"');
        }
    }
    out.put_u8(b'\n');
}

/// `{"event":NAME,"data":DATA` (without the closing brace).
fn object<B: BufMut>(ev: &Event, out: &mut B) {
    out.put_u8(b'{');
    if let Some(name) = ev.name.as_ref().filter(|n| !n.is_empty()) {
        out.put_slice(b"\"event\":\"");
        json::escape_string_into(name, out);
        out.put_slice(b"\",");
    }
    out.put_slice(b"\"data\":");
    match json::check(&ev.data, None) {
        Ok(c) if matches!(ev.data.get(c.start), Some(b'{' | b'[')) => put_json(&ev.data, &c, out),
        _ => {
            out.put_u8(b'"');
            json::escape_string_into(&ev.data, out);
            out.put_u8(b'"');
        }
    }
}

/// The validated value, compacted.
fn put_json<B: BufMut>(raw: &[u8], c: &json::Checked, out: &mut B) {
    let value = raw.get(c.start..c.end).unwrap_or_default();
    if c.compact {
        out.put_slice(value);
    } else {
        json::compact_into(value, out);
    }
}

#[cfg(test)]
mod tests {
    use super::super::Output;
    use super::*;

    fn ev_line(ev: &Event) -> String {
        let mut out = Vec::new();
        Output::Ndjson.event(ev, &mut out);
        assert!(out.len() <= Output::Ndjson.encoded_len_hint(ev, None));
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn bare_values() {
        assert_eq!(ev_line(&Event::data("{\"a\": [1, 2]}")), "{\"a\":[1,2]}\n");
        assert_eq!(ev_line(&Event::data(" 42 ")), "42\n");
        assert_eq!(ev_line(&Event::data("\"s\"")), "\"s\"\n");
        // An empty name is no name; retry is not written.
        let ev = Event { retry: Some(5), ..Event::data("[1]").with_name("") };
        assert_eq!(ev_line(&ev), "[1]\n");
    }

    #[test]
    fn object_form() {
        assert_eq!(ev_line(&Event::data("hello\nworld")), "{\"data\":\"hello\\nworld\"}\n");
        assert_eq!(ev_line(&Event::data("")), "{\"data\":\"\"}\n");
        assert_eq!(
            ev_line(&Event::data("{\"t\": 1}").with_name("delta")),
            "{\"event\":\"delta\",\"data\":{\"t\":1}}\n"
        );
        // JSON scalars are strings in the object form: the text exactly.
        assert_eq!(ev_line(&Event::data("42").with_name("n")), "{\"event\":\"n\",\"data\":\"42\"}\n");
        assert_eq!(ev_line(&Event::data("\"q\"").with_id("7")), "{\"data\":\"\\\"q\\\"\",\"id\":\"7\"}\n");
        assert_eq!(
            ev_line(&Event::data("x").with_name("a\"b\n").with_id("i\0")),
            "{\"event\":\"a\\\"b\\n\",\"data\":\"x\",\"id\":\"i\\u0000\"}\n"
        );
        assert_eq!(
            ev_line(&Event::data(&b"\xff\x01"[..])),
            "{\"data\":\"\u{fffd}\\u0001\"}\n",
            "lossy UTF-8, control characters escaped"
        );
    }

    #[test]
    fn gateway_ids() {
        let mut out = Vec::new();
        let ev = Event::data("[1]").with_id("upstream");
        Output::Ndjson.event_with_id(&ev, Id::new(0), &mut out);
        Output::Ndjson.event_with_id(&ev, Id::with_prefix(b"a\r\nb\0\"", u64::MAX), &mut out);
        Output::Ndjson.event_with_id(&Event::data("t").with_name("e"), Id::with_prefix(b"", 3), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap_or_default(),
            "{\"data\":[1],\"id\":\"0\"}\n{\"data\":[1],\"id\":\"ab\\\".18446744073709551615\"}\n\
             {\"event\":\"e\",\"data\":\"t\",\"id\":\"3\"}\n"
        );
        let ev = Event::data("\u{1}".repeat(10)).with_name("\u{1}".repeat(10));
        let id = Id::with_prefix(b"\x01\x01", u64::MAX);
        let mut out = Vec::new();
        Output::Ndjson.event_with_id(&ev, id, &mut out);
        assert!(out.len() <= Output::Ndjson.encoded_len_hint(&ev, Some(id)));
        // cargo-mutants: `prefix.len() + 21` as `* 21` was not caught: a short id, a long sequence number.
        let ev = Event::data("x");
        for id in [Id::new(u64::MAX), Id::with_prefix(b"p", u64::MAX)] {
            let mut out = Vec::new();
            Output::Ndjson.event_with_id(&ev, id, &mut out);
            assert!(out.len() <= Output::Ndjson.encoded_len_hint(&ev, Some(id)), "{}", out.len());
        }
    }

    #[test]
    fn heartbeat_comment_retry_error() {
        let mut out = Vec::new();
        Output::Ndjson.heartbeat(&mut out);
        Output::Ndjson.comment(b"ignored", &mut out);
        Output::Ndjson.retry(3000, &mut out);
        Output::Ndjson.error(b"{\"error\": {\"type\": \"shutdown\",\n \"status\": 503}}", &mut out);
        Output::Ndjson.error(b"not json\n", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap_or_default(),
            "\n{\"error\":{\"type\":\"shutdown\",\"status\":503}}\n\"not json\\n\"\n"
        );
        assert_eq!(Output::Ndjson.content_type(), "application/x-ndjson");
    }
}
