//! `lines`: one event per line, LF / CRLF / CR.

use crate::common::*;
use ssegate_frame::testing::feed_chunks;
use ssegate_frame::{DecoderOptions, Format, Item};

const F: Format = Format::Lines;

fn all(input: &str, expected: &[Item]) {
    case_default(F, input, expected, Twins::All);
}

#[test]
fn one_event_per_line() {
    all("a\nb\n", &[ev("a"), ev("b")]);
    all("hello world\n  indented\n", &[ev("hello world"), ev("  indented")]);
    all("héllo 😀\n", &[ev("héllo 😀")]);
}

#[test]
fn empty_lines_are_empty_events() {
    all("a\n\nb\n", &[ev("a"), ev(""), ev("b")]);
    all("\n", &[ev("")]);
    all("\n\n", &[ev(""), ev("")]);
}

#[test]
fn unterminated_last_line_is_emitted() {
    all("a\nb", &[ev("a"), ev("b")]);
    all("a", &[ev("a")]);
    all("", &[]);
}

#[test]
fn mixed_breaks() {
    case_default(F, "a\rb\r\nc\nd\r\re", &[ev("a"), ev("b"), ev("c"), ev("d"), ev(""), ev("e")], Twins::None);
    case_default(F, "a\n\r", &[ev("a"), ev("")], Twins::None);
}

#[test]
fn cr_at_chunk_end_then_lf_is_one_break() {
    let opts = DecoderOptions::default();
    assert_eq!(feed_chunks(F, &opts, [&b"a\r"[..], b"\nb\r", b"", b"\n"]), [ev("a"), ev("b")]);
    assert_eq!(feed_chunks(F, &opts, [&b"a\r"[..], b"\r", b"b"]), [ev("a"), ev(""), ev("b")]);
}

#[test]
fn invalid_utf8_lines_are_errors() {
    case_default(F, b"ok\n\xff\nok2\n", &[ev("ok"), utf8(), ev("ok2")], Twins::All);
    case_default(F, b"a\xe2\x82\n", &[utf8()], Twins::All);
    case_default(F, b"tail\xc3", &[utf8()], Twins::None);
}

#[test]
fn long_lines_are_skipped() {
    case(F, &max(3), "abcd\nab\nabc\n", &[too_large(3), ev("ab"), ev("abc")], Twins::All);
}
