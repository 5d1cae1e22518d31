/// Bad input met by a decoder. Every variant is a defined outcome: the decoder never panics and never
/// buffers more than its `max_event_size` (plus one chunk) because of it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A message grew past `max_event_size`. The decoder discards it up to the next message boundary and
    /// continues with the message after it (always recoverable).
    #[error("message larger than the {limit}-byte limit was skipped")]
    TooLarge {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// A message of a text format was not valid UTF-8. That message is skipped; decoding continues.
    #[error("message with invalid UTF-8 was skipped")]
    InvalidUtf8,
    /// A JSON value was malformed. `recoverable` says whether the decoder found a boundary to resume at
    /// (true) or has stopped producing events for the rest of the stream (false).
    #[error("malformed JSON: {reason}")]
    MalformedJson {
        /// A short, static description (safe to put in a metric label's neighbourhood, not a label).
        reason: &'static str,
        /// Whether decoding resumes after this error.
        recoverable: bool,
    },
    /// A binary frame (`aws-eventstream`) failed its CRC32 check. `which` is `"prelude"` (the 12-byte
    /// prelude: the frame's lengths cannot be trusted, so the stream's framing is lost and the decoder
    /// produces no more events: unrecoverable) or `"message"` (the whole frame: the lengths were
    /// CRC-checked, so that one frame is skipped and decoding continues: recoverable).
    #[error("{which} CRC mismatch")]
    Crc {
        /// `"prelude"` or `"message"`.
        which: &'static str,
    },
    /// A binary frame (`aws-eventstream`) is malformed: inconsistent lengths, over a protocol limit,
    /// undecodable headers, or truncated by the end of the stream.
    #[error("malformed frame: {reason}")]
    Frame {
        /// A short, static description (safe to put in a metric label's neighbourhood, not a label).
        reason: &'static str,
        /// Whether the decoder skipped just that frame (true) or has stopped producing events (false).
        recoverable: bool,
    },
}

impl DecodeError {
    /// A stable, low-cardinality name for metrics labels and error events.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::InvalidUtf8 => "invalid_utf8",
            DecodeError::MalformedJson { .. } => "malformed_json",
            DecodeError::Crc { .. } => "crc_mismatch",
            DecodeError::Frame { .. } => "malformed_frame",
        }
    }

    /// Whether the decoder keeps producing events after this error.
    pub fn recoverable(&self) -> bool {
        match self {
            DecodeError::TooLarge { .. } | DecodeError::InvalidUtf8 => true,
            DecodeError::MalformedJson { recoverable, .. } | DecodeError::Frame { recoverable, .. } => {
                *recoverable
            }
            DecodeError::Crc { which } => *which != "prelude",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_recoverability() {
        let too_large = DecodeError::TooLarge { limit: 3 };
        let utf8 = DecodeError::InvalidUtf8;
        let bad = |recoverable| DecodeError::MalformedJson { reason: "r", recoverable };
        assert_eq!(
            [too_large.kind(), utf8.kind(), bad(true).kind()],
            ["too_large", "invalid_utf8", "malformed_json"]
        );
        assert!(too_large.recoverable());
        assert!(utf8.recoverable());
        assert!(bad(true).recoverable());
        assert!(!bad(false).recoverable());
        assert_eq!(too_large.to_string(), "message larger than the 3-byte limit was skipped");
        assert_eq!(bad(false).to_string(), "malformed JSON: r");

        let prelude = DecodeError::Crc { which: "prelude" };
        let message = DecodeError::Crc { which: "message" };
        let frame = |recoverable| DecodeError::Frame { reason: "f", recoverable };
        assert_eq!([prelude.kind(), frame(true).kind()], ["crc_mismatch", "malformed_frame"]);
        assert!(!prelude.recoverable());
        assert!(message.recoverable());
        assert!(frame(true).recoverable());
        assert!(!frame(false).recoverable());
        assert_eq!(message.to_string(), "message CRC mismatch");
        assert_eq!(frame(false).to_string(), "malformed frame: f");
    }
}
