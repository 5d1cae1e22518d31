//! The SSE encoder: an event built from the input, encoded and parsed back, is the same event
//! (normalised as a client sees it). Oracle: `ssegate_frame::testing::oracle_encode`.
//! The body is `ssegate_frame_fuzz::encode`, which the stable runner (`examples/stable.rs`) also calls.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ssegate_frame_fuzz::encode(data));
