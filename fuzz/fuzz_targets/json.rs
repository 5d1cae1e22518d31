//! The JSON validator against serde_json: one line is accepted by the NDJSON decoder exactly when
//! serde_json accepts it. Oracle: `ssegate_frame::testing::oracle_json_differential`.
//! The body is `ssegate_frame_fuzz::json`, which the stable runner (`examples/stable.rs`) also calls.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ssegate_frame_fuzz::json(data));
