//! Test support (feature `testing`): feeding helpers, the chunk-boundary invariance check, the fuzz
//! oracles and a deterministic input generator.
//!
//! The cargo-fuzz targets in `fuzz/` and the stable test `tests/oracle.rs` call the same [`oracle`] and
//! [`oracle_encode`] functions, so CI exercises every oracle without a nightly toolchain. An oracle returns
//! `Err(description)` when a property is violated (a panic anywhere is of course also a failure).

use bytes::{Bytes, BytesMut};

use crate::{encode, Decoder, DecoderOptions, Event, Format, Item};

/// Feeds `chunks` one after another, then finishes.
pub fn feed_chunks<'a>(
    format: Format,
    opts: &DecoderOptions,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Vec<Item> {
    let mut dec = Decoder::new(format, opts.clone());
    let mut out = Vec::new();
    for chunk in chunks {
        dec.push(&Bytes::copy_from_slice(chunk), &mut out);
    }
    dec.finish(&mut out);
    out
}

/// Feeds `input` as one chunk.
pub fn feed_whole(format: Format, opts: &DecoderOptions, input: &[u8]) -> Vec<Item> {
    feed_chunks(format, opts, [input])
}

/// Feeds `input` in two pieces split at `at` (clamped).
pub fn feed_split(format: Format, opts: &DecoderOptions, input: &[u8], at: usize) -> Vec<Item> {
    let (a, b) = input.split_at(at.min(input.len()));
    feed_chunks(format, opts, [a, b])
}

/// Feeds `input` one byte at a time.
pub fn feed_bytewise(format: Format, opts: &DecoderOptions, input: &[u8]) -> Vec<Item> {
    feed_chunks(format, opts, input.chunks(1))
}

/// The data of every event, concatenated.
pub fn concat_data(items: &[Item]) -> Vec<u8> {
    let mut all = Vec::new();
    for item in items {
        if let Item::Event(ev) = item {
            all.extend_from_slice(&ev.data);
        }
    }
    all
}

/// Chunk-boundary invariance: `input` split at every byte offset into two pieces, and fed one byte at a
/// time, yields exactly the items of the unsplit feed. For [`Format::Chunks`] (one event per chunk by
/// contract) the concatenated data must be invariant instead and every event valid UTF-8.
pub fn check_invariance(format: Format, opts: &DecoderOptions, input: &[u8]) -> Result<(), String> {
    let whole = feed_whole(format, opts, input);
    for at in 0..=input.len() {
        same_items(format, input, &whole, &feed_split(format, opts, input, at), &|| {
            format!("split at {at}")
        })?;
    }
    same_items(format, input, &whole, &feed_bytewise(format, opts, input), &|| "fed byte by byte".to_string())
}

/// Whether `other`, the items of `input` fed in another chunking (`how`), agree with `whole`, those of the
/// unsplit feed: the same items, or for [`Format::Chunks`] the same text in events that split no character.
fn same_items(
    format: Format,
    input: &[u8],
    whole: &[Item],
    other: &[Item],
    how: &dyn Fn() -> String,
) -> Result<(), String> {
    if format == Format::Chunks {
        if concat_data(other) != concat_data(whole) {
            return Err(format!("{format}: concatenated data differs when {}", how()));
        }
        if let Some(bad) = events(other).find(|ev| std::str::from_utf8(&ev.data).is_err()) {
            return Err(format!("{format}: event {bad:?} splits a character when {}", how()));
        }
    } else if other != whole {
        return Err(format!(
            "{format}: items differ when {}\n whole: {whole:?}\n split: {other:?}\n input: {:?}",
            how(),
            String::from_utf8_lossy(input)
        ));
    }
    Ok(())
}

fn events(items: &[Item]) -> impl Iterator<Item = &Event> {
    items.iter().filter_map(|item| match item {
        Item::Event(ev) => Some(ev),
        _ => None,
    })
}

/// Encodes the events, comments and retries of `items` as SSE (errors are skipped).
pub fn encode_items(items: &[Item]) -> BytesMut {
    let mut out = BytesMut::new();
    for item in items {
        match item {
            Item::Event(ev) => encode::event(ev, &mut out),
            Item::Comment(text) => encode::comment(text, &mut out),
            Item::Retry(ms) => encode::retry(*ms, &mut out),
            Item::Error(_) => {}
        }
    }
    out
}

