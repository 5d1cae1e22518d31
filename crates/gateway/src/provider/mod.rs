//! LLM provider presets (`provider = "anthropic"`, ...): what a provider's stream looks like, its end
//! marker, its in-band errors and where it reports token usage.
//!
//! [`Tracker`] watches the decoded events of one stream (the per-event path): every check is a comparison
//! of the event name or a `memchr::memmem` search of the data for a key that only the interesting events
//! carry; only an event that passes it is parsed with `serde_json` (a handful per stream, except Gemini,
//! whose every chunk may carry the cumulative `usageMetadata`).

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
}

fn has(data: &[u8], key: &[u8]) -> bool {
    memmem::find(data, key).is_some()
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

/// A JSON object with a top-level `error` member (OpenAI, Gemini and Ollama in-band errors).
fn is_error_object(data: &[u8]) -> bool {
    let trimmed = data.trim_ascii_start();
    trimmed.starts_with(b"{") && has(&trimmed[..trimmed.len().min(16)], b"\"error\"")
}

impl Tracker {
    pub fn new(provider: Provider) -> Tracker {
        Tracker { provider, metrics: None, ended: false, usage: Usage::default() }
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
        &self.usage
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
        if input.is_some() {
            self.usage.input_tokens = input;
        }
        if output.is_some() {
            self.usage.output_tokens = output;
        }
        if model.is_some() {
            self.usage.model = model;
        }
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
                if has(d, b"\"prompt_tokens\"") {
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
                    None => has(d, b"\"type\":\"response.") && end.iter().any(|e| has(d, e)),
                };
                if name_is(ev, b"error") || (ev.name.is_none() && has(d, b"\"type\":\"error\"")) {
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
                let kind = |n: &[u8], ty: &[u8]| name_is(ev, n) || (ev.name.is_none() && has(d, ty));
                if kind(b"message_stop", b"\"type\":\"message_stop\"") {
                    return Seen::End;
                }
                if kind(b"error", b"\"type\":\"error\"") {
                    return Seen::ProviderError;
                }
                if kind(b"message_start", b"\"type\":\"message_start\"") {
                    if let Some(v) = Self::parse(d) {
                        let m = &v["message"];
                        self.set(
                            u64_at(m, &["usage", "input_tokens"]),
                            u64_at(m, &["usage", "output_tokens"]),
                            str_at(m, &["model"]),
                        );
                    }
                } else if kind(b"message_delta", b"\"type\":\"message_delta\"") && has(d, b"\"usage\"") {
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
                let finish = has(d, b"\"finishReason\"");
                if finish || has(d, b"\"usageMetadata\"") {
                    if let Some(v) = Self::parse(d) {
                        let u = &v["usageMetadata"];
                        self.set(
                            u64_at(u, &["promptTokenCount"]),
                            u64_at(u, &["candidatesTokenCount"]),
                            str_at(&v, &["modelVersion"]),
                        );
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
                if !has(d, b"\"done\":true") {
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
                if has(d, b"\"amazon-bedrock-invocationMetrics\"") {
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
                if name_is(ev, b"message-end") || (ev.name.is_none() && has(d, b"\"type\":\"message-end\"")) {
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
