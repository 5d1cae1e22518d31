//! `json-array`: one array streamed element by element.

use crate::common::*;
use ssegate_frame::testing::feed_chunks;
use ssegate_frame::{DecoderOptions, Format, Item};

const F: Format = Format::JsonArray;

fn crlf(input: &str, expected: &[Item]) {
    case_default(F, input, expected, Twins::Crlf);
}

#[test]
fn elements() {
    crlf("[{\"a\":1},{\"b\":2}]", &[ev("{\"a\":1}"), ev("{\"b\":2}")]);
    crlf("[{\"a\":1}\n,\n{\"b\":2}\n]", &[ev("{\"a\":1}"), ev("{\"b\":2}")]);
    crlf(
        "[1, \"x\", true, null, [2,[3]], {\"k\":\"]\"}]",
        &[ev("1"), ev("\"x\""), ev("true"), ev("null"), ev("[2,[3]]"), ev("{\"k\":\"]\"}")],
    );
    crlf(" \n [ 1 , 2 ] \n ", &[ev("1"), ev("2")]);
}

#[test]
fn empty() {
    crlf("[]", &[]);
    crlf(" [ \n ] ", &[]);
    crlf("", &[]);
    crlf("  \n", &[]);
}

#[test]
fn pretty_elements_are_compacted() {
    crlf("[\n  {\n    \"a\": [ 1, 2 ]\n  }\n]", &[ev("{\"a\":[1,2]}")]);
}

#[test]
fn strings_with_structural_characters() {
    crlf("[\"[\\\"],\", \"\\\\\", \"{\"]", &[ev("\"[\\\"],\""), ev("\"\\\\\""), ev("\"{\"")]);
}

#[test]
fn each_element_is_emitted_as_soon_as_it_is_complete() {
    use bytes::Bytes;
    use ssegate_frame::Decoder;
    let mut dec = Decoder::new(F, DecoderOptions::default());
    let mut out = Vec::new();
    dec.push(&Bytes::from_static(b"[{\"a\":1}"), &mut out);
    assert_eq!(out, [ev("{\"a\":1}")]);
    dec.push(&Bytes::from_static(b",2"), &mut out);
    assert_eq!(out.len(), 1, "a number is complete only at its delimiter");
    dec.push(&Bytes::from_static(b"]"), &mut out);
    assert_eq!(out, [ev("{\"a\":1}"), ev("2")]);
}

#[test]
fn gemini_stream() {
    // Gemini streamGenerateContent without alt=sse: pretty elements separated by "\r\n,\r\n".
    let input = "[{\r\n  \"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hel\"}]}}]\r\n}\r\n,\r\n{\r\n  \"candidates\": [{\"content\": {\"parts\": [{\"text\": \"lo, [world]\"}]}}]\r\n}\r\n]";
    case_default(
        F,
        input,
        &[
            ev("{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}]}}]}"),
            ev("{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"lo, [world]\"}]}}]}"),
        ],
        Twins::None,
    );
}

#[test]
fn not_an_array_is_fatal() {
    crlf("{\"a\":1}", &[malformed("not a JSON array", false)]);
    crlf("1 [2]", &[malformed("not a JSON array", false)]);
}

#[test]
fn content_after_the_array_is_fatal() {
    crlf("[1] x", &[ev("1"), malformed("content after the array", false)]);
    crlf("[1] [2]", &[ev("1"), malformed("content after the array", false)]);
    crlf("[1]\n \n", &[ev("1")]);
}

#[test]
fn structural_errors_are_fatal() {
    crlf("[1 2]", &[ev("1"), malformed("expected ',' or ']'", false)]);
    crlf("[1,]", &[ev("1"), malformed("expected an array element", false)]);
    crlf("[,1]", &[malformed("expected an array element", false)]);
    crlf("[1,,2]", &[ev("1"), malformed("expected an array element", false)]);
    crlf("[{\"a\":1]}, 2]", &[malformed("mismatched closing bracket", false)]);
}

#[test]
fn bad_element_content_is_recoverable() {
    crlf("[{\"a\" 1},{\"b\":2}]", &[malformed("expected ':'", true), ev("{\"b\":2}")]);
    crlf("[tru, 1]", &[malformed("invalid literal", true), ev("1")]);
    case_default(F, b"[\"\xff\", 1]", &[utf8(), ev("1")], Twins::Crlf);
    let deep = format!("[{}{}, 1]", "[".repeat(129), "]".repeat(129));
    crlf(&deep, &[malformed("nesting too deep", true), ev("1")]);
}

#[test]
fn truncated_at_eof() {
    crlf("[{\"a\":1},", &[ev("{\"a\":1}"), malformed("truncated", false)]);
    crlf("[{\"a\":", &[malformed("truncated", false)]);
    crlf("[1", &[ev("1"), malformed("truncated", false)]);
    crlf("[", &[malformed("truncated", false)]);
}

#[test]
fn nothing_after_a_fatal_error() {
    let items = feed_chunks(F, &DecoderOptions::default(), [&b"{}"[..], b"[1]", b"[2]"]);
    assert_eq!(items, [malformed("not a JSON array", false)]);
}

#[test]
fn event_field() {
    case(
        F,
        &field("type"),
        "[{\"type\":\"t\",\"x\":1}]",
        &[named("t", "{\"type\":\"t\",\"x\":1}")],
        Twins::Crlf,
    );
}
