//! `provider` (a preset: the stream's format, its end marker, its token usage) and `expect_end`.

use ssegate_frame::Format;
use toml::Spanned;

use super::{format_choice_name, FormatChoice};
use crate::config::cx::Cx;
use crate::provider::Provider;

/// `provider = "openai" | ...`: unknown names are errors.
pub(super) fn provider(cx: &mut Cx, raw: Option<Spanned<String>>) -> Option<Provider> {
    let p = raw?;
    let found = Provider::from_name(p.get_ref());
    if found.is_none() {
        let names: Vec<_> = Provider::ALL.iter().map(|p| p.name()).collect();
        cx.err(p.span(), format!("unknown provider {:?}; expected one of {}", p.get_ref(), names.join(", ")));
    }
    found
}

/// The route's format: an explicit `format` wins, but must be one the provider's stream can come in (or
/// `auto`); without one, the provider's (`auto` when it has several, e.g. gemini's `sse` / `json-array`).
pub(super) fn format(
    cx: &mut Cx,
    provider: Option<Provider>,
    explicit: Option<(FormatChoice, std::ops::Range<usize>)>,
) -> FormatChoice {
    match (provider, explicit) {
        (_, Some((FormatChoice::Auto, _))) | (None, None) => FormatChoice::Auto,
        (None, Some((f, _))) => f,
        (Some(p), None) => p.default_format().map_or(FormatChoice::Auto, FormatChoice::Fixed),
        (Some(p), Some((f, span))) => {
            if !matches!(f, FormatChoice::Fixed(fixed) if p.formats().contains(&fixed)) {
                let allowed: Vec<_> = p.formats().iter().map(|f| Format::name(*f)).collect();
                cx.err(
                    span,
                    format!(
                        "provider {:?} streams {}; format {:?} contradicts it (leave format out, or use auto)",
                        p.name(),
                        allowed.join(" or "),
                        format_choice_name(f)
                    ),
                );
            }
            f
        }
    }
}

/// `expect_end` (default true when `provider` is set): only meaningful with a provider.
pub(super) fn expect_end(cx: &mut Cx, provider: Option<Provider>, raw: Option<Spanned<bool>>) -> bool {
    match (provider, raw) {
        (Some(_), None) => true,
        (_, Some(e)) if provider.is_none() => {
            cx.err(e.span(), "expect_end needs `provider` (the end marker is the provider's)");
            false
        }
        (_, Some(e)) => e.into_inner(),
        (None, None) => false,
    }
}
