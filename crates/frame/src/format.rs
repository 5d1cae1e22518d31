use std::fmt;

/// The framing an upstream uses. `passthrough` is not a format of this crate: it means "no decoding".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// `text/event-stream`, parsed exactly as the WHATWG HTML standard says.
    Sse,
    /// `application/x-ndjson`, `application/jsonl`, `application/x-jsonlines`: one JSON value per line.
    Ndjson,
    /// `application/stream+json`: JSON values one after another, separated by whitespace or nothing.
    JsonStream,
    /// `application/json-seq` (RFC 7464): each value introduced by RS (0x1E).
    JsonSeq,
    /// One JSON array streamed element by element (Gemini `streamGenerateContent` without `alt=sse`).
    JsonArray,
    /// Raw text, one event per line (LF, CRLF or CR).
    Lines,
    /// Raw bytes, one event per upstream chunk (incomplete UTF-8 held back for the next chunk).
    Chunks,
    /// `application/vnd.amazon.eventstream`: AWS's binary, CRC-checked event stream framing (Bedrock
    /// `InvokeModelWithResponseStream` and `ConverseStream`, Transcribe, ...). See
    /// [`decode::eventstream`](crate::decode::eventstream).
    AwsEventstream,
}

impl Format {
    /// Every format, in documentation order.
    pub const ALL: [Format; 8] = [
        Format::Sse,
        Format::Ndjson,
        Format::JsonStream,
        Format::JsonSeq,
        Format::JsonArray,
        Format::Lines,
        Format::Chunks,
        Format::AwsEventstream,
    ];

    /// The config / metrics name: `sse`, `ndjson`, `json-stream`, `json-seq`, `json-array`, `lines`, `chunks`,
    /// `aws-eventstream`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Sse => "sse",
            Format::Ndjson => "ndjson",
            Format::JsonStream => "json-stream",
            Format::JsonSeq => "json-seq",
            Format::JsonArray => "json-array",
            Format::Lines => "lines",
            Format::Chunks => "chunks",
            Format::AwsEventstream => "aws-eventstream",
        }
    }

    /// The inverse of [`Format::name`].
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether messages of this format are JSON values (compacted, `event_field` applies).
    pub fn is_json(self) -> bool {
        matches!(self, Format::Ndjson | Format::JsonStream | Format::JsonSeq | Format::JsonArray)
    }

    /// The format `auto` picks for an upstream `Content-Type`; `None` means pass through untouched.
    /// `json-array`, `lines` and `chunks` are never guessed.
    ///
    /// ```
    /// use ssegate_frame::Format;
    /// assert_eq!(Format::from_content_type("Text/Event-Stream; charset=utf-8"), Some(Format::Sse));
    /// assert_eq!(Format::from_content_type("application/json"), None);
    /// ```
    pub fn from_content_type(content_type: &str) -> Option<Format> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        let is = |s: &str| essence.eq_ignore_ascii_case(s);
        if is("text/event-stream") {
            Some(Format::Sse)
        } else if is("application/x-ndjson")
            || is("application/jsonl")
            || is("application/x-jsonlines")
            || is("application/ndjson")
            || is("application/jsonlines")
        {
            Some(Format::Ndjson)
        } else if is("application/stream+json") || is("application/x-json-stream") {
            Some(Format::JsonStream)
        } else if is("application/json-seq") {
            Some(Format::JsonSeq)
        } else if is("application/vnd.amazon.eventstream") {
            Some(Format::AwsEventstream)
        } else {
            None
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_config_names_and_round_trip() {
        let names: Vec<String> = Format::ALL.iter().map(|f| f.to_string()).collect();
        assert_eq!(
            names,
            ["sse", "ndjson", "json-stream", "json-seq", "json-array", "lines", "chunks", "aws-eventstream"]
        );
        for f in Format::ALL {
            assert_eq!(f.to_string(), f.name());
            assert_eq!(Format::from_name(f.name()), Some(f));
        }
        assert_eq!(Format::from_name("json"), None);
        assert_eq!(Format::from_name("SSE"), None);
        assert_eq!(Format::from_name(""), None);
    }

    #[test]
    fn json_formats() {
        let json: Vec<Format> = Format::ALL.into_iter().filter(|f| f.is_json()).collect();
        assert_eq!(json, [Format::Ndjson, Format::JsonStream, Format::JsonSeq, Format::JsonArray]);
    }

    #[test]
    fn content_types() {
        let cases = [
            ("text/event-stream", Some(Format::Sse)),
            (" TEXT/EVENT-STREAM ;charset=utf-8", Some(Format::Sse)),
            ("application/x-ndjson", Some(Format::Ndjson)),
            ("application/jsonl", Some(Format::Ndjson)),
            ("application/x-jsonlines", Some(Format::Ndjson)),
            ("application/ndjson; charset=utf-8", Some(Format::Ndjson)),
            ("application/jsonlines", Some(Format::Ndjson)),
            ("application/stream+json", Some(Format::JsonStream)),
            ("application/x-json-stream", Some(Format::JsonStream)),
            ("application/json-seq", Some(Format::JsonSeq)),
            ("application/vnd.amazon.eventstream", Some(Format::AwsEventstream)),
            ("Application/VND.Amazon.EventStream; charset=binary", Some(Format::AwsEventstream)),
            ("application/json", None),
            ("text/plain", None),
            ("", None),
            ("text/event-streams", None),
        ];
        for (ct, want) in cases {
            assert_eq!(Format::from_content_type(ct), want, "{ct:?}");
        }
    }
}
