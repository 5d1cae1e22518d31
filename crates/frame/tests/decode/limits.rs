//! Size limits, huge inputs and garbage: one defined error, bounded buffering, decoding goes on.

use crate::common::*;
use bytes::Bytes;
use ssegate_frame::testing::{check_invariance, feed_whole, Rng};
use ssegate_frame::{Decoder, DecoderOptions, Format, Item};

#[test]
fn oversized_messages_per_format() {
    // "[1,2,3,4,5,6]" is 13 bytes.
    let big = "[1,2,3,4,5,6]";
    case(Format::Ndjson, &max(12), format!("{big}\n[7]\n"), &[too_large(12), ev("[7]")], Twins::Crlf);
    case(Format::Ndjson, &max(13), format!("{big}\n"), &[ev(big)], Twins::Crlf);
    case(Format::JsonStream, &max(12), format!("{big} [7]"), &[too_large(12), ev("[7]")], Twins::Crlf);
    case(Format::JsonStream, &max(13), format!("{big}[7]"), &[ev(big), ev("[7]")], Twins::Crlf);
    case(Format::JsonStream, &max(2), "1234 5", &[too_large(2), ev("5")], Twins::Crlf);
    case(Format::JsonStream, &max(4), "1234 5", &[ev("1234"), ev("5")], Twins::Crlf);
    case(
        Format::JsonSeq,
        &max(12),
        format!("\x1e{big}\n\x1e[7]\n"),
        &[too_large(12), ev("[7]")],
        Twins::Crlf,
    );
    case(Format::JsonArray, &max(12), format!("[{big},[7]]"), &[too_large(12), ev("[7]")], Twins::Crlf);
    case(Format::JsonArray, &max(13), format!("[{big},[7]]"), &[ev(big), ev("[7]")], Twins::Crlf);
    case(Format::Lines, &max(12), format!("{big}\nok\n"), &[too_large(12), ev("ok")], Twins::All);
    case(Format::Sse, &max(12), format!("data:{big}\n\ndata:ok\n\n"), &[too_large(12), ev("ok")], Twins::All);
}

#[test]
fn too_large_comes_before_a_later_framing_error() {
    // The limit is crossed before the mismatched bracket: both are reported, in stream order, however
    // the input is chunked.
    case(
        Format::JsonStream,
        &max(4),
        "[1,2,3}\n7",
        &[too_large(4), malformed("mismatched closing bracket", true), ev("7")],
        Twins::Crlf,
    );
    case(Format::JsonSeq, &max(4), "\x1e[1,2,3}\n\x1e7\n", &[too_large(4), ev("7")], Twins::Crlf);
}

/// Feeds a huge message in 64 KiB chunks and checks the decoder never holds more than the limit.
fn huge(format: Format, prefix: &[u8], fill: u8, suffix: &[u8], after: &[u8], expect_after: Item) {
    let limit = 1 << 20;
    let opts = DecoderOptions::default();
    let mut dec = Decoder::new(format, opts);
    let mut out = Vec::new();
    dec.push(&Bytes::copy_from_slice(prefix), &mut out);
    let chunk = Bytes::from(vec![fill; 64 * 1024]);
    for _ in 0..48 {
        dec.push(&chunk, &mut out);
        assert!(dec.buffered_len() <= limit, "{format}: holds {} bytes", dec.buffered_len());
    }
    dec.push(&Bytes::copy_from_slice(suffix), &mut out);
    dec.push(&Bytes::copy_from_slice(after), &mut out);
    dec.finish(&mut out);
    assert_eq!(out, [too_large(limit), expect_after], "{format}");
}

#[test]
fn huge_messages_are_skipped_with_bounded_memory() {
    huge(Format::Ndjson, b"\"", b'a', b"\"\n", b"[1]\n", ev("[1]"));
    huge(Format::Lines, b"", b'a', b"\n", b"next\n", ev("next"));
    huge(Format::Sse, b"data: ", b'a', b"\n\n", b"data: next\n\n", ev("next"));
    huge(Format::JsonStream, b"[\"", b'a', b"\"]", b" 2", ev("2"));
    huge(Format::JsonStream, b"[", b' ', b"]", b" 2", ev("2"));
    huge(Format::JsonSeq, b"\x1e\"", b'a', b"\"\n", b"\x1e2\n", ev("2"));
    huge(Format::JsonArray, b"[[\"", b'a', b"\"]", b",3]", ev("3"));
}

