use bytes::Bytes;
use ssegate_frame::testing::{check_invariance, feed_whole};
use ssegate_frame::{DecodeError, DecoderOptions, Event, Format, Item};

/// Which line-ending twins of a fixture to run besides the LF original.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Twins {
    /// The input's bytes are exact (it has CRs on purpose, or line breaks inside data matter).
    None,
    /// LF and CRLF.
    Crlf,
    /// LF, CRLF and CR.
    All,
}

/// Runs one table case on `input` and its twins: whole-feed items must be `expected`, and every chunking
/// must give the same.
pub fn case(format: Format, opts: &DecoderOptions, input: impl AsRef<[u8]>, expected: &[Item], twins: Twins) {
    let input = input.as_ref();
    let mut variants = vec![("LF", input.to_vec())];
    if twins != Twins::None {
        variants.push(("CRLF", replace_lf(input, b"\r\n")));
    }
    if twins == Twins::All {
        variants.push(("CR", replace_lf(input, b"\r")));
    }
    for (name, bytes) in variants {
        let got = feed_whole(format, opts, &bytes);
        assert_eq!(
            got,
            expected,
            "{format} {name} twin of {:?}\n got: {got:#?}",
            String::from_utf8_lossy(&bytes)
        );
        if let Err(e) = check_invariance(format, opts, &bytes) {
            panic!("{e}");
        }
    }
}

/// `case` with default options.
pub fn case_default(format: Format, input: impl AsRef<[u8]>, expected: &[Item], twins: Twins) {
    case(format, &DecoderOptions::default(), input, expected, twins);
}

fn replace_lf(input: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() * 2);
    for &c in input {
        if c == b'\n' {
            out.extend_from_slice(with);
        } else {
            out.push(c);
        }
    }
    out
}

pub fn max(n: usize) -> DecoderOptions {
    DecoderOptions { max_event_size: n, ..DecoderOptions::default() }
}

pub fn field(name: &str) -> DecoderOptions {
    DecoderOptions { event_field: Some(name.to_string()), ..DecoderOptions::default() }
}

pub fn ev(data: impl AsRef<[u8]>) -> Item {
    Item::Event(Event::data(Bytes::copy_from_slice(data.as_ref())))
}

pub fn named(name: &str, data: impl AsRef<[u8]>) -> Item {
    Item::Event(Event::data(Bytes::copy_from_slice(data.as_ref())).with_name(name.to_string()))
}

pub fn with_id(id: &str, data: &str) -> Item {
    Item::Event(Event::data(data.to_string()).with_id(id.to_string()))
}

pub fn with_retry(ms: u64, data: &str) -> Item {
    Item::Event(Event { retry: Some(ms), ..Event::data(data.to_string()) })
}

pub fn comment(text: &str) -> Item {
    Item::Comment(Bytes::from(text.to_string()))
}

pub fn too_large(limit: usize) -> Item {
    Item::Error(DecodeError::TooLarge { limit })
}

pub fn utf8() -> Item {
    Item::Error(DecodeError::InvalidUtf8)
}

pub fn malformed(reason: &'static str, recoverable: bool) -> Item {
    Item::Error(DecodeError::MalformedJson { reason, recoverable })
}
