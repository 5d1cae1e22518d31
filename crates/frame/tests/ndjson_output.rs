//! Property test of the NDJSON output (`Output::Ndjson`): every line it writes is one JSON value for
//! serde_json (heartbeats aside, which are empty lines), and reading a line back gives the event's data:
//! the same JSON value for JSON data, the exact text otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::Value;
use ssegate_frame::encode::{Id, Output};
use ssegate_frame::Event;

/// Event data: JSON values (compact or spaced) or text with line breaks, quotes and control characters.
fn data() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        Just("true".to_string()),
        Just("null".to_string()),
        "[a-z \"\\\\\u{e9}\u{1f600}\n]{0,8}".prop_map(|s| serde_json::to_string(&s).unwrap()),
    ];
    let json = leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[ {} ]", v.join(" ,\n"))),
            prop::collection::vec(("[a-z]{1,5}", inner), 0..4).prop_map(|kv| {
                let members: Vec<String> = kv.iter().map(|(k, v)| format!("\"{k}\" : {v}")).collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    });
    prop_oneof![
        3 => json,
        2 => "[^\u{0}]{0,30}",
        1 => "[ \t\r\n\"\\\\{}\\[\\]:,0-9a\u{0}-\u{1f}]{0,20}",
    ]
}

fn event() -> impl Strategy<Value = Event> {
    (data(), prop::option::of("[^\u{0}]{0,10}"), prop::option::of("[^\u{0}]{0,10}")).prop_map(
        |(data, name, id)| Event {
            name: name.map(Bytes::from),
            data: Bytes::from(data),
            id: id.map(Bytes::from),
            retry: None,
        },
    )
}

/// The event's data as serde_json reads it, if it is JSON.
fn json_of(data: &[u8]) -> Option<Value> {
    serde_json::from_slice(data).ok()
}

/// Checks one written line against the event it came from.
fn check_line(line: &str, ev: &Event, id: Option<String>) -> Result<(), TestCaseError> {
    let value: Value =
        serde_json::from_str(line).map_err(|e| TestCaseError::fail(format!("{e}: {line:?}")))?;
    let named = ev.name.as_ref().is_some_and(|n| !n.is_empty());
    let want_id = id.or_else(|| ev.id.as_ref().map(|i| String::from_utf8_lossy(i).into_owned()));
    let data_json = json_of(&ev.data);
    if !named && want_id.is_none() && data_json.is_some() {
        prop_assert_eq!(Some(value), data_json, "bare form");
        return Ok(());
    }
    let obj = value.as_object().ok_or_else(|| TestCaseError::fail(format!("not an object: {line}")))?;
    let name = ev.name.as_ref().filter(|n| !n.is_empty()).map(|n| String::from_utf8_lossy(n).into_owned());
    prop_assert_eq!(obj.get("event").and_then(Value::as_str).map(str::to_string), name);
    prop_assert_eq!(obj.get("id").and_then(Value::as_str).map(str::to_string), want_id);
    let data = obj.get("data").unwrap();
    match data_json {
        Some(v @ (Value::Object(_) | Value::Array(_))) => prop_assert_eq!(data, &v),
        _ => prop_assert_eq!(data.as_str(), Some(&*String::from_utf8_lossy(&ev.data))),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn every_line_is_json_and_round_trips_the_data(
        events in prop::collection::vec((event(), prop::option::of(any::<u64>()), any::<bool>()), 0..8),
    ) {
        let mut out = Vec::new();
        let mut expected = Vec::new();
        for (ev, seq, heartbeat) in &events {
            let before = out.len();
            match seq {
                Some(seq) => {
                    Output::Ndjson.event_with_id(ev, Id::with_prefix(b"s\n1", *seq), &mut out);
                    expected.push(Some((ev.clone(), Some(format!("s1.{seq}")))));
                }
                None => {
                    Output::Ndjson.event(ev, &mut out);
                    expected.push(Some((ev.clone(), None)));
                }
            }
            let id = seq.map(|s| Id::with_prefix(b"s\n1", s));
            prop_assert!(out.len() - before <= Output::Ndjson.encoded_len_hint(ev, id));
            if *heartbeat {
                Output::Ndjson.heartbeat(&mut out);
                Output::Ndjson.comment(b"c\n", &mut out);
                Output::Ndjson.retry(1, &mut out);
                expected.push(None);
            }
        }
        let text = String::from_utf8(out).unwrap();
        prop_assert!(text.is_empty() || text.ends_with('\n'));
        let lines: Vec<&str> = text.split_terminator('\n').collect();
        prop_assert_eq!(lines.len(), expected.len());
        for (line, want) in lines.iter().zip(expected) {
            match want {
                None => prop_assert_eq!(*line, ""),
                Some((ev, id)) => check_line(line, &ev, id)?,
            }
        }
    }

    #[test]
    fn errors_are_one_json_line(body in "[^\u{0}]{0,40}") {
        let mut out = Vec::new();
        Output::Ndjson.error(body.as_bytes(), &mut out);
        let text = String::from_utf8(out).unwrap();
        prop_assert!(text.ends_with('\n'));
        let line = &text[..text.len() - 1];
        prop_assert!(!line.contains('\n'));
        let value: Value = serde_json::from_str(line).unwrap();
        match serde_json::from_str::<Value>(&body) {
            Ok(v) => prop_assert_eq!(value, v),
            Err(_) => prop_assert_eq!(value.as_str(), Some(body.as_str())),
        }
    }
}
