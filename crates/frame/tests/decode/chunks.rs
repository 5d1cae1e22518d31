//! `chunks`: one event per upstream chunk; characters are never split.

use crate::common::*;
use ssegate_frame::testing::{check_invariance, feed_chunks};
use ssegate_frame::{DecoderOptions, Format};

const F: Format = Format::Chunks;

fn feed(chunks: &[&[u8]]) -> Vec<ssegate_frame::Item> {
    feed_chunks(F, &DecoderOptions::default(), chunks.iter().copied())
}

#[test]
fn one_event_per_chunk() {
    assert_eq!(feed(&[b"hello", b" world\n", b"\r\n"]), [ev("hello"), ev(" world\n"), ev("\r\n")]);
    assert_eq!(feed(&[b"", b"x", b""]), [ev("x")]);
}

#[test]
fn incomplete_characters_are_held_back() {
    assert_eq!(feed(&[b"h\xc3", b"\xa9llo"]), [ev("h"), ev("éllo")]);
    assert_eq!(feed(&[b"\xf0", b"\x9f", b"\x98", b"\x80!"]), [ev("😀!")]);
    assert_eq!(feed(&[b"\xe2\x82", b""]), [utf8()]);
    assert_eq!(feed(&[b"ok\xe2\x82"]), [ev("ok"), utf8()]);
}

#[test]
fn invalid_bytes_are_reported_and_skipped() {
    assert_eq!(feed(&[b"a\xffb"]), [ev("a"), utf8(), ev("b")]);
    assert_eq!(feed(&[b"\xff\xfe\xc0"]), [utf8()]);
    assert_eq!(feed(&[b"\xe2\x82", b"x"]), [utf8(), ev("x")]);
    assert_eq!(feed(&[b"\xed\xa0\x80"]), [utf8()]);
}

#[test]
fn large_chunks_are_split_at_character_boundaries() {
    let opts = max(4);
    assert_eq!(feed_chunks(F, &opts, [&b"abcdefghij"[..]]), [ev("abcd"), ev("efgh"), ev("ij")]);
    assert_eq!(feed_chunks(F, &max(3), ["ééé".as_bytes()]), [ev("é"), ev("é"), ev("é")]);
    assert_eq!(feed_chunks(F, &max(1), ["a😀b".as_bytes()]), [ev("a"), ev("😀"), ev("b")]);
}

#[test]
fn concatenated_text_is_invariant() {
    for input in ["plain", "h\u{e9}llo 😀 ✓ wörld", "a\r\nb\n"] {
        check_invariance(F, &DecoderOptions::default(), input.as_bytes()).unwrap();
    }
    check_invariance(F, &DecoderOptions::default(), b"a\xffb\xe2\x82c\xf0\x9f\x98\x80").unwrap();
    check_invariance(F, &max(3), "ééé😀😀".as_bytes()).unwrap();
}
