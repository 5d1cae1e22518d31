//! Provider metrics (routes with `provider`): `ssegate_tokens_total{route,kind="input|output"}` and
//! `ssegate_provider_errors_total{route}` (in-band provider errors, delivered to the client unchanged).
//! The series of a route with a provider are created at 0 when its handles are resolved.

use std::sync::OnceLock;

use prometheus::{IntCounter, IntCounterVec};

use super::counter_vec;

struct Families {
    tokens: IntCounterVec,
    provider_errors: IntCounterVec,
}

fn families() -> &'static Families {
    static F: OnceLock<Families> = OnceLock::new();
    F.get_or_init(|| Families {
        tokens: counter_vec(
            "ssegate_tokens_total",
            "Tokens reported by the streams of routes with a provider, by kind (input, output).",
            &["route", "kind"],
        ),
        provider_errors: counter_vec(
            "ssegate_provider_errors_total",
            "In-band provider errors (Anthropic `event: error`, an OpenAI/Gemini/Ollama `{\"error\":...}` \
             message, a Bedrock exception) delivered to the client unchanged.",
            &["route"],
        ),
    })
}

/// The provider handles of one route (resolved once, when the routes are built).
#[derive(Debug, Clone)]
pub struct UsageMetrics {
    input: IntCounter,
    output: IntCounter,
    provider_errors: IntCounter,
}

/// Handles for route `name` (its series at 0).
pub fn route(name: &str) -> UsageMetrics {
    let f = families();
    UsageMetrics {
        input: f.tokens.with_label_values(&[name, "input"]),
        output: f.tokens.with_label_values(&[name, "output"]),
        provider_errors: f.provider_errors.with_label_values(&[name]),
    }
}

impl UsageMetrics {
    /// A stream's usage, counted once when it ends.
    pub fn tokens(&self, input: Option<u64>, output: Option<u64>) {
        self.input.inc_by(input.unwrap_or(0));
        self.output.inc_by(output.unwrap_or(0));
    }

    pub fn provider_error(&self) {
        self.provider_errors.inc();
    }
}

/// Removes route `name`'s series (a route removed by a reload).
pub(super) fn forget_route(name: &str) {
    let f = families();
    for k in ["input", "output"] {
        let _ = f.tokens.remove_label_values(&[name, k]);
    }
    let _ = f.provider_errors.remove_label_values(&[name]);
}
