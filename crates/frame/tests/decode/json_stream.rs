//! `json-stream`: concatenated / whitespace-separated JSON values.

use crate::common::*;
use ssegate_frame::{Format, Item};

const F: Format = Format::JsonStream;

fn crlf(input: &str, expected: &[Item]) {
    case_default(F, input, expected, Twins::Crlf);
}

#[test]
fn values_back_to_back() {
    crlf("{\"a\":1}{\"b\":2}", &[ev("{\"a\":1}"), ev("{\"b\":2}")]);
    crlf("{\"a\":1}\n{\"b\":2}\n", &[ev("{\"a\":1}"), ev("{\"b\":2}")]);
    crlf("[1][2]\"s\"{}", &[ev("[1]"), ev("[2]"), ev("\"s\""), ev("{}")]);
    crlf("\"a\"\"b\"", &[ev("\"a\""), ev("\"b\"")]);
    crlf("", &[]);
    crlf(" \n\t ", &[]);
}

#[test]
fn scalars_end_at_delimiters_or_eof() {
    crlf(
        "1 2 \"x\" true null [3]{}",
        &[ev("1"), ev("2"), ev("\"x\""), ev("true"), ev("null"), ev("[3]"), ev("{}")],
    );
    crlf("12\n-3.5e2\n", &[ev("12"), ev("-3.5e2")]);
    crlf("1", &[ev("1")]);
    crlf("true[1]", &[ev("true"), ev("[1]")]);
    crlf("7\"s\"", &[ev("7"), ev("\"s\"")]);
}

#[test]
fn pretty_values_are_compacted() {
    crlf(
        "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"s\": \"x  y\"\n}\n{\"b\":\"}\"}",
        &[ev("{\"a\":[1,2],\"s\":\"x  y\"}"), ev("{\"b\":\"}\"}")],
    );
}

#[test]
fn strings_with_brackets_and_escapes() {
    crlf("{\"s\":\"[{\\\"}]\\\\\"}[\"]\"]", &[ev("{\"s\":\"[{\\\"}]\\\\\"}"), ev("[\"]\"]")]);
    crlf("\"\\\\\"\"\\\"\"", &[ev("\"\\\\\""), ev("\"\\\"\"")]);
}

#[test]
fn content_errors_resume_after_the_value() {
    crlf("{\"a\" 1}{\"b\":2}", &[malformed("expected ':'", true), ev("{\"b\":2}")]);
    crlf("tru 1", &[malformed("invalid literal", true), ev("1")]);
    crlf("[1,]\n[2]", &[malformed("expected a value", true), ev("[2]")]);
    crlf("\"a\tb\" 3", &[malformed("control character in string", true), ev("3")]);
}

#[test]
fn framing_errors_resync_at_the_next_line() {
    crlf(
        "{\"a\":1}] {\"x\":1}\n{\"b\":2}\n",
        &[ev("{\"a\":1}"), malformed("unexpected character between values", true), ev("{\"b\":2}")],
    );
    crlf("{\"a\":[1}\n{\"b\":2}", &[malformed("mismatched closing bracket", true), ev("{\"b\":2}")]);
    crlf(", 1\n2", &[malformed("unexpected character between values", true), ev("2")]);
    crlf("}", &[malformed("unexpected character between values", true)]);
}

#[test]
fn truncated_at_eof() {
    crlf("{\"a\":1}{\"b\":", &[ev("{\"a\":1}"), malformed("truncated", false)]);
    crlf("\"abc", &[malformed("truncated", false)]);
    crlf("[1, 2\n", &[malformed("truncated", false)]);
}

#[test]
fn nesting_is_bounded() {
    let deep = "[".repeat(200) + &"]".repeat(200) + "\n1";
    crlf(&deep, &[malformed("nesting too deep", true), ev("1")]);
    let ok = "[".repeat(128) + &"]".repeat(128);
    crlf(&ok, &[ev(&ok)]);
}

#[test]
fn invalid_utf8() {
    case_default(F, b"\"\xff\" 1", &[utf8(), ev("1")], Twins::Crlf);
}

#[test]
fn event_field() {
    case(
        F,
        &field("type"),
        "{\"type\":\"a\"}{\"type\":\"b\"}",
        &[named("a", "{\"type\":\"a\"}"), named("b", "{\"type\":\"b\"}")],
        Twins::Crlf,
    );
}