/// The fuzz oracle for one input. The first byte picks the format and options, the second the split
/// point; the rest is the stream. Checks:
/// - a split feed and a byte-by-byte feed give the items of the whole feed (`chunks`: same text);
/// - every event's data, name and id are UTF-8; names and ids hold no CR/LF, names are not empty;
/// - `sse`: re-encoding the items and parsing them again gives the same items (errors aside);
/// - JSON formats: every data is one valid JSON value (serde_json) with no whitespace outside strings,
///   and is a fixed point (read back as an NDJSON line it gives the same event);
/// - `lines`: no data holds CR or LF;
/// - `aws-eventstream`: events named `error` (exception and error frames) carry valid compact JSON.
pub fn oracle(input: &[u8]) -> Result<(), String> {
    let Some((&sel, rest)) = input.split_first() else { return Ok(()) };
    let (split, stream) = match rest.split_first() {
        Some((&s, stream)) => (s, stream),
        None => (0, rest),
    };
    let format = Format::ALL[usize::from(sel) % Format::ALL.len()];
    let opts = DecoderOptions {
        max_event_size: if sel & 0x20 != 0 { 8 + usize::from(sel >> 6) * 24 } else { 1 << 20 },
        event_field: (sel & 0x10 != 0).then(|| "type".to_string()),
        comments: sel & 0x08 != 0,
    };
    let at = usize::from(split) * stream.len() / 255;
    oracle_format(format, &opts, stream, at)
}

/// [`oracle`] with the format, options and split point given.
pub fn oracle_format(format: Format, opts: &DecoderOptions, input: &[u8], at: usize) -> Result<(), String> {
    let whole = feed_whole(format, opts, input);
    let split = feed_split(format, opts, input, at);
    let bytewise = feed_bytewise(format, opts, input);
    same_items(format, input, &whole, &split, &|| format!("split at {at}"))?;
    same_items(format, input, &whole, &bytewise, &|| "fed byte by byte".to_string())?;
    for ev in events(&whole).chain(events(&split)) {
        check_event_text(ev)?;
        if format == Format::Lines && ev.data.iter().any(|&c| c == b'\r' || c == b'\n') {
            return Err(format!("lines: data with a line break: {ev:?}"));
        }
        if format == Format::AwsEventstream && ev.name.as_deref() == Some(b"error") {
            check_json(&ev.data)?;
        }
    }
    if format == Format::Sse {
        let again = DecoderOptions { max_event_size: usize::MAX, ..opts.clone() };
        let encoded = encode_items(&whole);
        let reparsed = feed_split(Format::Sse, &again, &encoded, at);
        let expected: Vec<&Item> = whole.iter().filter(|i| !matches!(i, Item::Error(_))).collect();
        if reparsed.iter().collect::<Vec<_>>() != expected {
            return Err(format!(
                "sse: re-encode + re-parse differs:\n first: {expected:?}\n again: {reparsed:?}\n encoded: {:?}",
                String::from_utf8_lossy(&encoded)
            ));
        }
    }
    if format.is_json() {
        let again = DecoderOptions { max_event_size: usize::MAX, ..opts.clone() };
        for ev in events(&whole) {
            check_json(&ev.data)?;
            let mut line = ev.data.to_vec();
            line.push(b'\n');
            let back = feed_whole(Format::Ndjson, &again, &line);
            if back != [Item::Event(ev.clone())] {
                return Err(format!("{format}: not a fixed point: {ev:?} -> {back:?}"));
            }
        }
    }
    Ok(())
}

fn check_event_text(ev: &Event) -> Result<(), String> {
    let utf8 = |b: &[u8]| std::str::from_utf8(b).is_ok();
    let one_line = |b: &[u8]| !b.iter().any(|&c| c == b'\r' || c == b'\n');
    if !utf8(&ev.data) {
        return Err(format!("data is not UTF-8: {ev:?}"));
    }
    if let Some(name) = &ev.name {
        if name.is_empty() || !utf8(name) || !one_line(name) {
            return Err(format!("bad name: {ev:?}"));
        }
    }
    if let Some(id) = &ev.id {
        if !utf8(id) || !one_line(id) || id.contains(&0) {
            return Err(format!("bad id: {ev:?}"));
        }
    }
    Ok(())
}

/// `data` is one valid JSON value (per serde_json) without whitespace outside its strings.
pub fn check_json(data: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(data).map_err(|e| format!("JSON data is not UTF-8: {e}"))?;
    serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|e| format!("invalid JSON {text:?}: {e}"))?;
    if has_whitespace_outside_strings(data) {
        return Err(format!("JSON not compact: {text:?}"));
    }
    Ok(())
}

