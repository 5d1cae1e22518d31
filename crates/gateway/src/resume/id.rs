//! The ids readers send back: `Last-Event-ID: <stream>.<seq>` (every event of a resumable stream carries
//! `id: <stream>.<seq>`), and `<stream>.end`, the id of the terminal `event: error` a reader gets when it
//! cannot go on (`resume_gap`, `upstream_lost`, `resume_expired`): a request that sends it back is answered
//! `204 No Content`, which makes a browser's `EventSource` stop reconnecting.

use ring::digest;

use super::store::StreamId;

/// The seq part of the terminal id.
pub const END: &str = "end";

/// A parsed `Last-Event-ID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastEventId {
    /// `<stream>.<seq>`: the reader has every event up to `seq` (0: none).
    After(StreamId, u64),
    /// `<stream>.end`: the reader was told the stream cannot be followed further.
    End(StreamId),
}

impl LastEventId {
    /// The stream it names.
    pub fn stream(self) -> StreamId {
        match self {
            LastEventId::After(id, _) | LastEventId::End(id) => id,
        }
    }
}

/// Parses `<stream>.<seq>` or `<stream>.end` (surrounding whitespace ignored); `None` for anything else.
pub fn parse(v: &[u8]) -> Option<LastEventId> {
    let v = std::str::from_utf8(v).ok()?.trim();
    let (stream, rest) = v.split_once('.')?;
    let id = StreamId::parse(stream)?;
    if rest == END {
        return Some(LastEventId::End(id));
    }
    parse_seq(rest).map(|seq| LastEventId::After(id, seq))
}

/// A seq: 1 to 20 ASCII digits that fit a u64 (no sign, no spaces).
pub fn parse_seq(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// SHA-256 of a gateway key: what a stream stores to check that a resume carries the same key.
pub fn key_hash(key: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, key);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_seq_and_end_ids_and_nothing_else() {
        let id = StreamId([0xab; 16]);
        let s = id.to_string();
        assert_eq!(parse(format!("{s}.0").as_bytes()), Some(LastEventId::After(id, 0)));
        assert_eq!(parse(format!(" {s}.42 ").as_bytes()), Some(LastEventId::After(id, 42)));
        assert_eq!(
            parse(format!("{s}.18446744073709551615").as_bytes()),
            Some(LastEventId::After(id, u64::MAX))
        );
        assert_eq!(parse(format!("{s}.end").as_bytes()), Some(LastEventId::End(id)));
        for bad in [
            String::new(),
            "42".into(),
            s.clone(),
            format!("{s}."),
            format!("{s}.-1"),
            format!("{s}.+1"),
            format!("{s}.1.2"),
            format!("{s}.18446744073709551616"),
            format!("{s}.END"),
            format!("{s}. 1"),
            format!("x{s}.1"),
            format!("{}.1", &s[1..]),
        ] {
            assert_eq!(parse(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(parse(b"\xff.1"), None);
        assert_eq!(LastEventId::End(id).stream(), id);
    }

    #[test]
    fn key_hash_is_sha256() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        let h = key_hash(b"abc");
        assert_eq!(h[..4], [0xba, 0x78, 0x16, 0xbf]);
        assert_eq!(h[28..], [0xf2, 0x00, 0x15, 0xad]);
        assert_ne!(key_hash(b"abd"), h);
    }
}
