//! The bodies of the fuzz targets, shared by the cargo-fuzz binaries in `fuzz_targets/` (nightly,
//! libFuzzer) and the stable runner `examples/stable.rs` (no fuzzer: seeds, then generated and mutated
//! inputs for a bounded time). The oracles themselves live in `ssegate_frame::testing`.

use ssegate_frame::testing::{
    corpus_input, eventstream_corpus_input, json_corpus_input, oracle, oracle_encode, oracle_eventstream,
    oracle_json_differential, Rng,
};

/// One fuzz target: its name (the cargo-fuzz binary), its body and a generator of plausible inputs.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// The name of the binary in `fuzz_targets/` (`cargo fuzz run <name>`).
    pub name: &'static str,
    /// The body: panics when an oracle fails.
    pub run: fn(&[u8]),
    /// A pseudo-random input shaped for this target.
    pub generate: fn(&mut Rng) -> Vec<u8>,
}

/// Every target, in `fuzz_targets/` order.
pub const TARGETS: &[Target] = &[
    Target { name: "decode", run: decode, generate: corpus_input },
    Target { name: "encode", run: encode, generate: encode_input },
    Target { name: "json", run: json, generate: json_corpus_input },
    Target { name: "eventstream", run: eventstream, generate: eventstream_corpus_input },
];

/// The target named `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().copied().find(|t| t.name == name)
}

/// Every decoder: the first byte picks the format and options, the second the split point.
pub fn decode(data: &[u8]) {
    if let Err(e) = oracle(data) {
        panic!("{e}");
    }
}

/// The SSE encoder round trip: fields separated by U+001F, the last byte picks the split point.
pub fn encode(data: &[u8]) {
    if let Err(e) = oracle_encode(data) {
        panic!("{e}");
    }
}

/// The JSON validator against serde_json: one line of would-be JSON.
pub fn json(data: &[u8]) {
    if let Err(e) = oracle_json_differential(data) {
        panic!("{e}");
    }
}

/// The `aws-eventstream` decoder on raw bytes: byte 0 picks `max_event_size` and the split point.
pub fn eventstream(data: &[u8]) {
    if let Err(e) = oracle_eventstream(data) {
        panic!("{e}");
    }
}

/// An input for [`encode`]: a decoder corpus input with a few field separators (U+001F) sprinkled in,
/// so names, ids and retries occur.
pub fn encode_input(rng: &mut Rng) -> Vec<u8> {
    let mut input = corpus_input(rng);
    for _ in 0..rng.below(4) {
        let at = rng.below(input.len() + 1);
        input.insert(at, 0x1f);
    }
    input
}

/// A small random change of `input` (byte flip, insertion, deletion, duplication of a slice), for the
/// stable runner's mutation of seeds.
pub fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    let at = rng.below(input.len() + 1);
    match rng.below(4) {
        0 => {
            if let Some(b) = input.get_mut(at) {
                *b ^= 1 << rng.below(8);
            }
        }
        1 => input.insert(at, rng.next_u64() as u8),
        2 => {
            let end = (at + 1 + rng.below(8)).min(input.len());
            input.drain(at.min(end)..end);
        }
        _ => {
            let end = (at + 1 + rng.below(16)).min(input.len());
            let piece = input.get(at..end).unwrap_or_default().to_vec();
            let to = rng.below(input.len() + 1);
            input.splice(to..to, piece);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cheap smoke run of every target (the stable runner does the long one).
    #[test]
    fn every_target_survives_a_few_hundred_inputs() {
        for t in TARGETS {
            let mut rng = Rng::new(0xf022);
            for _ in 0..300 {
                let mut input = (t.generate)(&mut rng);
                (t.run)(&input);
                mutate(&mut rng, &mut input);
                (t.run)(&input);
            }
        }
    }

    #[test]
    fn targets_are_found_by_name() {
        assert_eq!(target("json").map(|t| t.name), Some("json"));
        assert!(target("nope").is_none());
    }
}
