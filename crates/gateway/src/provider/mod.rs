//! LLM provider presets (`provider = "anthropic"`, ...): what a provider's stream looks like, its end
//! marker, its in-band errors and where it reports token usage.
//!
//! [`Tracker`] watches the decoded events of one stream (the per-event path): every check is a comparison
//! of the event name or a `memchr::memmem` search of the data for a key that only the interesting events
//! carry; only an event that passes it is parsed with `serde_json` (a handful per stream; Gemini's every
//! chunk carries the cumulative `usageMetadata`: the last one is kept and parsed when the usage is read).

use std::sync::{LazyLock, OnceLock};

use memchr::memmem;
use serde_json::Value;
use ssegate_frame::{Event, Format};

use crate::metrics::usage::UsageMetrics;

pub mod format;

/// `provider = "..."`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    OpenAi,
    OpenAiResponses,
    Anthropic,
    Gemini,
    Ollama,
    Bedrock,
    Cohere,
}

impl Provider {
    pub const ALL: [Provider; 7] = [
        Provider::OpenAi,
        Provider::OpenAiResponses,
        Provider::Anthropic,
        Provider::Gemini,
        Provider::Ollama,
        Provider::Bedrock,
        Provider::Cohere,
    ];

    /// The config name.
    pub fn name(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::OpenAiResponses => "openai-responses",
            Provider::Anthropic => "anthropic",
            Provider::Gemini => "gemini",
            Provider::Ollama => "ollama",
            Provider::Bedrock => "bedrock",
            Provider::Cohere => "cohere",
        }
    }

    pub fn from_name(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The formats this provider's stream can come in; the first is the preset's `format` (`None`: `auto`,
    /// choose among them by Content-Type).
    pub fn formats(self) -> &'static [Format] {
        match self {
            Provider::OpenAi | Provider::OpenAiResponses | Provider::Anthropic | Provider::Cohere => {
                &[Format::Sse]
            }
            // `:streamGenerateContent?alt=sse` is SSE; without `alt=sse` it is one JSON array sent as
            // `application/json`, which `auto` decodes on a gemini route (see `format`).
            Provider::Gemini => &[Format::Sse, Format::JsonArray],
            Provider::Ollama => &[Format::Ndjson],
            Provider::Bedrock => &[Format::AwsEventstream],
        }
    }

    /// The preset `format`: fixed when the provider has one framing, `None` (auto) otherwise.
    pub fn default_format(self) -> Option<Format> {
        match self.formats() {
            [one] => Some(*one),
            _ => None,
        }
    }
}

/// What one stream reported so far.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    /// The model the stream names (access log only, never a metric label).
    pub model: Option<String>,
}

/// What one event was, beyond being delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Plain,
    /// The provider's end marker.
    End,
    /// An in-band provider error (delivered unchanged, counted).
    ProviderError,
}

/// Per-stream provider state: end marker seen, usage, model.
#[derive(Debug)]
pub struct Tracker {
    provider: Provider,
    /// Counts in-band provider errors as they pass (`None` in unit tests).
    metrics: Option<UsageMetrics>,
    ended: bool,
    usage: Usage,
    /// Gemini repeats its cumulative `usageMetadata` in every chunk: the first and the final chunk are
    /// parsed as they pass, the ones between only copied here (the last one), and parsed when the usage is
    /// read — parsing each would cost several times the rest of the chunk's path.
    pending: Vec<u8>,
    /// `usage` with `pending` applied, computed at the first read after `pending` changed.
    resolved: OnceLock<Usage>,
}

/// A key searched for in events, its searcher built once per process (building a `memmem` searcher costs
/// more than searching a short event with it).
type Key = LazyLock<memmem::Finder<'static>>;

macro_rules! keys {
    ($($name:ident = $bytes:literal;)*) => {
        $( static $name: Key = LazyLock::new(|| memmem::Finder::new($bytes)); )*
    };
}

keys! {
    PROMPT_TOKENS = b"\"prompt_tokens\"";
    TYPE_RESPONSE = b"\"type\":\"response.";
    RESPONSE_COMPLETED = b"response.completed";
    RESPONSE_FAILED = b"response.failed";
    RESPONSE_INCOMPLETE = b"response.incomplete";
    TYPE_ERROR = b"\"type\":\"error\"";
    TYPE_MESSAGE_STOP = b"\"type\":\"message_stop\"";
    TYPE_MESSAGE_START = b"\"type\":\"message_start\"";
    TYPE_MESSAGE_DELTA = b"\"type\":\"message_delta\"";
    USAGE = b"\"usage\"";
    FINISH_REASON = b"\"finishReason\"";
    USAGE_METADATA = b"\"usageMetadata\"";
    DONE_TRUE = b"\"done\":true";
    BEDROCK_METRICS = b"\"amazon-bedrock-invocationMetrics\"";
    TYPE_MESSAGE_END = b"\"type\":\"message-end\"";
}

