//! An incremental decoder of HTTP/1.1 `Transfer-Encoding: chunked` bodies (RFC 9112 §7.1).

use std::fmt;

/// A malformed chunked body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkedError(&'static str);

impl fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed chunked body: {}", self.0)
    }
}

impl std::error::Error for ChunkedError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading the hex size; `digits` seen so far.
    Size {
        size: u64,
        digits: u32,
    },
    /// Skipping a chunk extension up to LF.
    Ext {
        size: u64,
    },
    /// LF expected after CR of the size line.
    SizeLf {
        size: u64,
    },
    /// Chunk data still to come.
    Data(u64),
    /// CR or LF after the data.
    DataEnd {
        cr: bool,
    },
    /// Trailer section: bytes in the current line.
    Trailer(u64),
    Done,
}

/// Feeds chunked bytes in, gets body bytes out. Any split of the input gives the same output.
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder { state: State::Size { size: 0, digits: 0 } }
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    pub fn new() -> Self {
        Self::default()
    }

    /// True once the last chunk and the trailer section have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes `input`, calling `out` with each run of body bytes. Returns the number of input bytes used:
    /// all of them, unless the body ends inside `input` (then the rest belongs to what follows the body).
    pub fn feed(&mut self, input: &[u8], mut out: impl FnMut(&[u8])) -> Result<usize, ChunkedError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Size { size, digits } => {
                    let hex = match b {
                        b'0'..=b'9' => Some(b - b'0'),
                        b'a'..=b'f' => Some(b - b'a' + 10),
                        b'A'..=b'F' => Some(b - b'A' + 10),
                        _ => None,
                    };
                    if let Some(h) = hex {
                        if digits >= 15 {
                            return Err(ChunkedError("chunk size too large"));
                        }
                        self.state = State::Size { size: size * 16 + u64::from(h), digits: digits + 1 };
                    } else if digits == 0 {
                        return Err(ChunkedError("chunk size expected"));
                    } else {
                        self.state = match b {
                            b';' | b' ' | b'\t' => State::Ext { size },
                            b'\r' => State::SizeLf { size },
                            b'\n' => Self::after_size(size),
                            _ => return Err(ChunkedError("bad chunk size line")),
                        };
                    }
                    i += 1;
                }
                State::Ext { size } => {
                    if b == b'\n' {
                        self.state = Self::after_size(size);
                    }
                    i += 1;
                }
                State::SizeLf { size } => {
                    if b != b'\n' {
                        return Err(ChunkedError("LF expected after chunk size"));
                    }
                    self.state = Self::after_size(size);
                    i += 1;
                }
                State::Data(left) => {
                    let take = left.min((input.len() - i) as u64) as usize;
                    out(&input[i..i + take]);
                    i += take;
                    let left = left - take as u64;
                    self.state = if left == 0 { State::DataEnd { cr: false } } else { State::Data(left) };
                }
                State::DataEnd { cr } => {
                    self.state = match (b, cr) {
                        (b'\r', false) => State::DataEnd { cr: true },
                        (b'\n', _) => State::Size { size: 0, digits: 0 },
                        _ => return Err(ChunkedError("CRLF expected after chunk data")),
                    };
                    i += 1;
                }
                State::Trailer(line) => {
                    i += 1;
                    self.state = match b {
                        b'\n' if line == 0 => State::Done,
                        b'\n' => State::Trailer(0),
                        b'\r' => State::Trailer(line),
                        _ => State::Trailer(line + 1),
                    };
                    if self.state == State::Done {
                        return Ok(i);
                    }
                }
                State::Done => return Ok(i),
            }
        }
        Ok(i)
    }

    fn after_size(size: u64) -> State {
        if size == 0 {
            State::Trailer(0)
        } else {
            State::Data(size)
        }
    }
}

/// Appends `data` as one chunk (`<hex len>\r\n<data>\r\n`) to `out`. Empty data appends nothing (an empty
/// chunk would end the body).
pub fn encode_chunk(data: &[u8], out: &mut Vec<u8>) {
    if data.is_empty() {
        return;
    }
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk with an empty trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn decode_split(input: &[u8], split: usize) -> (Vec<u8>, bool, usize) {
        let mut d = ChunkedDecoder::new();
        let mut body = Vec::new();
        let mut used = 0;
        for part in input.chunks(split.max(1)) {
            if d.is_done() {
                break;
            }
            used += d.feed(part, |b| body.extend_from_slice(b)).unwrap();
        }
        (body, d.is_done(), used)
    }

    #[test]
    fn every_split_gives_the_same_body() {
        let mut wire = Vec::new();
        encode_chunk(b"hello ", &mut wire);
        encode_chunk(&[b'x'; 300], &mut wire);
        wire.extend_from_slice(b"3;ext=1\r\nabc\r\n0\r\nTrailer: v\r\n\r\n");
        let mut want = b"hello ".to_vec();
        want.extend_from_slice(&[b'x'; 300]);
        want.extend_from_slice(b"abc");
        for split in 1..=wire.len() {
            let (body, done, used) = decode_split(&wire, split);
            assert_eq!(body, want, "split {split}");
            assert!(done);
            assert_eq!(used, wire.len());
        }
    }

    #[test]
    fn stops_at_the_end_of_the_body() {
        let mut d = ChunkedDecoder::new();
        let mut body = Vec::new();
        let used = d.feed(b"2\r\nok\r\n0\r\n\r\nHTTP/1.1", |b| body.extend_from_slice(b)).unwrap();
        assert_eq!(used, 12);
        assert!(d.is_done());
        assert_eq!(body, b"ok");
    }

    #[test]
    fn lf_only_and_upper_hex() {
        let (body, done, _) = decode_split(b"A\nabcdefghij\n0\n\n", 100);
        assert_eq!(body, b"abcdefghij");
        assert!(done);
    }

    #[test]
    fn errors() {
        for bad in [&b"x\r\n"[..], b"2\r\nabXY", b"2\rx", b"1234567890abcdef0\r\n"] {
            assert!(ChunkedDecoder::new().feed(bad, |_| {}).is_err(), "{bad:?}");
        }
    }
}