/// The differential oracle of the JSON validator: `input` with its LFs removed is one NDJSON line, which
/// must yield an event exactly when serde_json accepts it as one JSON value, and then the event's data is
/// its compacted form: serde_json reads the same value from the data as from the line, and the data is
/// byte for byte [`compact_reference`] of the line. Two documented differences are allowed: a
/// whitespace-only line yields nothing, and nesting deeper than [`MAX_DEPTH`](crate::decode::MAX_DEPTH) is
/// rejected only by ssegate.
pub fn oracle_json_differential(input: &[u8]) -> Result<(), String> {
    let line: Vec<u8> = input.iter().copied().filter(|&c| c != b'\n').collect();
    let opts = DecoderOptions { max_event_size: usize::MAX, ..DecoderOptions::default() };
    let items = feed_whole(Format::Ndjson, &opts, &line);
    let serde_ok = std::str::from_utf8(&line)
        .is_ok_and(|text| serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok());
    let shown = || String::from_utf8_lossy(&line).into_owned();
    match items.as_slice() {
        [] if line.iter().all(|c| matches!(c, b' ' | b'\t' | b'\r')) => Ok(()),
        [Item::Event(ev)] if serde_ok => {
            check_json(&ev.data)?;
            same_json_value(&line, &ev.data)?;
            let want = compact_reference(&line);
            if ev.data[..] != want[..] {
                return Err(format!(
                    "data is not the compacted line:\n line: {:?}\n data: {:?}\n want: {:?}",
                    shown(),
                    String::from_utf8_lossy(&ev.data),
                    String::from_utf8_lossy(&want)
                ));
            }
            Ok(())
        }
        [Item::Error(crate::DecodeError::MalformedJson { reason: "nesting too deep", .. })] => Ok(()),
        [Item::Error(e)] if !serde_ok => {
            if e.recoverable() {
                Ok(())
            } else {
                Err(format!("ndjson error not recoverable: {e:?}"))
            }
        }
        other => Err(format!("ssegate {other:?} but serde_json ok={serde_ok} for {:?}", shown())),
    }
}

/// serde_json reads the same value from `data` (an event's data) as from `input` (what the decoder was
/// given). A `serde_json::Value` cannot hold a lone surrogate (`"\ud800"`, valid JSON text): then neither
/// may be readable as one.
pub fn same_json_value(input: &[u8], data: &[u8]) -> Result<(), String> {
    let read = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).ok();
    let (want, got) = (read(input), read(data));
    if want != got {
        return Err(format!(
            "serde_json reads {got:?} from the data {:?} but {want:?} from the input {:?}",
            String::from_utf8_lossy(data),
            String::from_utf8_lossy(input)
        ));
    }
    Ok(())
}

/// A deliberately naive reference compaction of valid JSON: every space, tab, CR and LF outside strings
/// is dropped, every byte inside strings (escapes included) is kept.
pub fn compact_reference(json: &[u8]) -> Vec<u8> {
    let (mut in_string, mut escaped) = (false, false);
    let mut out = Vec::with_capacity(json.len());
    for &c in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
        } else if c == b'"' {
            in_string = true;
        } else if matches!(c, b' ' | b'\t' | b'\r' | b'\n') {
            continue;
        }
        out.push(c);
    }
    out
}

/// A deliberately naive reference: whether `json` has a space, tab, CR or LF outside its strings.
pub fn has_whitespace_outside_strings(json: &[u8]) -> bool {
    let (mut in_string, mut escaped) = (false, false);
    for &c in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
        } else if c == b'"' {
            in_string = true;
        } else if matches!(c, b' ' | b'\t' | b'\r' | b'\n') {
            return true;
        }
    }
    false
}

