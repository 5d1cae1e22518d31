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
}

impl DecodeError {
    /// A stable, low-cardinality name for metrics labels and error events.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::InvalidUtf8 => "invalid_utf8",
            DecodeError::MalformedJson { .. } => "malformed_json",
        }
    }

    /// Whether the decoder keeps producing events after this error.
    pub fn recoverable(&self) -> bool {
        match self {
            DecodeError::TooLarge { .. } | DecodeError::InvalidUtf8 => true,
            DecodeError::MalformedJson { recoverable, .. } => *recoverable,
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
    }
}
