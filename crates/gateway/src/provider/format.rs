//! The format a provider route decodes one answer with: the route's `format`, except where `auto` needs
//! the provider's knowledge. Gemini's `:streamGenerateContent` without `alt=sse` streams one JSON array as
//! `application/json`, which the generic `auto` passes through (a plain JSON answer); on a `gemini` route
//! that answer to a `streamGenerateContent` request is decoded as `json-array`. A plain `generateContent`
//! answer (one JSON object, same content type) is still passed through.

use ssegate_frame::Format;

use super::Provider;
use crate::config::FormatChoice;
use crate::exchange::choose::is_json;

/// The method in the request path of a streamed Gemini call (`/v1beta/models/<m>:streamGenerateContent`,
/// Vertex AI's `.../models/<m>:streamGenerateContent`); `generateContent` answers with one object.
const GEMINI_STREAM_METHOD: &str = "streamGenerateContent";

/// The format choice for an answer of `content_type` to a request for `path` on a route with `format`
/// and `provider`. Only `auto` changes, and only where the provider streams a framing `auto` does not
/// guess from the content type.
pub fn for_answer(
    provider: Option<Provider>,
    format: FormatChoice,
    content_type: &str,
    path: &str,
) -> FormatChoice {
    for_call(provider, format, content_type, is_stream_call(path))
}

/// Whether the request path names a streaming call ([`for_call`]'s `stream_call`): worked out when the
/// request is built, so that the request head need not be kept until the answer arrives.
pub fn is_stream_call(path: &str) -> bool {
    path.contains(GEMINI_STREAM_METHOD)
}

/// [`for_answer`] with the path already reduced to [`is_stream_call`].
pub fn for_call(
    provider: Option<Provider>,
    format: FormatChoice,
    content_type: &str,
    stream_call: bool,
) -> FormatChoice {
    match (provider, format) {
        (Some(Provider::Gemini), FormatChoice::Auto) if is_json(content_type) && stream_call => {
            FormatChoice::Fixed(Format::JsonArray)
        }
        _ => format,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::choose::{choose, Choice, Committed};

    const STREAM: &str = "/v1beta/models/gemini-2.0-flash:streamGenerateContent";
    const STREAM_SSE: &str = "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse";
    const UNARY: &str = "/v1beta/models/gemini-2.0-flash:generateContent";
    const JSON: &str = "application/json; charset=UTF-8";
    const SSE: &str = "text/event-stream";

    /// What the gateway does with a 2xx answer, nothing committed yet.
    fn decision(provider: Option<Provider>, format: FormatChoice, ct: &str, path: &str) -> Choice {
        choose(for_answer(provider, format, ct, path), 200, ct, Committed::No)
    }

    #[test]
    fn gemini_auto_decodes_the_streamed_array_and_passes_a_plain_answer() {
        let g = Some(Provider::Gemini);
        let auto = FormatChoice::Auto;
        let rows: &[(Option<Provider>, FormatChoice, &str, &str, Choice)] = &[
            (g, auto, JSON, STREAM, Choice::Decode(Format::JsonArray)),
            (
                g,
                auto,
                "application/json",
                "/gemini/v1/models/m:streamGenerateContent",
                Choice::Decode(Format::JsonArray),
            ),
            (g, auto, SSE, STREAM_SSE, Choice::Decode(Format::Sse)),
            // `alt=sse` in the path but a JSON answer (an error body is not 2xx; this is a 2xx array).
            (g, auto, JSON, STREAM_SSE, Choice::Decode(Format::JsonArray)),
            (g, auto, JSON, UNARY, Choice::Passthrough),
            (g, auto, JSON, "/v1beta/models", Choice::Passthrough),
            (g, auto, "text/html", STREAM, Choice::Passthrough),
            // An explicit format is the operator's.
            (g, FormatChoice::Fixed(Format::Sse), JSON, STREAM, Choice::Passthrough),
            (g, FormatChoice::Passthrough, JSON, STREAM, Choice::Passthrough),
            // Other providers, or none: the generic `auto`.
            (None, auto, JSON, STREAM, Choice::Passthrough),
            (Some(Provider::OpenAi), auto, JSON, STREAM, Choice::Passthrough),
        ];
        for &(p, format, ct, path, want) in rows {
            assert_eq!(decision(p, format, ct, path), want, "{p:?} {format:?} {ct:?} {path:?}");
        }
    }

    #[test]
    fn gemini_errors_are_still_mirrored_or_error_events() {
        let f = for_answer(Some(Provider::Gemini), FormatChoice::Auto, JSON, STREAM);
        assert_eq!(choose(f, 429, JSON, Committed::No), Choice::Passthrough);
        assert_eq!(choose(f, 500, JSON, Committed::Sse), Choice::ErrorEvent);
        // Committed early (heartbeats): the array is still decoded element by element.
        assert_eq!(choose(f, 200, JSON, Committed::Sse), Choice::Decode(Format::JsonArray));
    }
}
