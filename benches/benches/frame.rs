//! Framing core throughput: upstream bytes → `Decoder` → `encode::event` into a reused `BytesMut`, the
//! whole per-stream CPU path of the gateway minus the sockets.
//!
//! Payload: LLM-token-like JSON (OpenAI chat-completion chunks), ~200 bytes per message, fed in 1-byte,
//! 64-byte and 16 KiB chunks. Reported as input bytes per second. The `encode` group times the encoder
//! alone (events per second): free functions against `encode::Output`, with and without assigned ids.
//!
//! `cargo bench -p ssegate-bench --bench frame` (see benches/README.md for figures).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ssegate_frame::encode::{Id, Output};
use ssegate_frame::{encode, Decoder, DecoderOptions, Event, Format, Item};

/// Token texts of varying length, some non-ASCII, some with escapes.
const TOKENS: &[&str] = &[
    " the",
    " quick",
    " brown fox",
    ",",
    " jumps over",
    " the lazy dog.",
    "\\n\\n",
    " Gr\u{fc}\u{df}e",
    " \\\"quoted\\\"",
    " \u{1f600}",
    " streaming",
    " tokens",
    " at",
    " 1700000000",
];

/// One chat-completion chunk (~200 bytes on average; the id and a padding field vary the length).
fn message(i: usize) -> String {
    let token = TOKENS[i % TOKENS.len()];
    let pad = "x".repeat(i % 16);
    format!(
        "{{\"id\":\"chatcmpl-{i:07}\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\
         \"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp{pad}\",\
         \"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{token}\"}},\"finish_reason\":null}}]}}"
    )
}

fn messages(total: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut len = 0;
    let mut i = 0;
    while len < total {
        let m = message(i);
        len += m.len();
        out.push(m);
        i += 1;
    }
    out
}

fn ndjson(msgs: &[String]) -> Bytes {
    Bytes::from(msgs.iter().map(|m| format!("{m}\n")).collect::<String>())
}

fn sse(msgs: &[String]) -> Bytes {
    Bytes::from(msgs.iter().map(|m| format!("data: {m}\n\n")).collect::<String>())
}

fn json_array(msgs: &[String]) -> Bytes {
    Bytes::from(format!("[{}]", msgs.join("\r\n,\r\n")))
}

fn chunked(input: &Bytes, size: usize) -> Vec<Bytes> {
    (0..input.len()).step_by(size).map(|i| input.slice(i..(i + size).min(input.len()))).collect()
}

/// Decodes every chunk and encodes every event into `out`, which is cleared after each chunk as if it
/// had been written to the client. Returns the bytes encoded (so nothing is optimised away).
fn run(format: Format, chunks: &[Bytes], items: &mut Vec<Item>, out: &mut BytesMut) -> usize {
    let mut dec = Decoder::new(format, DecoderOptions::default());
    let mut written = 0;
    for chunk in chunks {
        dec.push(chunk, items);
        for item in items.drain(..) {
            if let Item::Event(ev) = item {
                encode::event(&ev, out);
            }
        }
        written += out.len();
        out.clear();
    }
    dec.finish(items);
    items.clear();
    written
}

/// Builds one input from the messages.
type MakeInput = fn(&[String]) -> Bytes;

fn bench(c: &mut Criterion) {
    let big = messages(1 << 20);
    let small = messages(64 << 10);
    let cases: [(&str, Format, MakeInput); 3] = [
        ("ndjson_to_sse", Format::Ndjson, ndjson),
        ("sse_to_sse", Format::Sse, sse),
        ("json_array_to_sse", Format::JsonArray, json_array),
    ];
    for (name, format, make) in cases {
        let mut group = c.benchmark_group(name);
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        for (size, label) in [(1usize, "1B"), (64, "64B"), (16 << 10, "16KiB")] {
            // 1-byte chunks run on a smaller input so the bench stays quick.
            let input = make(if size == 1 { &small } else { &big });
            let chunks = chunked(&input, size);
            let mut items = Vec::with_capacity(256);
            let mut out = BytesMut::with_capacity(64 << 10);
            assert!(
                run(format, &chunks, &mut items, &mut out) > input.len() / 2,
                "{name}: decoded too little"
            );
            group.throughput(Throughput::Bytes(input.len() as u64));
            group.bench_function(BenchmarkId::from_parameter(label), |b| {
                b.iter(|| run(format, &chunks, &mut items, &mut out));
            });
        }
        group.finish();
    }
}

/// Encoding alone, with gateway-assigned ids: the gateway's pre-`Output` path (`writeln!(out, "id: {}", n)`
/// then `encode::event` of the event with its id cleared) against `Output::Sse.event_with_id`, and plain
/// `encode::event` against `Output::Sse.event`. Reported as events per second.
fn bench_encode(c: &mut Criterion) {
    let events: Vec<Event> = messages(256 << 10)
        .into_iter()
        .enumerate()
        .map(|(i, m)| if i % 3 == 0 { Event::data(m).with_name("delta") } else { Event::data(m) })
        .collect();
    let mut group = c.benchmark_group("encode");
    group.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    group.throughput(Throughput::Elements(events.len() as u64));
    let mut out = BytesMut::with_capacity(512 << 10);
    group.bench_function("event/free_fn", |b| {
        b.iter(|| {
            out.clear();
            for ev in &events {
                encode::event(ev, &mut out);
            }
            out.len()
        })
    });
    group.bench_function("event/output", |b| {
        b.iter(|| {
            out.clear();
            for ev in &events {
                Output::Sse.event(ev, &mut out);
            }
            out.len()
        })
    });
    group.bench_function("with_id/writeln_then_free_fn", |b| {
        b.iter(|| {
            out.clear();
            for (n, ev) in events.iter().enumerate() {
                use std::fmt::Write;
                let _ = writeln!(out, "id: {}", n + 1);
                encode::event(ev, &mut out);
            }
            out.len()
        })
    });
    group.bench_function("with_id/output", |b| {
        b.iter(|| {
            out.clear();
            for (n, ev) in events.iter().enumerate() {
                Output::Sse.event_with_id(ev, Id::new(n as u64 + 1), &mut out);
            }
            out.len()
        })
    });
    group.bench_function("with_id/output_prefixed", |b| {
        b.iter(|| {
            out.clear();
            for (n, ev) in events.iter().enumerate() {
                Output::Sse.event_with_id(ev, Id::with_prefix(b"3f9a1c", n as u64 + 1), &mut out);
            }
            out.len()
        })
    });
    group.finish();
}

criterion_group!(benches, bench, bench_encode);
criterion_main!(benches);
