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

/// One OpenAI chat-completion chunk of `openai.sse`, written out by hand.
fn openai_chunk(content: &str) -> String {
    String::from(
        r#"{"id":"chatcmpl-9x","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":""#,
    ) + content
        + r#""},"finish_reason":null}]}"#
}

const OPENAI_TOKENS: [&str; 10] =
    ["Hello", "!", " How", " can", " I", " help", " you", " today", "?", " \u{e9}\u{e8} \u{1F600}"];

#[test]
fn openai_sse() {
    let input = fixture("openai.sse");
    let mut expected: Vec<Item> = OPENAI_TOKENS.iter().map(|t| ev(openai_chunk(t))).collect();
    expected.push(ev("[DONE]"));
    assert_eq!(feed_whole(Format::Sse, &DecoderOptions::default(), &input), expected);
    case_default(Format::Sse, &input, &expected, Twins::All);

    let with_comments = DecoderOptions { comments: true, ..DecoderOptions::default() };
    expected.insert(10, comment("keep-alive"));
    case(Format::Sse, &with_comments, &input, &expected, Twins::All);
}

#[test]
fn anthropic_sse() {
    let input = fixture("anthropic.sse");
    let first =
        Event::data(r#"{"type":"message_start","message":{"id":"msg_1","role":"assistant","content":[]}}"#)
            .with_name("message_start")
            .with_id("41");
    let expected = [
        Item::Retry(2500),
        // The id of the first block (which has no data) carries over to the first event.
        Item::Event(first),
        named("ping", r#"{"type":"ping"}"#),
        named(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi\nthere"}}"#,
        ),
        named(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" friend"}}"#,
        ),
        named("message_stop", r#"{"type":"message_stop"}"#),
    ];
    case_default(Format::Sse, &input, &expected, Twins::All);
}

#[test]
fn gemini_json_array() {
    let input = fixture("gemini.json");
    let chunk = |text: &str| {
        String::from(r#"{"candidates":[{"content":{"parts":[{"text":""#)
            + text
            + r#""}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":4}}"#
    };
    let expected = [ev(chunk("The")), ev(chunk(" quick [brown]")), ev(chunk(r#" fox, \"jumps\""#))];
    assert_eq!(
        &expected[1],
        &ev(&b"{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\" quick [brown]\"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":4}}"[..])
    );
    case_default(Format::JsonArray, &input, &expected, Twins::Crlf);
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
    let chunk = |content: &str| {
        ev(String::from(
            r#"{"model":"llama3","created_at":"2024-05-01T00:00:00Z","message":{"role":"assistant","content":""#,
        ) + content
            + r#""},"done":false}"#)
    };
    case_default(Format::JsonSeq, &input, &[chunk("Why"), chunk(" is"), chunk(" the")], Twins::Crlf);
}