fn has(data: &[u8], key: &Key) -> bool {
    key.find(data).is_some()
}

fn name_is(ev: &Event, name: &[u8]) -> bool {
    ev.name.as_deref() == Some(name)
}

fn u64_at(v: &Value, path: &[&str]) -> Option<u64> {
    let v = path.iter().try_fold(v, |v, k| v.get(k))?;
    v.as_u64().or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

fn str_at(v: &Value, path: &[&str]) -> Option<String> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str().map(str::to_owned)
}

/// Sets what is known, keeps the rest.
fn merge(u: &mut Usage, input: Option<u64>, output: Option<u64>, model: Option<String>) {
    if input.is_some() {
        u.input_tokens = input;
    }
    if output.is_some() {
        u.output_tokens = output;
    }
    if model.is_some() {
        u.model = model;
    }
}

/// A Gemini chunk's `usageMetadata` counts and `modelVersion`.
fn gemini_usage(v: &Value) -> (Option<u64>, Option<u64>, Option<String>) {
    let u = &v["usageMetadata"];
    (u64_at(u, &["promptTokenCount"]), u64_at(u, &["candidatesTokenCount"]), str_at(v, &["modelVersion"]))
}

/// A JSON object with a top-level `error` member (OpenAI, Gemini and Ollama in-band errors).
fn is_error_object(data: &[u8]) -> bool {
    let trimmed = data.trim_ascii_start();
    trimmed.starts_with(b"{") && trimmed[..trimmed.len().min(16)].windows(7).any(|w| w == b"\"error\"")
}

impl Tracker {
    pub fn new(provider: Provider) -> Tracker {
        Tracker {
            provider,
            metrics: None,
            ended: false,
            usage: Usage::default(),
            pending: Vec::new(),
            resolved: OnceLock::new(),
        }
    }

    /// A tracker that counts in-band provider errors in `metrics`.
    pub fn counting(provider: Provider, metrics: Option<UsageMetrics>) -> Tracker {
        Tracker { metrics, ..Tracker::new(provider) }
    }

    /// Whether the stream ended the provider's way: its end marker, or an in-band error (after which
    /// providers close the stream: the error is the client's answer, not followed by `upstream_truncated`).
    pub fn ended(&self) -> bool {
        self.ended
    }

    pub fn usage(&self) -> &Usage {
        if self.pending.is_empty() {
            return &self.usage;
        }
        self.resolved.get_or_init(|| {
            let mut u = self.usage.clone();
            if let Some(v) = Self::parse(&self.pending) {
                let (input, output, model) = gemini_usage(&v);
                merge(&mut u, input, output, model);
            }
            u
        })
    }

    /// Looks at one decoded event.
    pub fn observe(&mut self, ev: &Event) -> Seen {
        let seen = self.classify(ev);
        match seen {
            Seen::End => self.ended = true,
            Seen::ProviderError => {
                self.ended = true;
                if let Some(m) = &self.metrics {
                    m.provider_error();
                }
            }
            Seen::Plain => {}
        }
        seen
    }

    fn parse(data: &[u8]) -> Option<Value> {
        serde_json::from_slice(data).ok()
    }

    fn set(&mut self, input: Option<u64>, output: Option<u64>, model: Option<String>) {
        merge(&mut self.usage, input, output, model);
    }

