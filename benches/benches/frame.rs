//! Framing core throughput: upstream bytes → `Decoder` → `encode::event` into a reused `BytesMut`, the
//! whole per-stream CPU path of the gateway minus the sockets.
//!
//! Payload: LLM-token-like JSON (OpenAI chat-completion chunks), ~200 bytes per message, fed in 1-byte,
//! 64-byte and 16 KiB chunks. Reported as input bytes per second. The `aws-eventstream` cases frame the
//! same messages as Bedrock does: base64-wrapped (`InvokeModelWithResponseStream`, ~385 bytes per frame)
//! or as the plain JSON payload (`ConverseStream`, ~300 bytes per frame). The `encode` group times the
//! encoder alone (events per second): free functions against `encode::Output`, with and without assigned ids.
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

/// Bedrock `InvokeModelWithResponseStream`: each message base64-wrapped as `{"bytes":..,"p":..}` in an AWS
/// eventstream frame with the three headers Bedrock sends.
fn bedrock(msgs: &[String]) -> Bytes {
    let mut out = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let payload =
            format!("{{\"bytes\":\"{}\",\"p\":\"{}\"}}", base64(m.as_bytes()), &"abcdefghij"[..i % 10]);
        aws_frame(
            &[(":event-type", "chunk"), (":content-type", "application/json"), (":message-type", "event")],
            payload.as_bytes(),
            &mut out,
        );
    }
    Bytes::from(out)
}

/// Bedrock `ConverseStream`: each message as the JSON payload of a `contentBlockDelta` frame.
fn converse(msgs: &[String]) -> Bytes {
    let mut out = Vec::new();
    for m in msgs {
        aws_frame(
            &[
                (":event-type", "contentBlockDelta"),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            m.as_bytes(),
            &mut out,
        );
    }
    Bytes::from(out)
}

/// One AWS eventstream frame with string headers (the bench crate has no CRC or base64 dependency).
fn aws_frame(headers: &[(&str, &str)], payload: &[u8], out: &mut Vec<u8>) {
    let mut h = Vec::new();
    for (name, value) in headers {
        h.push(name.len() as u8);
        h.extend_from_slice(name.as_bytes());
        h.push(7);
        h.extend_from_slice(&(value.len() as u16).to_be_bytes());
        h.extend_from_slice(value.as_bytes());
    }
    let start = out.len();
    out.extend_from_slice(&((16 + h.len() + payload.len()) as u32).to_be_bytes());
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let prelude_crc = crc32(&out[start..]);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// CRC-32 (IEEE), bit by bit: slow, only for building the input.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// Standard base64 with padding.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for group in data.chunks(3) {
        let n = group.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= group.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
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
    let cases: [(&str, Format, MakeInput); 5] = [
        ("ndjson_to_sse", Format::Ndjson, ndjson),
        ("sse_to_sse", Format::Sse, sse),
        ("json_array_to_sse", Format::JsonArray, json_array),
        ("bedrock_eventstream_to_sse", Format::AwsEventstream, bedrock),
        ("converse_eventstream_to_sse", Format::AwsEventstream, converse),
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
