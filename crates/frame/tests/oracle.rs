//! The fuzz oracles (the same functions the cargo-fuzz targets in `fuzz/` call) over a deterministic
//! pseudo-random corpus, so that CI exercises them on stable without a fuzzer.

use ssegate_frame::testing::{
    corpus_input, eventstream_corpus_input, json_corpus_input, oracle, oracle_encode, oracle_eventstream,
    oracle_json_differential, Rng,
};

const INPUTS: usize = 20_000;

#[test]
fn decoder_oracle_on_seeded_corpus() {
    let mut rng = Rng::new(0x55e_6a7e);
    let mut failures = Vec::new();
    for n in 0..INPUTS {
        let input = corpus_input(&mut rng);
        if let Err(e) = oracle(&input) {
            failures.push(format!("input #{n} {input:?}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{} failures, first:\n{}", failures.len(), failures.join("\n\n"));
}

#[test]
fn eventstream_oracle_on_seeded_corpus() {
    let mut rng = Rng::new(0xae5_7e4);
    for n in 0..INPUTS {
        let input = eventstream_corpus_input(&mut rng);
        if let Err(e) = oracle_eventstream(&input) {
            panic!("input #{n} {input:?}: {e}");
        }
    }
    // Hand-picked: empty, a lone prelude claiming 4 GiB, pretty JSON, a Bedrock wrapper, invalid UTF-8.
    for input in [
        &b""[..],
        b"\x01",
        b"\x00\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00",
        b"\x00{ \"a\" :\n [1, 2] }",
        b"\x00{\"bytes\":\"eyJhIjoxfQ==\"}",
        b"\x01\xff\xfe",
    ] {
        oracle_eventstream(input).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn encoder_oracle_on_seeded_corpus() {
    let mut rng = Rng::new(0xe4c0de);
    for n in 0..INPUTS {
        let mut input = corpus_input(&mut rng);
        // Sprinkle field separators so names, ids and retries occur.
        for _ in 0..rng.below(4) {
            let at = rng.below(input.len() + 1);
            input.insert(at, 0x1f);
        }
        if let Err(e) = oracle_encode(&input) {
            panic!("input #{n} {input:?}: {e}");
        }
    }
}

#[test]
fn json_validator_agrees_with_serde_json() {
    let mut rng = Rng::new(0x1503);
    for n in 0..INPUTS {
        let input = json_corpus_input(&mut rng);
        if let Err(e) = oracle_json_differential(&input) {
            panic!("input #{n} {:?}: {e}", String::from_utf8_lossy(&input));
        }
    }
    // Hand-picked corner cases.
    for input in [
        &b"\"\\ud800\""[..],
        b"1e99999",
        b"-0.0e-0",
        b"[\"\x7f\"]",
        b"\"\xc3\xa9\"",
        b"01",
        b"1.",
        b"[1,]",
        b"{\"a\":1,}",
        b"\xef\xbb\xbf1",
        b"\"\\u00\"",
        b"tru",
        b"nulll",
        b"[\"a\"\t,\r1]",
        b"\x00",
        b"\"\x00\"",
        b" ",
        b"",
    ] {
        oracle_json_differential(input).unwrap_or_else(|e| panic!("{e}"));
    }
}
