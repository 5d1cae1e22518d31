//! Fixture streams per provider (from the providers' documented event shapes), fed through the real
//! decoder at every byte split: end detection and usage exact; cut before the end: not ended.

use ssegate_frame::testing::{aws_event, bedrock_chunk_payload, feed_split};
use ssegate_frame::{DecoderOptions, Format, Item};

use super::*;

struct Fixture {
    provider: Provider,
    format: Format,
    stream: Vec<u8>,
    /// Where the end marker's message starts: a cut anywhere before it is a truncated stream.
    end_at: usize,
    usage: Usage,
    provider_errors: usize,
}

fn usage(input: u64, output: u64, model: Option<&str>) -> Usage {
    Usage { input_tokens: Some(input), output_tokens: Some(output), model: model.map(str::to_owned) }
}

fn fixture(provider: Provider, format: Format, before: &[u8], end: &[u8], u: Usage) -> Fixture {
    let mut stream = before.to_vec();
    let end_at = stream.len();
    stream.extend_from_slice(end);
    Fixture { provider, format, stream, end_at, usage: u, provider_errors: 0 }
}

fn fixtures() -> Vec<Fixture> {
    let opts_sse = Format::Sse;
    let mut v = vec![
        fixture(
            Provider::OpenAi,
            opts_sse,
            b"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}],\"usage\":null}\n\n\
data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n\
data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-2024-08-06\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3,\"total_tokens\":15}}\n\n",
            b"data: [DONE]\n\n",
            usage(12, 3, Some("gpt-4o-2024-08-06")),
        ),
        fixture(
            Provider::OpenAiResponses,
            Format::Sse,
            b"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"r1\",\"model\":\"gpt-4.1\",\"usage\":null}}\n\n\
event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n",
            b"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"r1\",\"model\":\"gpt-4.1\",\"status\":\"completed\",\"usage\":{\"input_tokens\":20,\"output_tokens\":5,\"total_tokens\":25}}}\n\n",
            usage(20, 5, Some("gpt-4.1")),
        ),
        fixture(
            Provider::Anthropic,
            Format::Sse,
            b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: ping\ndata: {\"type\":\"ping\"}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n",
            b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
            usage(25, 15, Some("claude-sonnet-4-5")),
        ),
        fixture(
            Provider::Gemini,
            Format::Sse,
            b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":8,\"candidatesTokenCount\":1,\"totalTokenCount\":9},\"modelVersion\":\"gemini-2.0-flash\"}\r\n\r\n",
            b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\" there\"}],\"role\":\"model\"},\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":8,\"candidatesTokenCount\":4,\"totalTokenCount\":12},\"modelVersion\":\"gemini-2.0-flash\"}\r\n\r\n",
            usage(8, 4, Some("gemini-2.0-flash")),
        ),
        fixture(
            Provider::Gemini,
            Format::JsonArray,
            b"[{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":8,\"candidatesTokenCount\":1},\"modelVersion\":\"gemini-2.0-flash\"}\n,",
            b"{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\" there\"}],\"role\":\"model\"},\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":8,\"candidatesTokenCount\":4},\"modelVersion\":\"gemini-2.0-flash\"}]",
            usage(8, 4, Some("gemini-2.0-flash")),
        ),
        fixture(
            Provider::Ollama,
            Format::Ndjson,
            b"{\"model\":\"llama3.2\",\"created_at\":\"2024-01-01T00:00:00Z\",\"message\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"done\":false}\n",
            b"{\"model\":\"llama3.2\",\"created_at\":\"2024-01-01T00:00:01Z\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done_reason\":\"stop\",\"done\":true,\"total_duration\":100,\"prompt_eval_count\":26,\"eval_count\":259}\n",
            usage(26, 259, Some("llama3.2")),
        ),
        fixture(
            Provider::Cohere,
            Format::Sse,
            b"event: message-start\ndata: {\"id\":\"m1\",\"type\":\"message-start\",\"delta\":{\"message\":{\"role\":\"assistant\"}}}\n\n\
event: content-delta\ndata: {\"type\":\"content-delta\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"text\":\"Hi\"}}}}\n\n",
            b"event: message-end\ndata: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"COMPLETE\",\"usage\":{\"billed_units\":{\"input_tokens\":5,\"output_tokens\":2},\"tokens\":{\"input_tokens\":71,\"output_tokens\":2}}}}\n\n",
            usage(71, 2, None),
        ),
    ];
    // Bedrock ConverseStream: messageStop, then metadata with usage.
    let mut before = aws_event("messageStart", br#"{"role":"assistant"}"#);
    before.extend(aws_event("contentBlockDelta", br#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#));
    let end = aws_event("messageStop", br#"{"stopReason":"end_turn"}"#);
    let mut f = fixture(Provider::Bedrock, Format::AwsEventstream, &before, &end, usage(0, 0, None));
    f.stream.extend(aws_event(
        "metadata",
        br#"{"usage":{"inputTokens":30,"outputTokens":9,"totalTokens":39},"metrics":{"latencyMs":100}}"#,
    ));
    f.usage = usage(30, 9, None);
    v.push(f);
    // Bedrock InvokeModelWithResponseStream (Anthropic inside): the last chunk has the invocation metrics.
    let mut before = Vec::new();
    for inner in [
        &br#"{"type":"message_start","message":{"model":"claude","usage":{"input_tokens":11,"output_tokens":1}}}"#[..],
        br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
    ] {
        before.extend(aws_event("chunk", &bedrock_chunk_payload(inner, "abc")));
    }
    let last = br#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":11,"outputTokenCount":7,"invocationLatency":500,"firstByteLatency":100}}"#;
    let end = aws_event("chunk", &bedrock_chunk_payload(last, "xyz"));
    v.push(fixture(Provider::Bedrock, Format::AwsEventstream, &before, &end, usage(11, 7, None)));
    // In-band errors, delivered and counted; no end marker follows.
    for (provider, format, stream) in [
        (Provider::Anthropic, Format::Sse, &b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"[..]),
        (Provider::OpenAi, Format::Sse, b"data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}\n\n"),
        (Provider::Ollama, Format::Ndjson, b"{\"error\":\"model not found\"}\n"),
    ] {
        v.push(Fixture {
            provider,
            format,
            stream: stream.to_vec(),
            end_at: stream.len(),
            usage: Usage::default(),
            provider_errors: 1,
        });
    }
    v
}

fn opts() -> DecoderOptions {
    DecoderOptions { max_event_size: 1 << 20, event_field: None, comments: false }
}

/// (ended, usage, provider errors, events) for `input` fed in two pieces split at `at`.
fn run(f: &Fixture, input: &[u8], at: usize) -> (bool, Usage, usize, usize) {
    let mut t = Tracker::new(f.provider);
    let (mut errors, mut events) = (0, 0);
    for item in feed_split(f.format, &opts(), input, at) {
        match item {
            Item::Event(ev) => {
                events += 1;
                if t.observe(&ev) == Seen::ProviderError {
                    errors += 1;
                }
            }
            Item::Error(e) if !input.is_empty() && input.len() == f.stream.len() => {
                panic!("{}: decode error {e}", f.provider.name())
            }
            _ => {}
        }
    }
    (t.ended(), t.usage().clone(), errors, events)
}

#[test]
fn end_and_usage_at_every_split() {
    for f in fixtures() {
        let name = f.provider.name();
        let mut events_whole = None;
        for at in 0..=f.stream.len() {
            let (ended, usage, errors, events) = run(&f, &f.stream, at);
            assert_eq!(ended, f.provider_errors == 0, "{name} {:?} split at {at}", f.format);
            assert_eq!(usage, f.usage, "{name} split at {at}");
            assert_eq!(errors, f.provider_errors, "{name} split at {at}");
            assert_eq!(*events_whole.get_or_insert(events), events, "{name} split at {at}");
        }
    }
}

#[test]
fn cut_before_the_end_is_not_ended() {
    for f in fixtures().into_iter().filter(|f| f.provider_errors == 0) {
        for cut in 0..f.end_at {
            let input = &f.stream[..cut];
            for at in [0, cut / 2, cut] {
                let (ended, ..) = run(&f, input, at);
                assert!(!ended, "{} {:?} cut at {cut} split at {at}", f.provider.name(), f.format);
            }
        }
    }
}

#[test]
fn presets() {
    for p in Provider::ALL {
        assert_eq!(Provider::from_name(p.name()), Some(p));
        assert!(!p.formats().is_empty());
    }
    assert_eq!(Provider::Gemini.default_format(), None);
    assert_eq!(Provider::Bedrock.default_format(), Some(Format::AwsEventstream));
    assert_eq!(Provider::Ollama.default_format(), Some(Format::Ndjson));
}

/// The per-event cost on the hot path: a text delta (no usage, no end) is name comparisons and one or
/// two `memmem` searches. Printed, not asserted (run with `--nocapture`); a debug build is far slower.
#[test]
#[allow(clippy::disallowed_types)] // wall time of a CPU loop, not the tokio clock
fn per_event_cost_of_a_plain_delta() {
    let ev = ssegate_frame::Event::data(&br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello, world"}}"#[..])
        .with_name(&b"content_block_delta"[..]);
    let mut t = Tracker::new(Provider::Anthropic);
    let n = 200_000u32;
    let start = std::time::Instant::now();
    for _ in 0..n {
        assert_eq!(t.observe(std::hint::black_box(&ev)), Seen::Plain);
    }
    let per = start.elapsed() / n;
    println!("anthropic plain delta: {per:?} per event");
}
