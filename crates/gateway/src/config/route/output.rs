//! `outputs` (what a converted stream may be written as; the client chooses with `Accept`) and
//! `ndjson_heartbeats`.

use ssegate_frame::encode::Output;
use toml::Spanned;

use crate::config::cx::Cx;

/// Every output a route may list, by config name.
pub const OUTPUTS: [(&str, Output); 2] = [("sse", Output::Sse), ("ndjson", Output::Ndjson)];

/// `outputs = ["sse", "ndjson"]`: known names, no duplicates, at least one; default `["sse"]`. The first is
/// what a client gets without an `Accept` that prefers another.
pub(super) fn outputs(cx: &mut Cx, raw: Option<Spanned<Vec<Spanned<String>>>>) -> Vec<Output> {
    let Some(raw) = raw else { return vec![Output::Sse] };
    let span = raw.span();
    let mut out = Vec::new();
    for name in raw.into_inner() {
        match OUTPUTS.iter().find(|(n, _)| *n == name.get_ref().as_str()) {
            None => {
                cx.err(name.span(), format!("unknown output {:?}; expected sse or ndjson", name.get_ref()))
            }
            Some((_, o)) if out.contains(o) => {
                cx.err(name.span(), format!("output {:?} listed twice", name.get_ref()))
            }
            Some((_, o)) => out.push(*o),
        }
    }
    if out.is_empty() {
        cx.err(span, "outputs must list at least one of sse, ndjson");
        out.push(Output::Sse);
    }
    out
}
