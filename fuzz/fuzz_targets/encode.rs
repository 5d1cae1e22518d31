//! The SSE encoder: an event built from the input, encoded and parsed back, is the same event
//! (normalised as a client sees it). Oracle: `ssegate_frame::testing::oracle_encode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = ssegate_frame::testing::oracle_encode(data) {
        panic!("{e}");
    }
});
