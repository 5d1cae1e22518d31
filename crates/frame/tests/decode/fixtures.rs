//! Realistic upstream streams from `tests/fixtures/` (stored with LF line breaks; the CRLF and CR twins
//! are derived here, so the files' bytes cannot be changed by line-ending normalisation).

use crate::common::*;
use ssegate_frame::testing::feed_whole;
use ssegate_frame::{DecoderOptions, Event, Format, Item};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(!bytes.contains(&b'\r'), "{name} must be stored with LF line breaks");
    bytes
}

fn events(items: &[Item]) -> Vec<&Event> {
    items
        .iter()
        .map(|i| match i {
            Item::Event(ev) => ev,
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

#[test]
fn openai_sse() {
    let input = fixture("openai.sse");
    let items = feed_whole(Format::Sse, &DecoderOptions::default(), &input);
    let evs = events(&items);
    assert_eq!(evs.len(), 11);
    assert!(evs[0].data.starts_with(b"{\"id\":\"chatcmpl-9x\""));
    assert!(std::str::from_utf8(&evs[9].data).unwrap().contains("\u{e9}\u{e8} \u{1F600}"));
    assert_eq!(&evs[10].data[..], b"[DONE]");
    case_default(Format::Sse, &input, &items, Twins::All);
    let with_comments = DecoderOptions { comments: true, ..DecoderOptions::default() };
    let items = feed_whole(Format::Sse, &with_comments, &input);
    assert_eq!(items[10], comment("keep-alive"));
    case(Format::Sse, &with_comments, &input, &items, Twins::All);
}

#[test]
fn anthropic_sse() {
    let input = fixture("anthropic.sse");
    let items = feed_whole(Format::Sse, &DecoderOptions::default(), &input);
    assert_eq!(items[0], Item::Retry(2500));
    let evs = events(&items[1..]);
    let names: Vec<&[u8]> = evs.iter().map(|e| e.name.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [&b"message_start"[..], b"ping", b"content_block_delta", b"content_block_delta", b"message_stop"]
    );
    assert_eq!(evs[0].id.as_deref(), Some(&b"41"[..]), "the id of the first block goes on the first event");
    assert!(evs[1..].iter().all(|e| e.id.is_none()));
    case_default(Format::Sse, &input, &items, Twins::All);
}

#[test]
fn gemini_json_array() {
    let input = fixture("gemini.json");
    let items = feed_whole(Format::JsonArray, &DecoderOptions::default(), &input);
    let evs = events(&items);
    assert_eq!(evs.len(), 3);
    assert_eq!(
        &evs[1].data[..],
        &b"{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\" quick [brown]\"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":4}}"[..]
    );
    for ev in &evs {
        let _: serde_json::Value = serde_json::from_slice(&ev.data).unwrap();
    }
    case_default(Format::JsonArray, &input, &items, Twins::Crlf);
}

#[test]
fn ollama_ndjson() {
    let input = fixture("ollama.ndjson");
    let opts = field("model");
    let items = feed_whole(Format::Ndjson, &opts, &input);
    let evs = events(&items);
    assert_eq!(evs.len(), 6);
    assert!(evs.iter().all(|e| e.name.as_deref() == Some(&b"llama3"[..])));
    // Already compact: the lines are emitted byte for byte.
    let lines: Vec<&[u8]> = input.split(|&c| c == b'\n').filter(|l| !l.is_empty()).collect();
    assert_eq!(evs.iter().map(|e| &e.data[..]).collect::<Vec<_>>(), lines);
    case(Format::Ndjson, &opts, &input, &items, Twins::Crlf);
}

#[test]
fn json_seq() {
    let input = fixture("seq.json-seq");
    let items = feed_whole(Format::JsonSeq, &DecoderOptions::default(), &input);
    let evs = events(&items);
    assert_eq!(evs.len(), 3);
    assert!(evs[0].data.starts_with(b"{\"model\":\"llama3\",\"created_at\""));
    case_default(Format::JsonSeq, &input, &items, Twins::Crlf);
}
