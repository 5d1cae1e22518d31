//! Fixture streams per provider (from the providers' documented event shapes), fed through the real
//! decoder at every byte split: end detection and usage exact; cut before the end: not ended.

use ssegate_frame::testing::feed_split;
use ssegate_frame::{DecoderOptions, Format, Item};

use super::fixtures::{self, Fixture};
use super::*;

fn provider(f: &Fixture) -> Provider {
    Provider::from_name(f.provider).unwrap()
}

fn format(f: &Fixture) -> Format {
    Format::from_name(f.wire.format()).unwrap()
}

fn expected_usage(f: &Fixture) -> Usage {
    Usage { input_tokens: f.input_tokens, output_tokens: f.output_tokens, model: f.model.map(str::to_owned) }
}

fn opts() -> DecoderOptions {
    DecoderOptions { max_event_size: 1 << 20, event_field: None, comments: false }
}

/// What the tracker saw of `input` fed in two pieces split at `at`.
struct Run {
    ended: bool,
    usage: Usage,
    provider_errors: usize,
    /// Events recognised as the end marker.
    end_markers: usize,
    events: Vec<(Option<String>, String)>,
}

fn run(f: &Fixture, input: &[u8], at: usize) -> Run {
    let mut t = Tracker::new(provider(f));
    let (mut errors, mut ends, mut events) = (0, 0, Vec::new());
    for item in feed_split(format(f), &opts(), input, at) {
        match item {
            Item::Event(ev) => {
                let name = ev.name.as_deref().map(|n| String::from_utf8_lossy(n).into_owned());
                events.push((name, String::from_utf8_lossy(&ev.data).into_owned()));
                match t.observe(&ev) {
                    Seen::ProviderError => errors += 1,
                    Seen::End => ends += 1,
                    Seen::Plain => {}
                }
            }
            Item::Error(e) if !input.is_empty() && input.len() == f.stream.len() => {
                panic!("{}: decode error {e}", f.label)
            }
            _ => {}
        }
    }
    Run { ended: t.ended(), usage: t.usage().clone(), provider_errors: errors, end_markers: ends, events }
}

#[test]
fn end_and_usage_at_every_split() {
    for f in fixtures::all() {
        let name = f.label;
        for at in 0..=f.stream.len() {
            let r = run(&f, &f.stream, at);
            // An in-band error ends the stream like the end marker.
            assert!(r.ended, "{name} split at {at}");
            assert_eq!(r.end_markers > 0, f.has_end(), "{name} split at {at}");
            assert_eq!(r.usage, expected_usage(&f), "{name} split at {at}");
            assert_eq!(r.provider_errors, f.provider_errors, "{name} split at {at}");
            assert_eq!(r.events, f.events, "{name} split at {at}");
        }
    }
}

#[test]
fn cut_before_the_end_is_not_ended() {
    for f in fixtures::all() {
        for cut in 0..=f.end_at {
            let input = &f.stream[..cut];
            for at in [0, cut / 2, cut] {
                assert!(!run(&f, input, at).ended, "{} cut at {cut} split at {at}", f.label);
            }
        }
        // Every event before the end marker is there when the stream is cut right before it.
        let r = run(&f, &f.stream[..f.end_at], f.end_at / 2);
        assert_eq!(r.events, f.events[..f.events_before_end], "{}", f.label);
    }
}

/// Gemini's cumulative usage, kept unparsed between the first and the final chunk: a stream cut before
/// the end reports the last chunk's counts; a read between chunks sees the counts so far.
#[test]
fn gemini_usage_of_a_cut_stream_is_the_last_chunks() {
    for label in ["gemini_sse", "gemini_array"] {
        let f = fixtures::all().into_iter().find(|f| f.label == label).unwrap();
        assert!(f.events_before_end >= 2, "{label}: the pending path needs a middle chunk");
        for at in 0..=f.end_at {
            let r = run(&f, &f.stream[..f.end_at], at);
            assert_eq!(
                r.usage,
                Usage {
                    input_tokens: Some(8),
                    output_tokens: Some(2),
                    model: Some("gemini-2.0-flash".into())
                },
                "{label} split at {at}"
            );
        }
    }
    let chunk = |n: u64| {
        ssegate_frame::Event::data(format!(
            r#"{{"candidates":[{{"content":{{"parts":[{{"text":"x"}}]}}}}],"usageMetadata":{{"promptTokenCount":5,"candidatesTokenCount":{n}}},"modelVersion":"m"}}"#
        ))
    };
    let mut t = Tracker::new(Provider::Gemini);
    for n in 1..=4 {
        assert_eq!(t.observe(&chunk(n)), Seen::Plain);
        assert_eq!((t.usage().input_tokens, t.usage().output_tokens), (Some(5), Some(n)), "after chunk {n}");
        assert_eq!(t.usage().model.as_deref(), Some("m"));
    }
}

/// On a provider route with `format = "auto"` every fixture's content type picks the fixture's format
/// (Gemini's JSON array too, on a `streamGenerateContent` request).
#[test]
fn auto_picks_each_fixture_format() {
    use crate::config::FormatChoice;
    use crate::exchange::choose::{choose, Choice, Committed};
    for f in fixtures::all() {
        let ct = f.wire.content_type();
        let path = "/v1beta/models/gemini-2.0-flash:streamGenerateContent";
        let choice = format::for_answer(Some(provider(&f)), FormatChoice::Auto, ct, path);
        assert_eq!(choose(choice, 200, ct, Committed::No), Choice::Decode(format(&f)), "{}", f.label);
    }
}

#[test]
fn a_fixture_rewritten_with_one_copy_of_an_event_is_itself() {
    for f in fixtures::all() {
        for i in 0..f.raw.len() {
            assert_eq!(f.stream_with(i, 1), (f.stream.clone(), f.raw.len()), "{} event {i}", f.label);
        }
        if let Some(first) = f.raw.first() {
            let (long, n) = f.stream_with(0, 3);
            assert_eq!(n, f.raw.len() + 2);
            assert!(long.len() > f.stream.len(), "{} {first:?}", f.label);
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
