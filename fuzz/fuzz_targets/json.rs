//! The JSON validator against serde_json: one line is accepted by the NDJSON decoder exactly when
//! serde_json accepts it. Oracle: `ssegate_frame::testing::oracle_json_differential`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = ssegate_frame::testing::oracle_json_differential(data) {
        panic!("{e}");
    }
});
