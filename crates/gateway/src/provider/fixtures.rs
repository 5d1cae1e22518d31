//! Fixture streams per provider, written from the providers' documented event shapes: one source of truth
//! for the unit tests beside this file (fed through the real decoders at every byte split) and the
//! end-to-end tests (`tests/tests/e2e/providers_*.rs` include this file with `#[path]`, and a mock upstream
//! sends the streams to the real binary). Only `std` and `ssegate_frame::testing` are used here, so both
//! can compile it.

use ssegate_frame::testing::{aws_event, bedrock_chunk_payload};

/// How a fixture's events are put on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// `event: <name>` (when named) and `data: <data>`, lines ended by LF, or CRLF (Gemini).
    Sse { crlf: bool },
    /// One JSON value per line.
    Ndjson,
    /// One JSON array, Gemini's separators (`[<v>\n,<v>]`).
    JsonArray,
    /// Bedrock ConverseStream: one eventstream `event` frame per event, `:event-type` = the name.
    Converse,
    /// Bedrock InvokeModelWithResponseStream: every event is a `chunk` frame whose payload wraps the data
    /// (the model's own event) as `{"bytes":"<base64>","p":..}`.
    Invoke,
}

impl Wire {
    /// The `format` name of the route.
    pub fn format(self) -> &'static str {
        match self {
            Wire::Sse { .. } => "sse",
            Wire::Ndjson => "ndjson",
            Wire::JsonArray => "json-array",
            Wire::Converse | Wire::Invoke => "aws-eventstream",
        }
    }

    /// The upstream's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Wire::Sse { .. } => "text/event-stream",
            Wire::Ndjson => "application/x-ndjson",
            Wire::JsonArray => "application/json",
            Wire::Converse | Wire::Invoke => "application/vnd.amazon.eventstream",
        }
    }
}

/// One event: its name (if any) and its data.
pub type Ev = (Option<&'static str>, &'static str);

/// One provider stream.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// Unique, usable as a route name.
    pub label: &'static str,
    /// The `provider` config name.
    pub provider: &'static str,
    pub wire: Wire,
    /// The events as written (before the end marker's message, then from it).
    pub raw: Vec<Ev>,
    /// The upstream body.
    pub stream: Vec<u8>,
    /// Where the end marker's message starts: a cut anywhere before it is a truncated stream.
    pub end_at: usize,
    /// The events a client of the gateway gets, in order (a Bedrock `chunk` keeps its frame's name and
    /// carries the model's event as its data).
    pub events: Vec<(Option<String>, String)>,
    /// How many of `events` come before `end_at`.
    pub events_before_end: usize,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub model: Option<&'static str>,
    /// In-band provider errors in the stream (these fixtures end with the error, no end marker).
    pub provider_errors: usize,
}

fn frame(wire: Wire, ev: Ev, first: bool, last: bool, out: &mut Vec<u8>) {
    let (name, data) = ev;
    match wire {
        Wire::Sse { crlf } => {
            let eol = if crlf { "\r\n" } else { "\n" };
            if let Some(n) = name {
                out.extend_from_slice(format!("event: {n}{eol}").as_bytes());
            }
            out.extend_from_slice(format!("data: {data}{eol}{eol}").as_bytes());
        }
        Wire::Ndjson => out.extend_from_slice(format!("{data}\n").as_bytes()),
        Wire::JsonArray => {
            if first {
                out.push(b'[');
            }
            out.extend_from_slice(data.as_bytes());
            out.extend_from_slice(if last { b"]" } else { b"\n," });
        }
        Wire::Converse => out.extend(aws_event(name.unwrap_or(""), data.as_bytes())),
        Wire::Invoke => {
            // Bedrock pads the wrapper to hide the lengths; vary it so frames differ in size.
            let padding = "abcdefghijklmnopqrstuvwxyz".get(..out.len() % 26).unwrap_or("");
            out.extend(aws_event("chunk", &bedrock_chunk_payload(data.as_bytes(), padding)));
        }
    }
}