/// The encoder round-trip oracle: builds an event from `input` (lossy UTF-8; fields data, name, id and
/// retry digits separated by U+001F, the last byte picks the split point), encodes it and parses it back:
/// the result must be the one event with data line breaks normalised to LF, CR/LF removed from name and
/// id, an empty name as `None` and an id with NUL dropped.
pub fn oracle_encode(input: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(input);
    let mut parts = text.split('\u{1f}');
    let data = parts.next().unwrap_or_default().to_string();
    let name = parts.next().map(str::to_string);
    let id = parts.next().map(str::to_string);
    let retry =
        parts.next().map(|r| r.bytes().fold(0u64, |acc, c| acc.wrapping_mul(31).wrapping_add(u64::from(c))));
    let ev = Event {
        name: name.clone().map(Bytes::from),
        data: Bytes::from(data.clone()),
        id: id.clone().map(Bytes::from),
        retry,
    };
    let strip = |s: String| s.replace(['\r', '\n'], "");
    let expected = Event {
        name: name.map(strip).filter(|n| !n.is_empty()).map(Bytes::from),
        data: Bytes::from(data.replace("\r\n", "\n").replace('\r', "\n")),
        id: id.filter(|i| !i.contains('\0')).map(strip).map(Bytes::from),
        retry,
    };
    let mut encoded = Vec::new();
    encode::event(&ev, &mut encoded);
    if encoded.len() > encode::encoded_len_hint(&ev) {
        return Err(format!("encoded_len_hint too small for {ev:?}"));
    }
    let at = usize::from(input.last().copied().unwrap_or(0)) * encoded.len() / 255;
    let opts = DecoderOptions { max_event_size: usize::MAX, ..DecoderOptions::default() };
    let parsed = feed_split(Format::Sse, &opts, &encoded, at);
    if parsed != [Item::Event(expected.clone())] {
        return Err(format!(
            "encode round trip: {ev:?}\n encoded: {:?}\n expected: {expected:?}\n parsed: {parsed:?}",
            String::from_utf8_lossy(&encoded)
        ));
    }
    Ok(())
}

/// A header value of an AWS eventstream frame, for [`aws_frame`] (the value types of the format, with
/// their wire type numbers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AwsHeader {
    /// Types 0 (true) and 1 (false): no value bytes.
    Bool(bool),
    /// Type 2: one byte.
    Byte(i8),
    /// Type 3: i16 BE.
    Short(i16),
    /// Type 4: i32 BE.
    Int(i32),
    /// Type 5: i64 BE.
    Long(i64),
    /// Type 6: u16 BE length, bytes.
    Bytes(Vec<u8>),
    /// Type 7: u16 BE length, bytes (UTF-8 in valid streams; any bytes here).
    String(Vec<u8>),
    /// Type 8: milliseconds since the epoch, i64 BE.
    Timestamp(i64),
    /// Type 9: 16 bytes.
    Uuid([u8; 16]),
}

impl AwsHeader {
    /// A string header.
    pub fn string(s: impl AsRef<[u8]>) -> Self {
        AwsHeader::String(s.as_ref().to_vec())
    }
}

/// Writes one AWS eventstream frame byte by byte from the specification (an encoder independent of the
/// decoder): total length, headers length, prelude CRC32, headers, payload, message CRC32 (`crc32fast`).
/// Names longer than 255 bytes and values longer than 65 535 bytes are truncated.
pub fn aws_frame(headers: &[(&str, AwsHeader)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (name, value) in headers {
        let name = name.as_bytes().get(..name.len().min(255)).unwrap_or_default();
        h.push(name.len() as u8);
        h.extend_from_slice(name);
        let with_len = |h: &mut Vec<u8>, kind: u8, v: &[u8]| {
            let v = v.get(..v.len().min(usize::from(u16::MAX))).unwrap_or_default();
            h.push(kind);
            h.extend_from_slice(&(v.len() as u16).to_be_bytes());
            h.extend_from_slice(v);
        };
        match value {
            AwsHeader::Bool(true) => h.push(0),
            AwsHeader::Bool(false) => h.push(1),
            AwsHeader::Byte(v) => {
                h.push(2);
                h.extend_from_slice(&v.to_be_bytes());
            }
            AwsHeader::Short(v) => {
                h.push(3);
                h.extend_from_slice(&v.to_be_bytes());
            }
            AwsHeader::Int(v) => {
                h.push(4);
                h.extend_from_slice(&v.to_be_bytes());
            }
            AwsHeader::Long(v) => {
                h.push(5);
                h.extend_from_slice(&v.to_be_bytes());
            }
            AwsHeader::Bytes(v) => with_len(&mut h, 6, v),
            AwsHeader::String(v) => with_len(&mut h, 7, v),
            AwsHeader::Timestamp(v) => {
                h.push(8);
                h.extend_from_slice(&v.to_be_bytes());
            }
            AwsHeader::Uuid(v) => {
                h.push(9);
                h.extend_from_slice(v);
            }
        }
    }
    let total = 16 + h.len() + payload.len();
    let mut f = Vec::with_capacity(total);
    f.extend_from_slice(&(total as u32).to_be_bytes());
    f.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(f.get(..8).unwrap_or_default());
    f.extend_from_slice(&prelude_crc.to_be_bytes());
    f.extend_from_slice(&h);
    f.extend_from_slice(payload);
    let crc = crc32fast::hash(&f);
    f.extend_from_slice(&crc.to_be_bytes());
    f
}

/// An `event` frame as Bedrock sends it: `:event-type`, `:content-type: application/json`,
/// `:message-type: event`, then `payload`.
pub fn aws_event(event_type: &str, payload: &[u8]) -> Vec<u8> {
    aws_frame(
        &[
            (":event-type", AwsHeader::string(event_type)),
            (":content-type", AwsHeader::string("application/json")),
            (":message-type", AwsHeader::string("event")),
        ],
        payload,
    )
}

/// Bedrock `InvokeModelWithResponseStream`'s wrapper of one model chunk: `{"bytes":"<base64>","p":..}`.
pub fn bedrock_chunk_payload(inner: &[u8], padding: &str) -> Vec<u8> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(inner);
    format!("{{\"bytes\":\"{b64}\",\"p\":\"{padding}\"}}").into_bytes()
}

