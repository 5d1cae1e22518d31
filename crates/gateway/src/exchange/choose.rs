//! What to do with the upstream's answer: a pure function of the route's format, the answer's status and
//! content type, and what was already committed to the client. Table-tested below.

use ssegate_frame::Format;

use crate::config::FormatChoice;

/// What is already committed to the client when the upstream's head arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// Nothing yet: the answer's status can still be mirrored.
    No,
    /// `200` with the converted stream's content type (SSE, or NDJSON where the route allows it), committed
    /// early to heartbeat a slow upstream or when the answer is decoded: errors become the output's error message.
    Sse,
    /// The upstream's own response, byte for byte: errors can only cut it short.
    Passthrough,
}

/// The decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Decode the body with this format into SSE events.
    Decode(Format),
    /// Pass the answer through as it is: status, headers and body (non-streaming JSON, errors for SDKs,
    /// unknown types).
    Passthrough,
    /// An error status after SSE was committed: report it as `event: error` (`upstream_status`).
    ErrorEvent,
}

/// Whether `content_type` is `application/json` or `…+json`.
pub fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().as_bytes();
    essence.eq_ignore_ascii_case(b"application/json")
        || essence.len() >= 5 && essence[essence.len() - 5..].eq_ignore_ascii_case(b"+json")
}

/// Decides what to do with an answer of `status` and `content_type` on a route with `format`, given what
/// was `committed`.
pub fn choose(format: FormatChoice, status: u16, content_type: &str, committed: Committed) -> Choice {
    let success = (200..300).contains(&status);
    let chosen = match format {
        FormatChoice::Auto => Format::from_content_type(content_type),
        FormatChoice::Passthrough => None,
        // A fixed streaming format does not apply to a plain JSON answer (OpenAI `stream: false`,
        // `/v1/models`, Ollama `/api/tags`): that is passed through like on an auto route. Only the JSON
        // framings that read `application/json` bodies (Gemini's streamed array) decode it.
        FormatChoice::Fixed(f)
            if is_json(content_type) && !matches!(f, Format::JsonArray | Format::JsonStream) =>
        {
            None
        }
        FormatChoice::Fixed(f) => Some(f),
    };
    match (committed, success, chosen) {
        (Committed::No, true, Some(f)) => Choice::Decode(f),
        (Committed::No, _, _) | (Committed::Passthrough, _, _) => Choice::Passthrough,
        (Committed::Sse, false, _) => Choice::ErrorEvent,
        // Committed to SSE before the upstream said what it sends: deliver a non-streaming answer as one
        // event (compacted if JSON), anything else chunk by chunk.
        (Committed::Sse, true, Some(f)) => Choice::Decode(f),
        (Committed::Sse, true, None) if is_json(content_type) => Choice::Decode(Format::JsonStream),
        (Committed::Sse, true, None) => Choice::Decode(Format::Chunks),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Choice::*;
    use Committed as C;

    const NDJSON: &str = "application/x-ndjson";
    const SSE: &str = "text/event-stream";
    const JSON: &str = "application/json; charset=utf-8";
    const HTML: &str = "text/html";

    #[test]
    fn table() {
        let auto = FormatChoice::Auto;
        let pass = FormatChoice::Passthrough;
        let lines = FormatChoice::Fixed(Format::Lines);
        let array = FormatChoice::Fixed(Format::JsonArray);
        let rows: &[(FormatChoice, u16, &str, Committed, Choice)] = &[
            // auto: by content type
            (auto, 200, NDJSON, C::No, Decode(Format::Ndjson)),
            (auto, 200, SSE, C::No, Decode(Format::Sse)),
            (auto, 200, JSON, C::No, Passthrough),
            (auto, 200, HTML, C::No, Passthrough),
            (auto, 204, "", C::No, Passthrough),
            // errors are mirrored while nothing is committed
            (auto, 429, NDJSON, C::No, Passthrough),
            (auto, 500, JSON, C::No, Passthrough),
            (lines, 503, "text/plain", C::No, Passthrough),
            // fixed formats: JSON answers pass, except for the JSON framings
            (lines, 200, "text/plain", C::No, Decode(Format::Lines)),
            (lines, 200, JSON, C::No, Passthrough),
            (lines, 200, "application/problem+json", C::No, Passthrough),
            (array, 200, JSON, C::No, Decode(Format::JsonArray)),
            (FormatChoice::Fixed(Format::JsonStream), 200, JSON, C::No, Decode(Format::JsonStream)),
            // passthrough routes never decode
            (pass, 200, NDJSON, C::No, Passthrough),
            (pass, 200, SSE, C::No, Passthrough),
            // committed early to SSE
            (auto, 200, NDJSON, C::Sse, Decode(Format::Ndjson)),
            (auto, 200, JSON, C::Sse, Decode(Format::JsonStream)),
            (auto, 200, HTML, C::Sse, Decode(Format::Chunks)),
            (pass, 200, HTML, C::Sse, Decode(Format::Chunks)),
            (lines, 200, JSON, C::Sse, Decode(Format::JsonStream)),
            (auto, 500, NDJSON, C::Sse, ErrorEvent),
            (auto, 404, JSON, C::Sse, ErrorEvent),
            (auto, 302, HTML, C::Sse, ErrorEvent),
        ];
        for &(format, status, ct, committed, want) in rows {
            assert_eq!(
                choose(format, status, ct, committed),
                want,
                "{format:?} {status} {ct:?} {committed:?}"
            );
        }
    }

    #[test]
    fn json_content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON ; charset=utf-8"));
        assert!(is_json("application/vnd.api+json"));
        assert!(!is_json("application/x-ndjson"));
        assert!(!is_json("json"));
        assert!(!is_json(""));
    }
}
