//! `Content-Encoding: gzip | deflate` undone in bounded steps, so compressed bytes never reach a decoder
//! and a small compressed read never becomes a large allocation (a "gzip bomb": deflate expands up to
//! ~1032:1, so one 64 KiB read could become ~64 MiB at once).
//!
//! Input is queued ([`Decompressor::push`]) and inflated by [`Decompressor::step`], at most [`STEP_OUTPUT`]
//! bytes of output (plus one input slice's worth) per step; the pump hands each step's output to the
//! decoder before the next one, so what is held at any time is one step plus what the decoder keeps
//! (bounded by the route's `max_event_size`).

use std::io::Write;

use bytes::Bytes;
use flate2::write::{GzDecoder, ZlibDecoder};

/// Output after which a step stops inflating.
pub const STEP_OUTPUT: usize = 64 * 1024;
/// Compressed bytes fed to the inflater at a time: deflate expands at most 1032:1, so one slice adds at
/// most ~33 KiB of output.
const STEP_INPUT: usize = 32;
/// flate2's writer keeps up to this much inflated output in its own buffer before it reaches ours.
const WRITER_BUFFER: usize = 32 * 1024;
/// A bound on what one step returns (~193 KiB): [`STEP_OUTPUT`], plus one slice at deflate's maximum ratio
/// (~33 KiB), plus what flate2's writer held back when the step's size was checked (up to its 32 KiB
/// buffer), with a margin: a step of 131,838 bytes was seen, 510 over the sum of those three. The unit tests
/// hold every step to it; production code does not assert it (a surprise there must not panic).
pub const MAX_STEP_OUTPUT: usize = STEP_OUTPUT + 2 * (STEP_INPUT * 1032 + WRITER_BUFFER);

/// Undoes `Content-Encoding: gzip | deflate` in bounded steps.
#[derive(Debug)]
pub struct Decompressor {
    codec: Codec,
    /// Compressed bytes not inflated yet.
    pending: Bytes,
}

#[derive(Debug)]
enum Codec {
    Gzip(GzDecoder<Vec<u8>>),
    Zlib(ZlibDecoder<Vec<u8>>),
}

impl Codec {
    fn write_all(&mut self, input: &[u8]) -> std::io::Result<()> {
        match self {
            Codec::Gzip(d) => d.write_all(input),
            Codec::Zlib(d) => d.write_all(input),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Codec::Gzip(d) => d.flush(),
            Codec::Zlib(d) => d.flush(),
        }
    }

    fn try_finish(&mut self) -> std::io::Result<()> {
        match self {
            Codec::Gzip(d) => d.try_finish(),
            Codec::Zlib(d) => d.try_finish(),
        }
    }

    fn out(&mut self) -> &mut Vec<u8> {
        match self {
            Codec::Gzip(d) => d.get_mut(),
            Codec::Zlib(d) => d.get_mut(),
        }
    }
}

