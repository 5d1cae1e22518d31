//! Property tests: encoder → own SSE parser round trips, and arbitrary JSON values through every JSON
//! framing, at arbitrary chunk splits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::Value;
use ssegate_frame::encode::{Id, Output};
use ssegate_frame::testing::feed_chunks;
use ssegate_frame::{encode, DecoderOptions, Event, Format, Item};

/// Cuts `input` at the given (arbitrary) points.
fn chunked<'a>(input: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
    at.push(0);
    at.push(input.len());
    at.sort_unstable();
    at.dedup();
    at.windows(2).map(|w| &input[w[0]..w[1]]).collect()
}

/// Text with plenty of line breaks, spaces, colons and NULs among arbitrary characters.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => any::<char>(),
            1 => Just('\r'),
            1 => Just('\n'),
            1 => Just(' '),
            1 => Just(':'),
            1 => Just('\0'),
            1 => Just('\u{feff}'),
        ],
        0..24,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

#[derive(Clone, Debug)]
enum Block {
    Event(Event),
    Comment(String),
    Retry(u64),
}

fn block() -> impl Strategy<Value = Block> {
    let event = (text(), prop::option::of(text()), prop::option::of(text()), prop::option::of(any::<u64>()))
        .prop_map(|(data, name, id, retry)| {
            Block::Event(Event {
                name: name.map(Bytes::from),
                data: Bytes::from(data),
                id: id.map(Bytes::from),
                retry,
            })
        });
    prop_oneof![8 => event, 1 => text().prop_map(Block::Comment), 1 => any::<u64>().prop_map(Block::Retry)]
}

/// What a client sees of `ev` after the encoder and a spec parser.
fn normalised(ev: &Event) -> Event {
    let strip =
        |b: &Bytes| Bytes::from(b.iter().copied().filter(|&c| c != b'\r' && c != b'\n').collect::<Vec<_>>());
    let data = String::from_utf8(ev.data.to_vec()).unwrap().replace("\r\n", "\n").replace('\r', "\n");
    Event {
        name: ev.name.as_ref().map(strip).filter(|n| !n.is_empty()),
        data: Bytes::from(data),
        id: ev.id.as_ref().filter(|id| !id.contains(&0)).map(strip),
        retry: ev.retry,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn sse_encode_then_parse(blocks in prop::collection::vec(block(), 0..8), cuts in prop::collection::vec(any::<Index>(), 0..6)) {
        let mut buf = BytesMut::new();
        let mut expected = Vec::new();
        for b in &blocks {
            match b {
                Block::Event(ev) => {
                    encode::event(ev, &mut buf);
                    expected.push(Item::Event(normalised(ev)));
                }
                Block::Comment(text) => {
                    encode::comment(text.as_bytes(), &mut buf);
                    // Line breaks in a comment start new comment lines.
                    let text = text.replace("\r\n", "\n").replace('\r', "\n");
                    for line in text.split('\n') {
                        expected.push(Item::Comment(Bytes::from(line.to_string())));
                    }
                }
                Block::Retry(ms) => {
                    encode::retry(*ms, &mut buf);
                    expected.push(Item::Retry(*ms));
                }
            }
        }
        let opts = DecoderOptions { comments: true, ..DecoderOptions::default() };
        let got = feed_chunks(Format::Sse, &opts, chunked(&buf, &cuts));
        prop_assert_eq!(got, expected, "encoded: {:?}", String::from_utf8_lossy(&buf));
    }
}

/// A gateway id prefix: mostly plain, sometimes with the bytes the encoder must remove.
fn id_prefix() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![3 => "[a-z0-9.-]{0,8}", 1 => text()])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// `Output::Sse.event_with_id` through the crate's own SSE decoder: the same events, each with the
    /// assigned id (`<prefix>.<seq>`, prefix without CR/LF/NUL) instead of its own.
    #[test]
    fn sse_event_with_id_then_parse(
        events in prop::collection::vec(block(), 1..6),
        prefix in id_prefix(),
        first in any::<u64>(),
        cuts in prop::collection::vec(any::<Index>(), 0..6),
    ) {
        let mut buf = BytesMut::new();
        let mut expected = Vec::new();
        let clean: Option<String> = prefix.as_ref().map(|p| p.chars().filter(|c| !matches!(c, '\r' | '\n' | '\0')).collect());
        for (n, b) in events.iter().enumerate() {
            let Block::Event(ev) = b else { continue };
            let seq = first.wrapping_add(n as u64);
            let id = Id { prefix: prefix.as_deref().map(str::as_bytes), seq };
            let before = buf.len();
            Output::Sse.event_with_id(ev, id, &mut buf);
            prop_assert!(buf.len() - before <= Output::Sse.encoded_len_hint(ev, Some(id)));
            let want_id = match prefix.as_deref() {
                Some(p) if !p.is_empty() => format!("{}.{seq}", clean.as_deref().unwrap_or_default()),
                _ => seq.to_string(),
            };
            expected.push(Item::Event(Event { id: Some(Bytes::from(want_id)), ..normalised(ev) }));
        }
        let got = feed_chunks(Format::Sse, &DecoderOptions::default(), chunked(&buf, &cuts));
        prop_assert_eq!(got, expected, "encoded: {:?}", String::from_utf8_lossy(&buf));
    }
}