/// The `aws-eventstream` fuzz oracle. The first byte picks a small or the default `max_event_size` and
/// the split point; the rest is the stream. Checks, besides [`oracle_format`] (chunking invariance, UTF-8
/// one-line names):
/// - fed in 7-byte pieces, the decoder never holds more than one frame's worth (`max_event_size` +
///   128 KiB + 16 bytes);
/// - nothing follows an unrecoverable error;
/// - events named `error` carry valid JSON;
/// - the stream's bytes as the payload of one well-formed frame give exactly one item: an event whose
///   data is the payload (compacted if it is JSON, per ssegate's validator), or `InvalidUtf8`, or
///   `TooLarge` for the small limit.
pub fn oracle_eventstream(input: &[u8]) -> Result<(), String> {
    let Some((&sel, stream)) = input.split_first() else { return Ok(()) };
    let format = Format::AwsEventstream;
    let max = if sel & 1 == 1 { 64 } else { 1 << 20 };
    let opts = DecoderOptions { max_event_size: max, ..DecoderOptions::default() };
    let at = usize::from(sel >> 1) * stream.len() / 127;
    oracle_format(format, &opts, stream, at)?;
    let mut dec = Decoder::new(format, opts.clone());
    let mut items = Vec::new();
    for piece in stream.chunks(7) {
        dec.push(&Bytes::copy_from_slice(piece), &mut items);
        if dec.buffered_len() > max + (128 << 10) + 16 {
            return Err(format!("holds {} bytes", dec.buffered_len()));
        }
    }
    dec.finish(&mut items);
    if let Some(i) = items.iter().position(|it| matches!(it, Item::Error(e) if !e.recoverable())) {
        if i + 1 != items.len() {
            return Err(format!("items after an unrecoverable error: {items:?}"));
        }
    }
    for ev in events(&items) {
        if ev.name.as_deref() == Some(b"error") {
            check_json(&ev.data)?;
        }
    }
    let framed = aws_event("chunk", stream);
    let one = feed_whole(format, &opts, &framed);
    match one.as_slice() {
        [Item::Event(ev)] => {
            if ev.name.as_deref() != Some(b"chunk") {
                return Err(format!("wrong name: {ev:?}"));
            }
            match crate::decode::json::item(stream, None, None) {
                // JSON: the compacted value (or the Bedrock wrapper's content, itself JSON).
                Item::Event(j) if j.data != ev.data => check_json(&ev.data)?,
                Item::Event(_) => {}
                _ if ev.data[..] != stream[..] => return Err(format!("text payload changed: {ev:?}")),
                _ => {}
            }
        }
        [Item::Error(crate::DecodeError::InvalidUtf8)] if std::str::from_utf8(stream).is_err() => {}
        [Item::Error(crate::DecodeError::TooLarge { .. })] if stream.len() > max => {}
        other => return Err(format!("one frame around the input gave {other:?}")),
    }
    Ok(())
}

/// One pseudo-random input for [`oracle_eventstream`]: a selector byte, then frames (sometimes mutated).
pub fn eventstream_corpus_input(rng: &mut Rng) -> Vec<u8> {
    let mut input = vec![rng.next_u64() as u8];
    let mut stream = Vec::new();
    gen_eventstream(rng, &mut stream);
    if rng.below(3) == 0 {
        for _ in 0..=rng.below(3) {
            mutate(rng, &mut stream);
        }
    }
    input.extend_from_slice(&stream);
    input
}

