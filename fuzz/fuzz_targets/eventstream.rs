//! The `aws-eventstream` decoder on raw bytes: byte 0 picks `max_event_size` and the split point.
//! Oracle: `ssegate_frame::testing::oracle_eventstream` (no panic, chunking invariance, bounded buffering,
//! nothing after an unrecoverable error, error events are JSON, the input as one frame's payload gives
//! exactly its event). The body is `ssegate_frame_fuzz::eventstream`, which the stable runner also calls.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ssegate_frame_fuzz::eventstream(data));