fn json_string() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => any::<char>(),
            1 => prop::sample::select(vec!['"', '\\', '/', '\n', '\r', '\t', '\u{8}', '\u{c}', '\0', '\u{1e}', '[', ']', '{', '}', ',', ':', ' ']),
        ],
        0..12,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (any::<i16>(), 0u32..10).prop_map(|(m, e)| Value::from(f64::from(m) / f64::from(1u32 << e))),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| Value::from((f * 1e3).round() / 1e3)),
        json_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(json_string(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// `a` and `b` are the same JSON value, except that floats may be up to [`ULPS`] apart.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() && y.is_f64() => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => {
                x == y || (x.signum() == y.signum() && x.to_bits().abs_diff(y.to_bits()) <= ULPS)
            }
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_value(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|((kx, vx), (ky, vy))| kx == ky && same_value(vx, vy))
        }
        _ => a == b,
    }
}

/// How far serde_json's reading of a float may be from the float it wrote (without `float_roundtrip` it
/// is not correctly rounded for large exponents, e.g. `-9.608556021090585e288` reads back 2 ULP off).
const ULPS: u64 = 8;

#[test]
fn same_value_tolerates_a_few_ulp_only() {
    let f = |x: f64| Value::from(x);
    assert!(same_value(&f(0.1), &f(0.1)));
    assert!(same_value(&f(0.1), &f(f64::from_bits(0.1f64.to_bits() + ULPS))));
    assert!(!same_value(&f(0.1), &f(f64::from_bits(0.1f64.to_bits() + ULPS + 1))));
    assert!(!same_value(&f(0.1), &f(0.11)));
    assert!(!same_value(&f(-0.1), &f(0.1)));
    assert!(!same_value(&f(1.0), &Value::from(1)), "a float is not an integer");
    assert!(!same_value(&serde_json::json!({"a": [1, "x"]}), &serde_json::json!({"a": [1, "y"]})));
    assert!(!same_value(&serde_json::json!({"a": 1}), &serde_json::json!({"b": 1})));
    assert!(!same_value(&serde_json::json!([1]), &serde_json::json!([1, 2])));
}

fn is_scalar(v: &Value) -> bool {
    matches!(v, Value::Null | Value::Bool(_) | Value::Number(_))
}

