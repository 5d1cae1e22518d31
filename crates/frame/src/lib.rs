//! # ssegate-frame
//!
//! The I/O-free framing core of ssegate. Bytes come in as arbitrary chunks from an upstream; complete
//! messages come out as [`Event`]s; the [`encode`] module writes them in the response format, an
//! [`encode::Output`] (spec-correct Server-Sent Events, or NDJSON).
//!
//! ```text
//! upstream bytes ──> Decoder::push (format-specific framing) ──> Item::Event
//!                ──> Output::event / event_with_id (encode::Output::Sse) ──> SSE bytes
//! ```
//!
//! No tokio, no pingora, no sockets: everything here is a pure function of its input, so every decoder is
//! tested with every possible chunking, fuzzed, and benchmarked in isolation.
//!
//! - [`Decoder`]: one per stream and [`Format`]; the rules of each format and what bad input yields
//!   ([`Item::Error`] with a [`DecodeError`], never a panic, never unbounded buffering) are in [`decode`].
//! - [`encode`]: [`encode::Output`] writes events (with their own or gateway-assigned ids), comments,
//!   heartbeats, `retry:` and errors in the response format, as output that no payload can break; the
//!   free functions `encode::event`, `encode::comment`, `encode::retry` are its SSE writers. See
//!   `docs/ARCHITECTURE.md` for where this sits in the gateway.
//! - Feature `testing`: the `testing` module of helpers shared by the tests and the fuzz targets
//!   (chunk-boundary invariance check, fuzz oracles, seeded corpus). Not for production builds.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use ssegate_frame::encode::{Id, Output};
//! use ssegate_frame::{Decoder, DecoderOptions, Format, Item};
//!
//! let mut dec = Decoder::new(Format::Ndjson, DecoderOptions::default());
//! let mut items = Vec::new();
//! dec.push(&Bytes::from_static(b"{\"t\": 1}\n{\"t\""), &mut items);
//! dec.push(&Bytes::from_static(b":2}\n"), &mut items);
//! dec.finish(&mut items);
//! let output = Output::Sse;
//! let mut out = BytesMut::new();
//! let mut seq = 0;
//! for item in &items {
//!     if let Item::Event(ev) = item {
//!         seq += 1;
//!         output.event_with_id(ev, Id::new(seq), &mut out);
//!     }
//! }
//! assert_eq!(&out[..], b"id: 1\ndata: {\"t\":1}\n\nid: 2\ndata: {\"t\":2}\n\n");
//! ```

#![warn(missing_docs)]

pub mod decode;
pub mod encode;
mod error;
mod event;
mod format;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use decode::{Decoder, DecoderOptions, DEFAULT_MAX_EVENT_SIZE};
pub use error::DecodeError;
pub use event::{Event, Item};
pub use format::Format;