/// A small deterministic PRNG (xorshift64*) for reproducible corpora.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Pieces the corpus generator strings together: syntax of every format, line breaks, UTF-8 edge cases.
const TOKENS: &[&[u8]] = &[
    b"data: ",
    b"data:",
    b"data",
    b"event: ",
    b"event:x",
    b"id: ",
    b"id:\0",
    b"retry: ",
    b"retry:12a",
    b": ",
    b":",
    b"\n",
    b"\r",
    b"\r\n",
    b"\n\n",
    b" ",
    b"\t",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"\\",
    b"\\\"",
    b"\\u00e9",
    b"\\ud83d\\ude00",
    b"\\ud800",
    b",",
    b"0",
    b"-1.5e3",
    b"42",
    b"true",
    b"null",
    b"fals",
    b"\x1e",
    b"\"type\"",
    b"\"type\":\"t\"",
    b"{\"a\":[1,{\"b\":\"c\"}]}",
    b"\"x\"",
    b"h\xc3\xa9",
    b"\xf0\x9f\x98\x80",
    b"\xe2\x82",
    b"\xff",
    b"\xc0\xaf",
    b"\xef\xbb\xbf",
    b"abc",
    b"\x00",
    b"1234567890",
];

/// Text pieces for values: ASCII, spaces, multibyte characters, now and then an invalid byte.
const TEXT: &[&[u8]] = &[
    b"a",
    b"hello",
    b" ",
    b"  x",
    b"\xc3\xa9",
    b"\xe2\x9c\x93",
    b"\xf0\x9f\x98\x80",
    b"12",
    b"{",
    b"\"",
    b":",
    b"\\",
    b"\t",
    b"\xef\xbb\xbf",
    b"\xff",
    b"\xe2\x82",
];

const BREAKS: &[&[u8]] = &[b"\n", b"\r\n", b"\r"];
const JSON_WS: &[&[u8]] = &[b"", b"", b"", b" ", b"\n", b"\r\n", b"\t", b"  \n  "];

/// One pseudo-random fuzz input for [`oracle`]: a selector byte, a split byte, then a stream that is
/// mostly well-formed for the selected format (sometimes mutated, sometimes random tokens or bytes).
pub fn corpus_input(rng: &mut Rng) -> Vec<u8> {
    let sel = rng.next_u64() as u8;
    let mut input = vec![sel, rng.next_u64() as u8];
    let format = Format::ALL[usize::from(sel) % Format::ALL.len()];
    match rng.below(10) {
        0 => {
            let n = rng.below(64);
            input.extend((0..n).map(|_| rng.next_u64() as u8));
            return input;
        }
        1 => {
            for _ in 0..rng.below(48) {
                input.extend_from_slice(pick(rng, TOKENS));
            }
            return input;
        }
        _ => {}
    }
    let mut stream = Vec::new();
    match format {
        Format::Sse => gen_sse(rng, &mut stream),
        Format::Lines | Format::Chunks => {
            for _ in 0..rng.below(12) {
                gen_text(rng, &mut stream, 6);
                stream.extend_from_slice(pick(rng, BREAKS));
            }
            gen_text(rng, &mut stream, 3);
        }
        Format::Ndjson | Format::JsonStream | Format::JsonSeq | Format::JsonArray => {
            gen_json_stream(rng, format, &mut stream)
        }
        Format::AwsEventstream => gen_eventstream(rng, &mut stream),
    }
    if rng.below(3) == 0 {
        for _ in 0..=rng.below(3) {
            mutate(rng, &mut stream);
        }
    }
    input.extend_from_slice(&stream);
    input
}

/// One pseudo-random input for [`oracle_json_differential`]: a JSON value, pretty or not, often mutated.
pub fn json_corpus_input(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    let pretty = rng.below(2) == 0;
    if pretty {
        out.extend_from_slice(pick(rng, JSON_WS));
    }
    gen_json(rng, &mut out, 4, pretty);
    if pretty {
        out.extend_from_slice(pick(rng, JSON_WS));
    }
    if rng.below(2) == 0 {
        for _ in 0..=rng.below(2) {
            mutate(rng, &mut out);
        }
    }
    out
}

fn pick<'a>(rng: &mut Rng, from: &[&'a [u8]]) -> &'a [u8] {
    from.get(rng.below(from.len())).copied().unwrap_or_default()
}

