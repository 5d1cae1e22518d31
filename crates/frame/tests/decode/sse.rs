//! `sse`: the WHATWG event-stream interpretation rules.

use crate::common::*;
use ssegate_frame::{DecoderOptions, Event, Format, Item};

const F: Format = Format::Sse;

fn all(input: &str, expected: &[Item]) {
    case_default(F, input, expected, Twins::All);
}

#[test]
fn data_lines() {
    all("data: hello\n\n", &[ev("hello")]);
    all("data:hello\n\n", &[ev("hello")]);
    all("data:  two spaces\n\n", &[ev(" two spaces")]);
    all("data: a\ndata: b\n\n", &[ev("a\nb")]);
    all("data: a\ndata\ndata: b\n\n", &[ev("a\n\nb")]);
    all("data: a\ndata\n\n", &[ev("a\n")]);
    all("data: x: y\n\n", &[ev("x: y")]);
    all("data: héllo 😀 ✓\n\n", &[ev("héllo 😀 ✓")]);
    all("data: 1\n\ndata: 2\n\n", &[ev("1"), ev("2")]);
}

#[test]
fn field_without_colon_is_an_empty_value() {
    all("data\n\n", &[ev("")]);
    all("data:\n\n", &[ev("")]);
    all("data: \n\n", &[ev("")]);
}

#[test]
fn blank_lines_and_unknown_fields() {
    all("\n\n\ndata: x\n\n\n\n", &[ev("x")]);
    all("foo: bar\ndata: x\nbaz\n\n", &[ev("x")]);
    all("Data: x\n\n", &[]);
    all("data : x\n\n", &[]);
    all(" data: x\n\n", &[]);
}

#[test]
fn no_data_no_dispatch() {
    all("event: a\n\n", &[]);
    all("event: a\n\ndata: x\n\n", &[ev("x")]);
}

#[test]
fn event_name() {
    all("event: add\ndata: x\n\n", &[named("add", "x")]);
    all("data: x\nevent: add\n\n", &[named("add", "x")]);
    all("event: a\nevent: b\ndata: x\n\n", &[named("b", "x")]);
    all("event:\ndata: x\n\n", &[ev("x")]);
    all("event: a\ndata: x\n\ndata: y\n\n", &[named("a", "x"), ev("y")]);
}

#[test]
fn ids_persist_and_are_reported_once() {
    all("id: 1\ndata: x\n\n", &[with_id("1", "x")]);
    all("id: 1\ndata: x\n\ndata: y\n\n", &[with_id("1", "x"), ev("y")]);
    // An id in a block that dispatches nothing goes on the next event.
    all("id: 7\n\ndata: y\n\n", &[with_id("7", "y")]);
    all("id: 7\n\nid: 8\n\ndata: y\n\n", &[with_id("8", "y")]);
    all("id\ndata: x\n\n", &[with_id("", "x")]);
    all("id:  sp\ndata: x\n\n", &[with_id(" sp", "x")]);
}

#[test]
fn id_with_nul_is_ignored() {
    all("id: a\0b\ndata: x\n\n", &[ev("x")]);
    all("id: 1\nid: 2\0\ndata: x\n\n", &[with_id("1", "x")]);
}

#[test]
fn retry_digits_only() {
    all("retry: 1000\ndata: x\n\n", &[with_retry(1000, "x")]);
    all("retry: 1000\n\n", &[Item::Retry(1000)]);
    all("retry: 0\n\n", &[Item::Retry(0)]);
    all("retry: 18446744073709551615\n\n", &[Item::Retry(u64::MAX)]);
    for bad in ["retry: 10a", "retry:", "retry: -1", "retry: 1.5", "retry:  5", "retry: 18446744073709551616"]
    {
        all(&format!("{bad}\n\n"), &[]);
        all(&format!("{bad}\ndata: x\n\n"), &[ev("x")]);
    }
    all("retry: 5\nretry: x\ndata: a\n\n", &[with_retry(5, "a")]);
}

#[test]
fn comments() {
    all(": ping\ndata: x\n\n", &[ev("x")]);
    let opts = DecoderOptions { comments: true, ..DecoderOptions::default() };
    case(F, &opts, ": ping\ndata: x\n\n", &[comment("ping"), ev("x")], Twins::All);
    case(F, &opts, ":  two\n:\n:x\n\n", &[comment(" two"), comment(""), comment("x")], Twins::All);
    case(F, &opts, b":\xff\n\n", &[utf8()], Twins::All);
}

#[test]
fn unfinished_event_at_eof_is_dropped() {
    all("data: x\n", &[]);
    all("data: x", &[]);
    all("data: a\n\ndata: b", &[ev("a")]);
}