impl Decompressor {
    /// A decompressor for a `Content-Encoding` value; `Ok(None)` for identity.
    pub fn for_encoding(value: Option<&str>) -> Result<Option<Decompressor>, String> {
        let codec = match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("identity") => return Ok(None),
            Some("gzip") | Some("x-gzip") => Codec::Gzip(GzDecoder::new(Vec::new())),
            Some("deflate") => Codec::Zlib(ZlibDecoder::new(Vec::new())),
            Some(other) => return Err(other.to_string()),
        };
        Ok(Some(Decompressor { codec, pending: Bytes::new() }))
    }

    /// Queues compressed bytes (not copied) for the next [`Decompressor::step`]s.
    pub fn push(&mut self, chunk: Bytes) {
        if self.pending.is_empty() {
            self.pending = chunk;
        } else {
            // Only when a step was cut short by an error path: keep the order.
            let mut both = Vec::with_capacity(self.pending.len() + chunk.len());
            both.extend_from_slice(&self.pending);
            both.extend_from_slice(&chunk);
            self.pending = Bytes::from(both);
        }
    }

    /// Whether queued input is left for another step.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Inflates queued input until [`STEP_OUTPUT`] bytes came out or the input is used up; returns them
    /// (at most [`MAX_STEP_OUTPUT`]; possibly empty).
    pub fn step(&mut self) -> std::io::Result<Bytes> {
        while !self.pending.is_empty() && self.codec.out().len() < STEP_OUTPUT {
            let slice = self.pending.split_to(STEP_INPUT.min(self.pending.len()));
            self.codec.write_all(&slice)?;
        }
        self.codec.flush()?;
        let out = std::mem::take(self.codec.out());
        Ok(Bytes::from(out))
    }

    /// Ends the compressed stream (all queued input stepped through first); returns the remaining bytes.
    pub fn finish(&mut self) -> std::io::Result<Bytes> {
        self.codec.try_finish()?;
        Ok(Bytes::from(std::mem::take(self.codec.out())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;

    /// All of `d`'s output for `input` fed in `piece`-byte chunks, every step checked against the bound.
    fn inflate_all(d: &mut Decompressor, input: &[u8], piece: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for p in input.chunks(piece) {
            d.push(Bytes::copy_from_slice(p));
            while d.has_pending() {
                let s = d.step().unwrap();
                assert!(s.len() <= MAX_STEP_OUTPUT, "a step returned {} bytes", s.len());
                out.extend_from_slice(&s);
            }
        }
        out.extend_from_slice(&d.finish().unwrap());
        out
    }

    #[test]
    fn gzip_round_trip_in_small_pieces() {
        let text = b"{\"a\":1}\n{\"b\":2}\n".repeat(50);
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(&text).unwrap();
        let gz = enc.finish().unwrap();
        let mut d = Decompressor::for_encoding(Some("gzip")).unwrap().unwrap();
        assert_eq!(inflate_all(&mut d, &gz, 7), text);
    }

    #[test]
    fn a_bomb_is_inflated_in_bounded_steps() {
        // 64 MiB of zeros compress to ~64 KiB: one read's worth.
        let mut enc = GzEncoder::new(Vec::new(), Compression::best());
        let zeros = vec![0u8; 1024 * 1024];
        for _ in 0..64 {
            enc.write_all(&zeros).unwrap();
        }
        let gz = enc.finish().unwrap();
        assert!(gz.len() < 128 * 1024, "{}", gz.len());
        let mut d = Decompressor::for_encoding(Some("gzip")).unwrap().unwrap();
        d.push(Bytes::from(gz));
        let (mut total, mut steps) = (0usize, 0usize);
        while d.has_pending() {
            let s = d.step().unwrap();
            assert!(s.len() <= MAX_STEP_OUTPUT, "a step returned {} bytes", s.len());
            total += s.len();
            steps += 1;
        }
        total += d.finish().unwrap().len();
        assert_eq!(total, 64 * 1024 * 1024);
        assert!(steps >= 64 * 1024 * 1024 / MAX_STEP_OUTPUT, "{steps} steps");
    }

    #[test]
    fn deflate_and_corrupt_input() {
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), Compression::default());
        enc.write_all(b"data: x\n\n").unwrap();
        let z = enc.finish().unwrap();
        let mut d = Decompressor::for_encoding(Some("deflate")).unwrap().unwrap();
        assert_eq!(inflate_all(&mut d, &z, 3), b"data: x\n\n");
        let mut d = Decompressor::for_encoding(Some("gzip")).unwrap().unwrap();
        d.push(Bytes::from_static(b"this is not gzip at all, not even a header"));
        assert!(d.step().is_err());
    }

    #[test]
    fn unknown_encoding_is_refused() {
        assert!(Decompressor::for_encoding(Some("br")).is_err());
        assert!(Decompressor::for_encoding(Some("identity")).unwrap().is_none());
    }
}