fn gen_text(rng: &mut Rng, out: &mut Vec<u8>, max: usize) {
    for _ in 0..rng.below(max + 1) {
        // Invalid bytes (the last two pieces) are rare.
        let n = if rng.below(20) == 0 { TEXT.len() } else { TEXT.len() - 2 };
        out.extend_from_slice(TEXT.get(rng.below(n)).copied().unwrap_or_default());
    }
}

fn gen_sse(rng: &mut Rng, out: &mut Vec<u8>) {
    if rng.below(8) == 0 {
        out.extend_from_slice(b"\xef\xbb\xbf");
    }
    for _ in 0..rng.below(6) {
        for _ in 0..=rng.below(4) {
            let field: &[u8] = match rng.below(12) {
                0..=4 => b"data",
                5 => b"event",
                6 => b"id",
                7 => b"retry",
                8 => b"",
                9 => b"dat",
                10 => b"id\0",
                _ => b"data ",
            };
            out.extend_from_slice(field);
            match rng.below(4) {
                0 => {}
                1 => out.push(b':'),
                _ => out.extend_from_slice(b": "),
            }
            if field == b"retry" && rng.below(3) > 0 {
                out.extend_from_slice(rng.below(100_000).to_string().as_bytes());
            } else {
                gen_text(rng, out, 4);
            }
            out.extend_from_slice(pick(rng, BREAKS));
        }
        if rng.below(6) > 0 {
            out.extend_from_slice(pick(rng, BREAKS));
        }
    }
}

fn gen_eventstream(rng: &mut Rng, out: &mut Vec<u8>) {
    for _ in 0..rng.below(5) {
        let mut json = Vec::new();
        let pretty = rng.below(4) == 0;
        gen_json(rng, &mut json, 3, pretty);
        let frame = match rng.below(8) {
            0 => aws_event("chunk", &bedrock_chunk_payload(&json, "abc")),
            1 => aws_frame(
                &[
                    (":message-type", AwsHeader::string("exception")),
                    (":exception-type", AwsHeader::string("throttlingException")),
                ],
                if rng.below(2) == 0 { b"{\"message\":\"slow \\\"down\\\"\"}" } else { &json },
            ),
            2 => aws_frame(
                &[
                    (":message-type", AwsHeader::string("error")),
                    (":error-code", AwsHeader::string("Internal\nError")),
                    (":error-message", AwsHeader::String(pick(rng, TEXT).to_vec())),
                ],
                b"",
            ),
            3 => {
                let mut text = Vec::new();
                gen_text(rng, &mut text, 6);
                aws_frame(&[(":event-type", AwsHeader::String(pick(rng, TEXT).to_vec()))], &text)
            }
            4 => aws_frame(
                &[
                    ("b", AwsHeader::Bool(rng.below(2) == 0)),
                    ("i", AwsHeader::Int(rng.next_u64() as i32)),
                    ("u", AwsHeader::Uuid([7; 16])),
                    (":message-type", AwsHeader::string(if rng.below(2) == 0 { "event" } else { "other" })),
                ],
                &json,
            ),
            _ => aws_event(if rng.below(2) == 0 { "contentBlockDelta" } else { "" }, &json),
        };
        out.extend_from_slice(&frame);
    }
    if rng.below(6) == 0 {
        // A truncated frame at the end.
        let frame = aws_event("chunk", b"{}");
        let cut = rng.below(frame.len());
        out.extend_from_slice(frame.get(..cut).unwrap_or_default());
    }
}

fn gen_json_stream(rng: &mut Rng, format: Format, out: &mut Vec<u8>) {
    let values = rng.below(6);
    if format == Format::JsonArray {
        out.extend_from_slice(pick(rng, JSON_WS));
        out.push(b'[');
    }
    for n in 0..values {
        let pretty = format != Format::Ndjson || rng.below(10) == 0;
        match format {
            Format::JsonSeq => out.push(0x1e),
            Format::JsonArray if n > 0 => {
                out.extend_from_slice(pick(rng, JSON_WS));
                out.push(b',');
            }
            _ => {}
        }
        if pretty {
            out.extend_from_slice(pick(rng, JSON_WS));
        }
        gen_json(rng, out, 3, pretty);
        match format {
            Format::Ndjson => out.extend_from_slice(if rng.below(2) == 0 { b"\n" } else { b"\r\n" }),
            Format::JsonSeq => out.push(b'\n'),
            Format::JsonStream => {
                out.extend_from_slice(if rng.below(2) == 0 { b"\n" } else { pick(rng, JSON_WS) })
            }
            _ => out.extend_from_slice(pick(rng, JSON_WS)),
        }
    }
    if format == Format::JsonArray && rng.below(6) > 0 {
        out.push(b']');
    }
}

