//! `ndjson`: one JSON value per LF- or CRLF-terminated line.

use crate::common::*;
use ssegate_frame::{Format, Item};

const F: Format = Format::Ndjson;

fn crlf(input: &str, expected: &[Item]) {
    case_default(F, input, expected, Twins::Crlf);
}

#[test]
fn one_value_per_line() {
    crlf("{\"a\":1}\n{\"b\":2}\n", &[ev("{\"a\":1}"), ev("{\"b\":2}")]);
    crlf(
        "1\n\"x\"\ntrue\nnull\n[]\n-2.5e3\n",
        &[ev("1"), ev("\"x\""), ev("true"), ev("null"), ev("[]"), ev("-2.5e3")],
    );
}

#[test]
fn blank_lines_are_skipped() {
    crlf("\n  \n{\"a\":1}\n\t\n\n", &[ev("{\"a\":1}")]);
    crlf("", &[]);
    crlf("\n", &[]);
}

#[test]
fn unterminated_last_line_is_emitted() {
    crlf("{\"a\":1}\n{\"b\":2}", &[ev("{\"a\":1}"), ev("{\"b\":2}")]);
    crlf("7", &[ev("7")]);
    crlf("{\"a\":", &[malformed("unexpected end of value", true)]);
}

#[test]
fn values_are_compacted() {
    crlf(
        "  { \"a\" : [ 1 , 2 ] , \"s\" : \" keep  spaces \" }  \n",
        &[ev("{\"a\":[1,2],\"s\":\" keep  spaces \"}")],
    );
    crlf("[\"\\\"\", \"\\\\\", \"\\u00e9\"]\n", &[ev("[\"\\\"\",\"\\\\\",\"\\u00e9\"]")]);
    // A lone CR is JSON whitespace too.
    case_default(F, "{\"a\":\r1}\n", &[ev("{\"a\":1}")], Twins::None);
}

#[test]
fn numbers_and_escapes_are_untouched() {
    crlf("[1.50, 1E2, -0, 12345678901234567890123]\n", &[ev("[1.50,1E2,-0,12345678901234567890123]")]);
    crlf("\"\\ud83d\\ude00 \\/ \\b\"\n", &[ev("\"\\ud83d\\ude00 \\/ \\b\"")]);
}

#[test]
fn malformed_lines_are_reported_and_skipped() {
    crlf(
        "{\"a\":1}\n{bad}\n{\"c\":3}\n",
        &[ev("{\"a\":1}"), malformed("expected a string key", true), ev("{\"c\":3}")],
    );
    crlf("1 2\n3\n", &[malformed("content after the value", true), ev("3")]);
    crlf("[1,]\n", &[malformed("expected a value", true)]);
    crlf("{\"a\":1}}\n", &[malformed("content after the value", true)]);
    crlf("\"unterminated\n[1]\n", &[malformed("unterminated string", true), ev("[1]")]);
    crlf("nul\n", &[malformed("invalid literal", true)]);
    crlf("01\n", &[malformed("content after the value", true)]);
}

#[test]
fn invalid_utf8() {
    case_default(F, b"{\"a\":\"\xff\"}\n[1]\n", &[utf8(), ev("[1]")], Twins::Crlf);
    // Outside a string any non-ASCII byte is a grammar error.
    case_default(F, b"[1,\xff]\n[2]\n", &[malformed("expected a value", true), ev("[2]")], Twins::Crlf);
}

#[test]
fn event_field_names_the_event() {
    let opts = field("type");
    case(
        F,
        &opts,
        "{\"type\":\"delta\",\"v\":1}\n",
        &[named("delta", "{\"type\":\"delta\",\"v\":1}")],
        Twins::Crlf,
    );
    case(F, &opts, "{\"v\":{\"type\":\"x\"}}\n", &[ev("{\"v\":{\"type\":\"x\"}}")], Twins::Crlf);
    case(F, &opts, "{\"type\":7}\n", &[ev("{\"type\":7}")], Twins::Crlf);
    case(F, &opts, "{\"type\":\"a\\nb\"}\n", &[named("ab", "{\"type\":\"a\\nb\"}")], Twins::Crlf);
    case(F, &opts, "{ \"type\" : \"p\" }\n", &[named("p", "{\"type\":\"p\"}")], Twins::Crlf);
}

#[test]
fn compact_values_inside_one_chunk_are_zero_copy() {
    use bytes::Bytes;
    use ssegate_frame::{Decoder, DecoderOptions};
    let chunk = Bytes::from_static(b"{\"a\":1}\n{ \"b\": 2 }\n");
    let mut dec = Decoder::new(F, DecoderOptions::default());
    let mut out = Vec::new();
    dec.push(&chunk, &mut out);
    let [Item::Event(a), Item::Event(b)] = &out[..] else { panic!("{out:?}") };
    assert_eq!(a.data.as_ptr(), chunk.as_ptr(), "compact value is a slice of the chunk");
    assert_eq!(&b.data[..], b"{\"b\":2}");
}
