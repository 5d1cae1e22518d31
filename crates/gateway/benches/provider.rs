//! The cost of a provider preset on the per-event path (issue 15: "CPU per event with usage extraction
//! on stays within 10 % of off"). Each provider's fixture stream (`src/provider/fixtures.rs`, the shapes
//! the tests use) with its text-delta event repeated 2,000 times, fed in 16 KiB chunks through the
//! framing core (decode, then SSE-encode into a reused buffer, as `benches/benches/frame.rs`), with the
//! preset's [`Tracker`] looking at every event (`on`: end marker, usage, in-band errors) or not (`off`).
//! Reported as events per second; CPU per event = 1 / that. Run: `cargo bench -p ssegate --bench provider`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_debug_implementations)]

use std::hint::black_box;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ssegate::provider::{Provider, Tracker};
use ssegate_frame::{encode, Decoder, DecoderOptions, Format, Item};

#[allow(dead_code)] // the tests' fixture module: the benchmark uses a part of it
#[path = "../src/provider/fixtures.rs"]
mod fixtures;

/// Fixture label and the index of its text-delta event (the one repeated).
const CASES: [(&str, usize); 9] = [
    ("openai", 0),
    ("responses", 1),
    ("anthropic", 3),
    ("gemini_sse", 0),
    ("gemini_array", 0),
    ("ollama", 0),
    ("cohere", 1),
    ("bedrock_converse", 1),
    ("bedrock_claude", 1),
];

const DELTAS: usize = 2_000;

fn opts() -> DecoderOptions {
    DecoderOptions { max_event_size: 1 << 20, event_field: None, comments: false }
}

/// Decodes every chunk and encodes every event into `out` (cleared after each chunk, as if written to the
/// client); with `provider`, a tracker looks at every event first. Returns the bytes encoded and the
/// tracker (so nothing is optimised away).
fn run(
    format: Format,
    provider: Option<Provider>,
    chunks: &[Bytes],
    items: &mut Vec<Item>,
    out: &mut BytesMut,
) -> (usize, Option<Tracker>) {
    let mut dec = Decoder::new(format, opts());
    let mut tracker = provider.map(Tracker::new);
    let mut written = 0;
    for chunk in chunks {
        dec.push(chunk, items);
        for item in items.drain(..) {
            if let Item::Event(ev) = item {
                if let Some(t) = tracker.as_mut() {
                    black_box(t.observe(&ev));
                }
                encode::event(&ev, out);
            }
        }
        written += out.len();
        out.clear();
    }
    dec.finish(items);
    items.clear();
    (written, tracker)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("provider_usage");
    group.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    for (label, delta) in CASES {
        let f = fixtures::all().into_iter().find(|f| f.label == label).unwrap();
        let provider = Provider::from_name(f.provider).unwrap();
        let format = Format::from_name(f.wire.format()).unwrap();
        let (stream, events) = f.stream_with(delta, DELTAS);
        let input = Bytes::from(stream);
        let chunks: Vec<Bytes> = (0..input.len())
            .step_by(16 << 10)
            .map(|i| input.slice(i..(i + (16 << 10)).min(input.len())))
            .collect();
        let mut items = Vec::with_capacity(256);
        let mut out = BytesMut::with_capacity(64 << 10);
        // The stream is what the preset expects: it ends, with the fixture's usage.
        let (_, t) = run(format, Some(provider), &chunks, &mut items, &mut out);
        let t = t.unwrap();
        assert!(t.ended(), "{label}: no end marker");
        assert_eq!(
            (t.usage().input_tokens, t.usage().output_tokens),
            (f.input_tokens, f.output_tokens),
            "{label}"
        );
        group.throughput(Throughput::Elements(events as u64));
        for (mode, p) in [("off", None), ("on", Some(provider))] {
            group.bench_function(BenchmarkId::new(label, mode), |b| {
                b.iter(|| run(format, p, &chunks, &mut items, &mut out).0)
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
