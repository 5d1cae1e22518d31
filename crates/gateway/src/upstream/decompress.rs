//! `Content-Encoding: gzip | deflate` undone chunk by chunk, so compressed bytes never reach a decoder.

use std::io::Write;

use bytes::Bytes;
use flate2::write::{GzDecoder, ZlibDecoder};

/// Undoes `Content-Encoding: gzip | deflate` chunk by chunk.
#[derive(Debug)]
pub enum Decompressor {
    Gzip(GzDecoder<Vec<u8>>),
    Zlib(ZlibDecoder<Vec<u8>>),
}

impl Decompressor {
    /// A decompressor for a `Content-Encoding` value; `Ok(None)` for identity.
    pub fn for_encoding(value: Option<&str>) -> Result<Option<Decompressor>, String> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("identity") => Ok(None),
            Some("gzip") | Some("x-gzip") => Ok(Some(Decompressor::Gzip(GzDecoder::new(Vec::new())))),
            Some("deflate") => Ok(Some(Decompressor::Zlib(ZlibDecoder::new(Vec::new())))),
            Some(other) => Err(other.to_string()),
        }
    }

    /// Feeds compressed bytes; returns what they decompress to (possibly empty).
    pub fn push(&mut self, chunk: &[u8]) -> std::io::Result<Bytes> {
        match self {
            Decompressor::Gzip(d) => {
                d.write_all(chunk)?;
                d.flush()?;
                Ok(Bytes::from(std::mem::take(d.get_mut())))
            }
            Decompressor::Zlib(d) => {
                d.write_all(chunk)?;
                d.flush()?;
                Ok(Bytes::from(std::mem::take(d.get_mut())))
            }
        }
    }

    /// Ends the compressed stream; returns the remaining bytes.
    pub fn finish(&mut self) -> std::io::Result<Bytes> {
        match self {
            Decompressor::Gzip(d) => {
                d.try_finish()?;
                Ok(Bytes::from(std::mem::take(d.get_mut())))
            }
            Decompressor::Zlib(d) => {
                d.try_finish()?;
                Ok(Bytes::from(std::mem::take(d.get_mut())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;

    #[test]
    fn gzip_round_trip_in_small_pieces() {
        let text = b"{\"a\":1}\n{\"b\":2}\n".repeat(50);
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(&text).unwrap();
        let gz = enc.finish().unwrap();
        let mut d = Decompressor::for_encoding(Some("gzip")).unwrap().unwrap();
        let mut out = Vec::new();
        for piece in gz.chunks(7) {
            out.extend_from_slice(&d.push(piece).unwrap());
        }
        out.extend_from_slice(&d.finish().unwrap());
        assert_eq!(out, text);
    }

    #[test]
    fn unknown_encoding_is_refused() {
        assert!(Decompressor::for_encoding(Some("br")).is_err());
        assert!(Decompressor::for_encoding(Some("identity")).unwrap().is_none());
    }
}
