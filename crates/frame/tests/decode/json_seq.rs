//! `json-seq` (RFC 7464): RS-introduced values.

use crate::common::*;
use ssegate_frame::{Format, Item};

const F: Format = Format::JsonSeq;

fn crlf(input: &str, expected: &[Item]) {
    case_default(F, input, expected, Twins::Crlf);
}

#[test]
fn rs_values_lf() {
    crlf("\x1e{\"a\":1}\n\x1e{\"b\":2}\n", &[ev("{\"a\":1}"), ev("{\"b\":2}")]);
    crlf("\x1e123\n\x1etrue\n\x1e\"s\"\n", &[ev("123"), ev("true"), ev("\"s\"")]);
    crlf("\x1e  {\"a\" : 1}  \n", &[ev("{\"a\":1}")]);
    crlf("", &[]);
}

#[test]
fn pretty_values_span_lines() {
    crlf("\x1e{\n  \"a\": [\n    1\n  ]\n}\n\x1e2\n", &[ev("{\"a\":[1]}"), ev("2")]);
    crlf("\x1e\n{\"a\":1}\n", &[ev("{\"a\":1}")]);
}

#[test]
fn consecutive_rs_are_ignored() {
    crlf("\x1e\x1e\x1e1\n\x1e\x1e", &[ev("1")]);
}

#[test]
fn next_rs_or_eof_also_ends_a_value() {
    crlf("\x1e{\"a\":1}\x1e{\"b\":2}", &[ev("{\"a\":1}"), ev("{\"b\":2}")]);
    crlf("\x1e1 \x1e2 ", &[ev("1"), ev("2")]);
}

#[test]
fn scalars_must_be_followed_by_whitespace() {
    crlf("\x1e123\x1e{\"b\":2}\n", &[malformed("truncated", true), ev("{\"b\":2}")]);
    crlf("\x1e123", &[malformed("truncated", false)]);
}

#[test]
fn truncated_values_resume_at_the_next_rs() {
    crlf("\x1e{\"a\":\x1e{\"b\":2}\n", &[malformed("truncated", true), ev("{\"b\":2}")]);
    crlf("\x1e{\"a\":\n", &[malformed("truncated", false)]);
    crlf(
        "\x1e\"ab\x1ecd\"\n\x1e1\n",
        &[malformed("truncated", true), malformed("expected a value", true), ev("1")],
    );
}

#[test]
fn garbage_resumes_at_the_next_rs() {
    crlf("junk\n\x1e1\n", &[malformed("data outside a sequence element", true), ev("1")]);
    crlf("\x1e{\"a\":1} x\n\x1e2\n", &[malformed("content after the value", true), ev("2")]);
    crlf(
        "\x1e{\"a\":1}\njunk\x1e2\n",
        &[ev("{\"a\":1}"), malformed("data outside a sequence element", true), ev("2")],
    );
    crlf("\x1e{\"a\" 1}\n\x1e2\n", &[malformed("expected ':'", true), ev("2")]);
    crlf("\x1e]\n\x1e2\n", &[malformed("unexpected character between values", true), ev("2")]);
    crlf("\x1e[1}\n\x1e2\n", &[malformed("mismatched closing bracket", true), ev("2")]);
    case_default(F, b"\x1e\"\xff\"\n\x1e2\n", &[utf8(), ev("2")], Twins::Crlf);
}

#[test]
fn event_field() {
    case(F, &field("type"), "\x1e{\"type\":\"x\"}\n", &[named("x", "{\"type\":\"x\"}")], Twins::Crlf);
}
