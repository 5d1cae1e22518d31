//! Every decoder: the first byte picks the format and options, the second the split point.
//! Oracle: `ssegate_frame::testing::oracle` (no panic, chunking invariance, SSE re-encode stability,
//! JSON data valid and compact).
//! The body is `ssegate_frame_fuzz::decode`, which the stable runner (`examples/stable.rs`) also calls.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ssegate_frame_fuzz::decode(data));
