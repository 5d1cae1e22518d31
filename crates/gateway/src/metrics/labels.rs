//! Label values: closed sets, as enums with `as_str()`. No metric function takes a `&'static str` label,
//! so a new value is added here (and to `ALL`, which pre-creates its series at 0) or it does not compile.

use ssegate_frame::{DecodeError, Format};

use crate::error::Outcome;
pub use crate::error::RejectReason;

/// `ssegate_downstream_rejected_total{reason}`: requests refused before a route was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeReason {
    HeaderTooLarge,
    HeaderTimeout,
    Malformed,
    BadTarget,
    Method,
    NotFound,
    BadHost,
    AmbiguousLength,
}

impl EdgeReason {
    pub const ALL: [EdgeReason; 8] = [
        EdgeReason::HeaderTooLarge,
        EdgeReason::HeaderTimeout,
        EdgeReason::Malformed,
        EdgeReason::BadTarget,
        EdgeReason::Method,
        EdgeReason::NotFound,
        EdgeReason::BadHost,
        EdgeReason::AmbiguousLength,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EdgeReason::HeaderTooLarge => "header_too_large",
            EdgeReason::HeaderTimeout => "header_timeout",
            EdgeReason::Malformed => "malformed",
            EdgeReason::BadTarget => "bad_target",
            EdgeReason::Method => "method",
            EdgeReason::NotFound => "not_found",
            EdgeReason::BadHost => "bad_host",
            EdgeReason::AmbiguousLength => "ambiguous_length",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// `ssegate_decode_errors_total{kind}`: the kind of a [`DecodeError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeKind {
    TooLarge,
    InvalidUtf8,
    MalformedJson,
    CrcMismatch,
    MalformedFrame,
}

impl DecodeKind {
    pub const ALL: [DecodeKind; 5] = [
        DecodeKind::TooLarge,
        DecodeKind::InvalidUtf8,
        DecodeKind::MalformedJson,
        DecodeKind::CrcMismatch,
        DecodeKind::MalformedFrame,
    ];

    pub fn of(e: &DecodeError) -> DecodeKind {
        match e {
            DecodeError::TooLarge { .. } => DecodeKind::TooLarge,
            DecodeError::InvalidUtf8 => DecodeKind::InvalidUtf8,
            DecodeError::MalformedJson { .. } => DecodeKind::MalformedJson,
            DecodeError::Crc { .. } => DecodeKind::CrcMismatch,
            DecodeError::Frame { .. } => DecodeKind::MalformedFrame,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DecodeKind::TooLarge => "too_large",
            DecodeKind::InvalidUtf8 => "invalid_utf8",
            DecodeKind::MalformedJson => "malformed_json",
            DecodeKind::CrcMismatch => "crc_mismatch",
            DecodeKind::MalformedFrame => "malformed_frame",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// The `format` label of a stream that is not decoded.
pub const PASSTHROUGH: &str = "passthrough";

/// Number of `format` label values: every [`Format`] plus `passthrough` (index 0).
pub(crate) const N_FORMATS: usize = Format::ALL.len() + 1;
pub(crate) const N_OUTCOMES: usize = Outcome::ALL.len();

/// The `format` label for `format` (`None` = passthrough).
pub fn format_label(format: Option<Format>) -> &'static str {
    format.map_or(PASSTHROUGH, Format::name)
}

#[inline]
pub(crate) fn format_index(format: Option<Format>) -> usize {
    match format {
        None => 0,
        Some(f) => Format::ALL.iter().position(|x| *x == f).map_or(0, |i| i + 1),
    }
}

pub(crate) fn format_by_index(i: usize) -> Option<Format> {
    i.checked_sub(1).and_then(|i| Format::ALL.get(i).copied())
}

pub(crate) fn outcome_index(o: Outcome) -> usize {
    o as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_follow_all() {
        for (i, r) in RejectReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        for (i, r) in EdgeReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        for (i, k) in DecodeKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(outcome_index(*o), i);
        }
    }

    #[test]
    fn decode_kind_names_match_the_framing_core() {
        let errors = [
            DecodeError::TooLarge { limit: 1 },
            DecodeError::InvalidUtf8,
            DecodeError::MalformedJson { reason: "x", recoverable: true },
            DecodeError::Crc { which: "message" },
            DecodeError::Frame { reason: "x", recoverable: false },
        ];
        for e in errors {
            assert_eq!(DecodeKind::of(&e).as_str(), e.kind());
        }
    }
}