/// Frames `values` for `format`; `pretty` picks per value whether it is pretty-printed, `seps` the
/// whitespace between values.
fn frame(format: Format, values: &[Value], pretty: &[bool], seps: &[&str]) -> Vec<u8> {
    let text = |i: usize, v: &Value| {
        if pretty.get(i).copied().unwrap_or(false) && format != Format::Ndjson {
            serde_json::to_string_pretty(v).unwrap()
        } else {
            serde_json::to_string(v).unwrap()
        }
    };
    let sep = |i: usize| seps[i % seps.len()];
    let mut out = String::new();
    match format {
        Format::Ndjson => {
            for (i, v) in values.iter().enumerate() {
                out += &text(i, v);
                out += if i % 2 == 0 { "\n" } else { "\r\n" };
            }
        }
        Format::JsonStream => {
            for (i, v) in values.iter().enumerate() {
                out += &text(i, v);
                let next_scalar = values.get(i + 1).is_some_and(is_scalar);
                let s = sep(i);
                out += if s.is_empty() && is_scalar(v) && next_scalar { " " } else { s };
            }
        }
        Format::JsonSeq => {
            for (i, v) in values.iter().enumerate() {
                out += "\u{1e}";
                out += sep(i);
                out += &text(i, v);
                out += "\n";
            }
        }
        Format::JsonArray => {
            out += "[";
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    out += sep(i);
                    out += ",";
                    out += sep(i + 1);
                }
                out += &text(i, v);
            }
            out += "]";
        }
        _ => unreachable!(),
    }
    out.into_bytes()
}

const JSON_FORMATS: [Format; 4] = [Format::Ndjson, Format::JsonStream, Format::JsonSeq, Format::JsonArray];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn json_values_through_every_framing(
        values in prop::collection::vec(json_value(), 0..6),
        pretty in prop::collection::vec(any::<bool>(), 6),
        seps in prop::collection::vec(prop::sample::select(vec!["", " ", "\n", "\r\n", "\t", " \r\n "]), 1..4),
        cuts in prop::collection::vec(any::<Index>(), 0..6),
    ) {
        for format in JSON_FORMATS {
            let input = frame(format, &values, &pretty, &seps);
            let items = feed_chunks(format, &DecoderOptions::default(), chunked(&input, &cuts));
            prop_assert_eq!(items.len(), values.len(), "{} {:?}: {:?}", format, String::from_utf8_lossy(&input), items);
            for (item, value) in items.iter().zip(&values) {
                let Item::Event(ev) = item else {
                    return Err(TestCaseError::fail(format!("{format}: {item:?} for {value}")));
                };
                let compact = serde_json::to_string(value).unwrap();
                prop_assert_eq!(&ev.data[..], compact.as_bytes(), "{}", format);
                // The data means the value that was sent. serde_json without `float_roundtrip` may read
                // long floats back a few ULP off (also from its own output), so floats may differ by a few ULP.
                let parsed: Value = serde_json::from_slice(&ev.data).unwrap();
                prop_assert!(same_value(&parsed, value), "{}: read {} from the data, sent {}", format, parsed, value);
                prop_assert!(ev.name.is_none());
            }
        }
    }

    #[test]
    fn event_field_is_the_unescaped_string(
        names in prop::collection::vec(json_string(), 1..4),
        cuts in prop::collection::vec(any::<Index>(), 0..4),
    ) {
        let values: Vec<Value> = names.iter().map(|n| serde_json::json!({"v": [1, {"type": "inner"}], "type": n})).collect();
        let opts = DecoderOptions { event_field: Some("type".into()), ..DecoderOptions::default() };
        for format in JSON_FORMATS {
            let input = frame(format, &values, &[true, false, true], &["\n"]);
            let items = feed_chunks(format, &opts, chunked(&input, &cuts));
            prop_assert_eq!(items.len(), names.len());
            for (item, name) in items.iter().zip(&names) {
                let Item::Event(ev) = item else { return Err(TestCaseError::fail(format!("{item:?}"))) };
                let want: String = name.chars().filter(|&c| c != '\r' && c != '\n').collect();
                let want = (!want.is_empty()).then(|| Bytes::from(want));
                prop_assert_eq!(&ev.name, &want, "{}", format);
            }
        }
    }
}
