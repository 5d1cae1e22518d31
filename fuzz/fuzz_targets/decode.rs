//! Every decoder: the first byte picks the format and options, the second the split point.
//! Oracle: `ssegate_frame::testing::oracle` (no panic, chunking invariance, SSE re-encode stability,
//! JSON data valid and compact).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = ssegate_frame::testing::oracle(data) {
        panic!("{e}");
    }
});