/// What a client sees of one event.
fn seen(wire: Wire, (name, data): Ev) -> (Option<String>, String) {
    let name = match wire {
        Wire::Sse { .. } | Wire::Converse => name.map(str::to_owned),
        Wire::Ndjson | Wire::JsonArray => None,
        Wire::Invoke => Some("chunk".to_owned()),
    };
    (name, data.to_owned())
}

/// `events` on the wire; also where event `mark` starts.
fn write(wire: Wire, events: &[Ev], mark: usize) -> (Vec<u8>, usize) {
    let mut stream = Vec::new();
    let mut at = 0;
    for (i, ev) in events.iter().enumerate() {
        if i == mark {
            at = stream.len();
        }
        frame(wire, *ev, i == 0, i + 1 == events.len(), &mut stream);
    }
    (stream, at)
}

/// A fixture of `before` then `end` (the end marker's message first) with the usage it reports.
fn build(label: &'static str, provider: &'static str, wire: Wire, before: &[Ev], end: &[Ev]) -> Fixture {
    let all: Vec<Ev> = before.iter().chain(end).copied().collect();
    let (stream, end_at) = write(wire, &all, before.len());
    Fixture {
        label,
        provider,
        wire,
        raw: all.clone(),
        stream,
        end_at,
        events: all.iter().map(|ev| seen(wire, *ev)).collect(),
        events_before_end: before.len(),
        input_tokens: None,
        output_tokens: None,
        model: None,
        provider_errors: 0,
    }
}

impl Fixture {
    fn usage(mut self, input: u64, output: u64, model: Option<&'static str>) -> Fixture {
        self.input_tokens = Some(input);
        self.output_tokens = Some(output);
        self.model = model;
        self
    }

    fn errors(mut self, n: usize) -> Fixture {
        self.provider_errors = n;
        self
    }

    /// The stream with event `index` written `times` times in its place (a long stream of text deltas,
    /// for the benchmarks), and how many events it has.
    pub fn stream_with(&self, index: usize, times: usize) -> (Vec<u8>, usize) {
        let mut evs = self.raw[..index].to_vec();
        evs.extend(std::iter::repeat_n(self.raw[index], times));
        evs.extend_from_slice(&self.raw[index + 1..]);
        (write(self.wire, &evs, 0).0, evs.len())
    }

    /// Whether the stream ends with the provider's end marker (not an in-band error).
    pub fn has_end(&self) -> bool {
        self.provider_errors == 0
    }
}

const SSE: Wire = Wire::Sse { crlf: false };