#[test]
fn bom_only_at_stream_start() {
    all("\u{feff}data: x\n\n", &[ev("x")]);
    all("\u{feff}\u{feff}data: x\n\n", &[]);
    all("data: x\n\n\u{feff}data: y\n\n", &[ev("x")]);
    all("data: \u{feff}x\n\n", &[ev("\u{feff}x")]);
    // A partial BOM is content (and invalid UTF-8 in a field name just makes an unknown field).
    case_default(F, b"\xef\xbbdata: x\n\ndata: y\n\n", &[ev("y")], Twins::All);
    case_default(F, b"\xef", &[], Twins::None);
}

#[test]
fn mixed_line_breaks() {
    case_default(F, "data: a\rdata: b\r\ndata: c\n\r\n", &[ev("a\nb\nc")], Twins::None);
    case_default(F, "data: a\r\r\n", &[ev("a")], Twins::None);
    case_default(F, "data: a\n\r", &[ev("a")], Twins::None);
    case_default(F, "data: a\r\rdata: b\n\n", &[ev("a"), ev("b")], Twins::None);
}

#[test]
fn cr_at_chunk_end_then_lf_is_one_break() {
    use ssegate_frame::testing::feed_chunks;
    let opts = DecoderOptions::default();
    let items = feed_chunks(F, &opts, [&b"data: a\r"[..], b"\ndata: b\r", b"\n\r", b"\n"]);
    assert_eq!(items, [ev("a\nb")]);
    // A chunk boundary between CR and CR is two breaks.
    let items = feed_chunks(F, &opts, [&b"data: a\r"[..], b"\rdata: b\n\n"]);
    assert_eq!(items, [ev("a"), ev("b")]);
}

#[test]
fn invalid_utf8_skips_the_block() {
    case_default(F, b"data: \xff\n\ndata: ok\n\n", &[utf8(), ev("ok")], Twins::All);
    case_default(F, b"data: a\ndata: \xe2\x82\ndata: c\n\ndata: ok\n\n", &[utf8(), ev("ok")], Twins::All);
    case_default(F, b"event: \xff\ndata: x\n\n", &[utf8()], Twins::All);
    // The bad block's id has no effect.
    case_default(F, b"id: \xff\ndata: x\n\ndata: y\n\n", &[utf8(), ev("y")], Twins::All);
    case_default(F, b"id: 1\n\nid: 2\ndata: \xff\n\ndata: y\n\n", &[utf8(), with_id("1", "y")], Twins::All);
    // Unknown fields and retry are not text we use.
    case_default(F, b"x\xff: 1\ndata: ok\n\n", &[ev("ok")], Twins::All);
}

#[test]
fn too_large_blocks_are_skipped() {
    // "data: 0123456789" is 16 bytes.
    case(F, &max(16), "data: 0123456789\n\n", &[ev("0123456789")], Twins::All);
    case(F, &max(15), "data: 0123456789\n\ndata: ok\n\n", &[too_large(15), ev("ok")], Twins::All);
    // The limit counts the whole block (line breaks excluded), comments included.
    case(F, &max(17), "data: abc\ndata: def\n\ndata: ok\n\n", &[too_large(17), ev("ok")], Twins::All);
    case(F, &max(18), "data: abc\ndata: def\n\n", &[ev("abc\ndef")], Twins::All);
    case(F, &max(12), ": 0123456789\ndata: x\n\ndata: ok\n\n", &[too_large(12), ev("ok")], Twins::All);
    // The skipped block has no effect: its id, name and retry are dropped; earlier ids stay pending.
    case(
        F,
        &max(20),
        "id: 1\n\nid: 2\nevent: e\nretry: 5\ndata: 01234567890123456789\n\ndata: ok\n\n",
        &[too_large(20), with_id("1", "ok")],
        Twins::All,
    );
    // One error per block however many long lines it has.
    case(F, &max(4), "data: 1234\ndata: 5678\n\ndata\n\n", &[too_large(4), ev("")], Twins::All);
}

#[test]
fn events_round_trip_through_the_encoder() {
    use bytes::BytesMut;
    use ssegate_frame::encode;
    let events = [
        Event::data("a\nb\n"),
        Event::data(" lead").with_name("n").with_id("5"),
        Event { retry: Some(300), ..Event::data("") },
    ];
    let mut buf = BytesMut::new();
    for e in &events {
        encode::event(e, &mut buf);
    }
    encode::retry(10, &mut buf);
    let mut expected: Vec<Item> = events.iter().cloned().map(Item::Event).collect();
    expected.push(Item::Retry(10));
    case_default(F, &buf[..], &expected, Twins::None);
}
