//! The cost of a provider preset on the per-event path (issue 15: "CPU per event with usage extraction
//! on stays within 10 % of off"). Each provider's fixture stream (`src/provider/fixtures.rs`, the shapes
//! the tests use) with its text-delta event repeated 2,000 times, fed in 16 KiB chunks (and in chunks of
//! the average event size, about one event per read as a paced upstream sends them) through the
//! framing core (decode, then SSE-encode into a reused buffer, as `benches/benches/frame.rs`), with the
//! preset's [`Tracker`] looking at every event (`on`: end marker, usage, in-band errors) or not (`off`).
//!
//! Measured in **thread CPU time** (`CLOCK_THREAD_CPUTIME_ID`), not wall time, so other processes on a
//! shared machine do not count: 15 rounds, each timing `off` and `on` (alternating which goes first) over
//! about 20 ms of work; the median CPU ns per event of each, and the overhead `on / off − 1`.
//! Run: `cargo bench -p ssegate --bench provider` (prints a Markdown table).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_debug_implementations)]

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use nix::time::{clock_gettime, ClockId};
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

/// This thread's CPU time, ns.
fn cpu_ns() -> u64 {
    let t = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).unwrap();
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

/// CPU ns per event of `reps` runs.
fn measure(reps: usize, events: usize, mut once: impl FnMut() -> usize) -> f64 {
    let start = cpu_ns();
    for _ in 0..reps {
        black_box(once());
    }
    (cpu_ns() - start) as f64 / (reps * events) as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    println!("| stream | chunks | events | off (ns/event) | on (ns/event) | overhead |");
    println!("|---|---|---|---|---|---|");
    for (label, delta) in CASES {
        for per_event in [false, true] {
            case(label, delta, per_event);
        }
    }
}

/// One row: `label`'s stream in 16 KiB chunks, or (`per_event`) in chunks of the average event size (about
/// one event per read, as a paced upstream delivers them).
fn case(label: &str, delta: usize, per_event: bool) {
    let f = fixtures::all().into_iter().find(|f| f.label == label).unwrap();
    let provider = Provider::from_name(f.provider).unwrap();
    let format = Format::from_name(f.wire.format()).unwrap();
    let (stream, events) = f.stream_with(delta, DELTAS);
    let input = Bytes::from(stream);
    let size = if per_event { input.len() / events } else { 16 << 10 };
    let chunks: Vec<Bytes> =
        (0..input.len()).step_by(size).map(|i| input.slice(i..(i + size).min(input.len()))).collect();
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
    let mut once = |p: Option<Provider>| {
        let (n, t) = run(format, p, &chunks, &mut items, &mut out);
        n + t.map_or(0, |t| usize::from(t.ended()) + t.usage().output_tokens.unwrap_or(0) as usize)
    };
    // Warm-up, and the repetitions that make about 20 ms.
    let per = measure(20, events, || once(None)).max(1.0);
    let reps = ((20e6 / (per * events as f64)) as usize).max(1);
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for round in 0..15 {
        let mut pair = [(None, &mut off), (Some(provider), &mut on)];
        if round % 2 == 1 {
            pair.reverse();
        }
        for (p, into) in pair {
            into.push(measure(reps, events, || once(p)));
        }
    }
    let (off, on) = (median(off), median(on));
    let chunking = if per_event { format!("{size} B") } else { "16 KiB".to_owned() };
    println!("| {label} | {chunking} | {events} | {off:.1} | {on:.1} | {:+.1} % |", (on / off - 1.0) * 100.0);
}