/// Every fixture: one or more per provider, then the in-band error streams.
pub fn all() -> Vec<Fixture> {
    vec![
        build("openai", "openai", SSE, &[
            (None, r#"{"id":"c1","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}],"usage":null}"#),
            (None, r#"{"id":"c1","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}"#),
            (None, r#"{"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-2024-08-06","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#),
        ], &[(None, "[DONE]")])
        .usage(12, 3, Some("gpt-4o-2024-08-06")),
        build("responses", "openai-responses", SSE, &[
            (Some("response.created"), r#"{"type":"response.created","response":{"id":"r1","model":"gpt-4.1","usage":null}}"#),
            (Some("response.output_text.delta"), r#"{"type":"response.output_text.delta","delta":"Hi"}"#),
        ], &[
            (Some("response.completed"), r#"{"type":"response.completed","response":{"id":"r1","model":"gpt-4.1","status":"completed","usage":{"input_tokens":20,"output_tokens":5,"total_tokens":25}}}"#),
        ])
        .usage(20, 5, Some("gpt-4.1")),
        build("anthropic", "anthropic", SSE, &[
            (Some("message_start"), r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"usage":{"input_tokens":25,"output_tokens":1}}}"#),
            (Some("content_block_start"), r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#),
            (Some("ping"), r#"{"type":"ping"}"#),
            (Some("content_block_delta"), r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#),
            (Some("content_block_stop"), r#"{"type":"content_block_stop","index":0}"#),
            (Some("message_delta"), r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#),
        ], &[(Some("message_stop"), r#"{"type":"message_stop"}"#)])
        .usage(25, 15, Some("claude-sonnet-4-5")),
        build("gemini_sse", "gemini", Wire::Sse { crlf: true }, &[
            (None, r#"{"candidates":[{"content":{"parts":[{"text":"Hi"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":1,"totalTokenCount":9},"modelVersion":"gemini-2.0-flash"}"#),
            (None, r#"{"candidates":[{"content":{"parts":[{"text":" you"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":2,"totalTokenCount":10},"modelVersion":"gemini-2.0-flash"}"#),
        ], &[
            (None, r#"{"candidates":[{"content":{"parts":[{"text":" there"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":4,"totalTokenCount":12},"modelVersion":"gemini-2.0-flash"}"#),
        ])
        .usage(8, 4, Some("gemini-2.0-flash")),
        build("gemini_array", "gemini", Wire::JsonArray, &[
            (None, r#"{"candidates":[{"content":{"parts":[{"text":"Hi"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":1},"modelVersion":"gemini-2.0-flash"}"#),
            (None, r#"{"candidates":[{"content":{"parts":[{"text":" you"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":2},"modelVersion":"gemini-2.0-flash"}"#),
        ], &[
            (None, r#"{"candidates":[{"content":{"parts":[{"text":" there"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":4},"modelVersion":"gemini-2.0-flash"}"#),
        ])
        .usage(8, 4, Some("gemini-2.0-flash")),
        build("ollama", "ollama", Wire::Ndjson, &[
            (None, r#"{"model":"llama3.2","created_at":"2024-01-01T00:00:00Z","message":{"role":"assistant","content":"Hi"},"done":false}"#),
        ], &[
            (None, r#"{"model":"llama3.2","created_at":"2024-01-01T00:00:01Z","message":{"role":"assistant","content":""},"done_reason":"stop","done":true,"total_duration":100,"prompt_eval_count":26,"eval_count":259}"#),
        ])
        .usage(26, 259, Some("llama3.2")),
        build("cohere", "cohere", SSE, &[
            (Some("message-start"), r#"{"id":"m1","type":"message-start","delta":{"message":{"role":"assistant"}}}"#),
            (Some("content-delta"), r#"{"type":"content-delta","index":0,"delta":{"message":{"content":{"text":"Hi"}}}}"#),
        ], &[
            (Some("message-end"), r#"{"type":"message-end","delta":{"finish_reason":"COMPLETE","usage":{"billed_units":{"input_tokens":5,"output_tokens":2},"tokens":{"input_tokens":71,"output_tokens":2}}}}"#),
        ])
        .usage(71, 2, None),
        // ConverseStream: messageStop, then metadata with the usage.
        build("bedrock_converse", "bedrock", Wire::Converse, &[
            (Some("messageStart"), r#"{"role":"assistant"}"#),
            (Some("contentBlockDelta"), r#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#),
        ], &[
            (Some("messageStop"), r#"{"stopReason":"end_turn"}"#),
            (Some("metadata"), r#"{"usage":{"inputTokens":30,"outputTokens":9,"totalTokens":39},"metrics":{"latencyMs":100}}"#),
        ])
        .usage(30, 9, None),
        // InvokeModelWithResponseStream with a Claude model: Anthropic's events, the last chunk with the
        // invocation metrics.
        build("bedrock_claude", "bedrock", Wire::Invoke, &[
            (None, r#"{"type":"message_start","message":{"model":"claude","usage":{"input_tokens":11,"output_tokens":1}}}"#),
            (None, r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#),
            (None, r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":7}}"#),
        ], &[
            (None, r#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":11,"outputTokenCount":7,"invocationLatency":500,"firstByteLatency":100}}"#),
        ])
        .usage(11, 7, None),
        // In-band errors, delivered and counted: the error is the stream's end (no end marker follows).
        build("anthropic_error", "anthropic", SSE, &[], &[
            (Some("error"), r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#),
        ])
        .errors(1),
        build("openai_error", "openai", SSE, &[], &[(None, r#"{"error":{"message":"boom","type":"server_error"}}"#)])
            .errors(1),
        build("ollama_error", "ollama", Wire::Ndjson, &[], &[(None, r#"{"error":"model not found"}"#)]).errors(1),
    ]
}
