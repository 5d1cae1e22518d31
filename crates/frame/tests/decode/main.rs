//! Table tests for every decoder rule. Each case runs on its LF fixture and the CRLF twin (and, where the
//! format allows CR line breaks, the CR twin), checks the items of a whole feed and then chunk-boundary
//! invariance: every split into two pieces and a byte-by-byte feed give the same items.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod chunks;
mod eventstream;
mod fixtures;
mod json_array;
mod json_seq;
mod json_stream;
mod limits;
mod lines;
mod ndjson;
mod sse;