#[test]
fn huge_single_chunk() {
    let mut input = vec![b'x'; 3 << 20];
    input.extend_from_slice(b"\nok\n");
    assert_eq!(feed_whole(Format::Lines, &DecoderOptions::default(), &input), [too_large(1 << 20), ev("ok")]);
}

#[test]
fn huge_depth_is_framed_and_rejected() {
    let deep = "[".repeat(100_000) + &"]".repeat(100_000) + " 1";
    let items = feed_whole(Format::JsonStream, &DecoderOptions::default(), deep.as_bytes());
    assert_eq!(items, [malformed("nesting too deep", true), ev("1")]);
}

#[test]
fn garbage_never_panics_and_stays_invariant() {
    let mut rng = Rng::new(42);
    for _ in 0..200 {
        let n = rng.below(200);
        let input: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
        for format in Format::ALL {
            for opts in [DecoderOptions::default(), max(7)] {
                check_invariance(format, &opts, &input).unwrap();
            }
        }
    }
}

#[test]
fn decoders_are_reusable_after_finish() {
    for format in Format::ALL {
        let mut dec = Decoder::new(format, DecoderOptions::default());
        let mut first = Vec::new();
        dec.push(&Bytes::from_static(b"\xef\xbb\xbf[1, {\"a\":"), &mut first);
        dec.finish(&mut first);
        let mut out = Vec::new();
        let input = Bytes::from_static(b"data: 1\n\n");
        dec.push(&input, &mut out);
        dec.finish(&mut out);
        assert_eq!(out, feed_whole(format, &DecoderOptions::default(), &input), "{format}");
        assert_eq!(dec.buffered_len(), 0);
    }
}

/// Whether `data` points into `chunk` (a zero-copy slice).
fn inside(data: &Bytes, chunk: &Bytes) -> bool {
    let (start, end) = (chunk.as_ptr() as usize, chunk.as_ptr() as usize + chunk.len());
    (start..end).contains(&(data.as_ptr() as usize))
}

#[test]
fn compact_messages_inside_one_chunk_are_zero_copy() {
    let cases: [(Format, &[u8]); 5] = [
        (Format::Ndjson, b"{\"a\":1}\n"),
        (Format::JsonStream, b"{\"a\":1} "),
        (Format::JsonSeq, b"\x1e{\"a\":1}\n"),
        (Format::JsonArray, b"[{\"a\":1}]"),
        (Format::Sse, b"data: {\"a\":1}\n\n"),
    ];
    for (format, input) in cases {
        let chunk = Bytes::copy_from_slice(input);
        let mut dec = Decoder::new(format, DecoderOptions::default());
        let mut out = Vec::new();
        dec.push(&chunk, &mut out);
        let [Item::Event(ev)] = &out[..] else { panic!("{format}: {out:?}") };
        assert_eq!(&ev.data[..], b"{\"a\":1}", "{format}");
        assert!(inside(&ev.data, &chunk), "{format}: data was copied");
    }
    // Pretty values are compacted into a new buffer; values spanning chunks are assembled and copied.
    let mut dec = Decoder::new(Format::JsonArray, DecoderOptions::default());
    let mut out = Vec::new();
    let chunk = Bytes::from_static(b"[{ \"a\": 1 }, {\"b\"");
    dec.push(&chunk, &mut out);
    dec.push(&Bytes::from_static(b":2}]"), &mut out);
    assert_eq!(out, [ev("{\"a\":1}"), ev("{\"b\":2}")]);
}

#[test]
fn the_rest_of_a_skipped_value_is_not_read_as_values() {
    // With max 4 the framer stops after "[1,2,": what follows looks like values ("3", "4", ...) but is the
    // rest of the skipped one.
    let big = "[1,2,3,4,5,6]";
    case(Format::JsonStream, &max(4), format!("{big}\n7\n"), &[too_large(4), ev("7")], Twins::Crlf);
    case(Format::JsonSeq, &max(4), format!("\x1e{big}\n\x1e7\n"), &[too_large(4), ev("7")], Twins::Crlf);
    case(Format::JsonArray, &max(4), format!("[{big},7]"), &[too_large(4), ev("7")], Twins::Crlf);
    case(Format::JsonArray, &max(6), "[{\"a\":\"1\",\"b\":2},7]", &[too_large(6), ev("7")], Twins::Crlf);
}