    fn classify(&mut self, ev: &Event) -> Seen {
        let d: &[u8] = &ev.data;
        match self.provider {
            Provider::OpenAi => {
                if d.trim_ascii() == b"[DONE]" {
                    return Seen::End;
                }
                if is_error_object(d) {
                    return Seen::ProviderError;
                }
                if has(d, &PROMPT_TOKENS) {
                    if let Some(v) = Self::parse(d) {
                        let u = &v["usage"];
                        self.set(
                            u64_at(u, &["prompt_tokens"]),
                            u64_at(u, &["completion_tokens"]),
                            str_at(&v, &["model"]),
                        );
                    }
                }
                Seen::Plain
            }
            Provider::OpenAiResponses => {
                let end = [&b"response.completed"[..], b"response.failed", b"response.incomplete"];
                let is_end = match &ev.name {
                    Some(n) => end.contains(&&n[..]),
                    None => {
                        has(d, &TYPE_RESPONSE)
                            && [&RESPONSE_COMPLETED, &RESPONSE_FAILED, &RESPONSE_INCOMPLETE]
                                .iter()
                                .any(|k| has(d, k))
                    }
                };
                if name_is(ev, b"error") || (ev.name.is_none() && has(d, &TYPE_ERROR)) {
                    return Seen::ProviderError;
                }
                if !is_end {
                    return Seen::Plain;
                }
                if let Some(v) = Self::parse(d) {
                    let r = &v["response"];
                    self.set(
                        u64_at(r, &["usage", "input_tokens"]),
                        u64_at(r, &["usage", "output_tokens"]),
                        str_at(r, &["model"]),
                    );
                }
                Seen::End
            }
            Provider::Anthropic => {
                let kind = |n: &[u8], ty: &Key| name_is(ev, n) || (ev.name.is_none() && has(d, ty));
                if kind(b"message_stop", &TYPE_MESSAGE_STOP) {
                    return Seen::End;
                }
                if kind(b"error", &TYPE_ERROR) {
                    return Seen::ProviderError;
                }
                if kind(b"message_start", &TYPE_MESSAGE_START) {
                    if let Some(v) = Self::parse(d) {
                        let m = &v["message"];
                        self.set(
                            u64_at(m, &["usage", "input_tokens"]),
                            u64_at(m, &["usage", "output_tokens"]),
                            str_at(m, &["model"]),
                        );
                    }
                } else if kind(b"message_delta", &TYPE_MESSAGE_DELTA) && has(d, &USAGE) {
                    if let Some(v) = Self::parse(d) {
                        let u = &v["usage"];
                        self.set(u64_at(u, &["input_tokens"]), u64_at(u, &["output_tokens"]), None);
                    }
                }
                Seen::Plain
            }
            Provider::Gemini => {
                if is_error_object(d) {
                    return Seen::ProviderError;
                }
                let finish = has(d, &FINISH_REASON);
                if finish || has(d, &USAGE_METADATA) {
                    if finish || self.usage == Usage::default() {
                        // The first (for the model) and the final chunk: parsed now.
                        self.pending.clear();
                        if let Some(v) = Self::parse(d) {
                            let (input, output, model) = gemini_usage(&v);
                            self.set(input, output, model);
                        }
                    } else {
                        self.pending.clear();
                        self.pending.extend_from_slice(d);
                        self.resolved = OnceLock::new();
                    }
                }
                if finish {
                    Seen::End
                } else {
                    Seen::Plain
                }
            }
            Provider::Ollama => {
                if is_error_object(d) {
                    return Seen::ProviderError;
                }
                if !has(d, &DONE_TRUE) {
                    return Seen::Plain;
                }
                if let Some(v) = Self::parse(d) {
                    self.set(
                        u64_at(&v, &["prompt_eval_count"]),
                        u64_at(&v, &["eval_count"]),
                        str_at(&v, &["model"]),
                    );
                }
                Seen::End
            }
            Provider::Bedrock => {
                // The decoder names exception and error frames `error`.
                if name_is(ev, b"error") {
                    return Seen::ProviderError;
                }
                if has(d, &BEDROCK_METRICS) {
                    // InvokeModelWithResponseStream: the last chunk carries the invocation metrics.
                    if let Some(v) = Self::parse(d) {
                        let m = &v["amazon-bedrock-invocationMetrics"];
                        self.set(u64_at(m, &["inputTokenCount"]), u64_at(m, &["outputTokenCount"]), None);
                    }
                    return Seen::End;
                }
                if name_is(ev, b"metadata") {
                    // ConverseStream: `metadata` (usage, metrics) follows `messageStop`.
                    if let Some(v) = Self::parse(d) {
                        let u = &v["usage"];
                        self.set(u64_at(u, &["inputTokens"]), u64_at(u, &["outputTokens"]), None);
                    }
                    return Seen::End;
                }
                if name_is(ev, b"messageStop") {
                    return Seen::End;
                }
                Seen::Plain
            }
            Provider::Cohere => {
                if name_is(ev, b"message-end") || (ev.name.is_none() && has(d, &TYPE_MESSAGE_END)) {
                    if let Some(v) = Self::parse(d) {
                        let u = &v["delta"]["usage"];
                        let t = if u.get("tokens").is_some() { &u["tokens"] } else { &u["billed_units"] };
                        self.set(u64_at(t, &["input_tokens"]), u64_at(t, &["output_tokens"]), None);
                    }
                    return Seen::End;
                }
                if name_is(ev, b"error") {
                    return Seen::ProviderError;
                }
                Seen::Plain
            }
        }
    }
}

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;