fn gen_json(rng: &mut Rng, out: &mut Vec<u8>, depth: usize, pretty: bool) {
    let ws = |rng: &mut Rng, out: &mut Vec<u8>| {
        if pretty {
            out.extend_from_slice(pick(rng, JSON_WS));
        }
    };
    match rng.below(if depth == 0 { 5 } else { 7 }) {
        0 => out.extend_from_slice(pick(
            rng,
            &[b"0", b"-12", b"3.25", b"1e-7", b"6.02E+23", b"123456789012345678901234567890"],
        )),
        1 => out.extend_from_slice(pick(rng, &[b"true", b"false", b"null"])),
        2..=4 => gen_json_string(rng, out),
        5 => {
            out.push(b'[');
            for i in 0..rng.below(4) {
                if i > 0 {
                    out.push(b',');
                }
                ws(rng, out);
                gen_json(rng, out, depth - 1, pretty);
                ws(rng, out);
            }
            out.push(b']');
        }
        _ => {
            out.push(b'{');
            for i in 0..rng.below(4) {
                if i > 0 {
                    out.push(b',');
                }
                ws(rng, out);
                if rng.below(3) == 0 {
                    out.extend_from_slice(b"\"type\"");
                } else {
                    gen_json_string(rng, out);
                }
                ws(rng, out);
                out.push(b':');
                ws(rng, out);
                gen_json(rng, out, depth - 1, pretty);
            }
            ws(rng, out);
            out.push(b'}');
        }
    }
}

fn gen_json_string(rng: &mut Rng, out: &mut Vec<u8>) {
    const PIECES: &[&[u8]] = &[
        b"a",
        b"delta",
        b" ",
        b"\xc3\xa9",
        b"\xf0\x9f\x98\x80",
        b"\\\"",
        b"\\\\",
        b"\\n",
        b"\\r\\n",
        b"\\u00e9",
        b"\\ud83d\\ude00",
        b"\\ud800",
        b"\\/",
        b"[",
        b"]",
        b"{",
        b",",
        b":",
        b"\x1e",
        b"\xff",
    ];
    out.push(b'"');
    for _ in 0..rng.below(5) {
        let n = if rng.below(30) == 0 { PIECES.len() } else { PIECES.len() - 2 };
        out.extend_from_slice(PIECES.get(rng.below(n)).copied().unwrap_or_default());
    }
    out.push(b'"');
}

fn mutate(rng: &mut Rng, stream: &mut Vec<u8>) {
    let at = rng.below(stream.len() + 1);
    match rng.below(3) {
        0 => {
            let token = pick(rng, TOKENS);
            stream.splice(at..at, token.iter().copied());
        }
        1 => {
            let end = (at + rng.below(4)).min(stream.len());
            stream.drain(at..end);
        }
        _ => {
            if let Some(b) = stream.get_mut(at) {
                *b = rng.next_u64() as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naive_whitespace_reference() {
        assert!(!has_whitespace_outside_strings(b"{\"a b\":\"\\\" \"}"));
        assert!(has_whitespace_outside_strings(b"[1, 2]"));
    }

    #[test]
    fn naive_compaction_reference() {
        assert_eq!(
            compact_reference(b" { \"a b\" : [ 1 ,\t2 ] ,\r\n \"\\\" x\" : \" \" }\n"),
            b"{\"a b\":[1,2],\"\\\" x\":\" \"}"
        );
    }

    #[test]
    fn json_oracle_wants_the_compacted_line() {
        assert_eq!(oracle_json_differential(b" [ \"a b\" , 1 ]\r"), Ok(()));
        assert!(same_json_value(b"[\"a b\"]", b"[\"ab\"]").is_err());
        assert!(same_json_value(b"[1]", b"[1]").is_ok());
        assert!(same_json_value(b"[1]", b" [ 1 ] ").is_ok());
        assert!(same_json_value(b"[1]", b"[").is_err());
        assert!(same_json_value(b"[\"\\ud800\"]", b"[\"\\ud800\"]").is_ok());
        assert!(
            same_json_value(b"[\"\\ud800\"]", b"[\"\\ud800 \"]").is_ok(),
            "the byte check catches this one"
        );
    }

    #[test]
    fn rng_is_deterministic() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        assert_eq!(corpus_input(&mut a), corpus_input(&mut b));
    }
}
