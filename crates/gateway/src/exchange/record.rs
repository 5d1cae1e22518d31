//! The owner's side of a resumable stream (route `resume`): the stream's id and its store writer. Every
//! event delivered (to the client, or to nobody after it left under `detach`) is appended with the next
//! seq, and written with `id: <stream>.<seq>`; the stream's ending (the `done_event`, or the `event: error`
//! that ended it) is its last record.
//!
//! The exchange holds it as `Option<Box<Recording>>` in its [`super::deliver::Delivery`]: a route without
//! `resume` pays one pointer-sized field and one branch per event, nothing else.

use bytes::Bytes;
use http::HeaderValue;
use ssegate_frame::encode::Id;
use ssegate_frame::Event;

use crate::error::ErrorType;
use crate::resume::store::{Ending, StreamId, Writer};

/// See the module docs.
#[derive(Debug)]
pub struct Recording {
    id: StreamId,
    hex: [u8; StreamId::LEN],
    writer: Box<dyn Writer>,
    /// The last seq appended.
    seq: u64,
    ended: bool,
}

impl Recording {
    pub fn new(id: StreamId, writer: Box<dyn Writer>) -> Recording {
        Recording { id, hex: id.as_hex(), writer, seq: 0, ended: false }
    }

    /// The stream's id.
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// The `ssegate-stream-id` response header value.
    pub fn header(&self) -> HeaderValue {
        HeaderValue::from_bytes(&self.hex).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// Appends `ev` with the next seq; returns the id to write it with.
    #[inline]
    pub fn append(&mut self, ev: &Event) -> Id<'_> {
        self.seq += 1;
        self.writer.append(self.seq, ev);
        Id::with_prefix(&self.hex, self.seq)
    }

    /// Records the `event: error` that ends the stream (`body`: its JSON) and ends it; returns the event
    /// and the id to write it with.
    pub fn fail(&mut self, body: Bytes) -> (Event, Id<'_>) {
        let ev = Event { name: Some(Bytes::from_static(b"error")), data: body, ..Event::default() };
        self.seq += 1;
        self.writer.append(self.seq, &ev);
        self.end(Ending::Failed);
        (ev, Id::with_prefix(&self.hex, self.seq))
    }

    /// Ends the stream at its last seq (once; later calls do nothing).
    pub fn end(&mut self, how: Ending) {
        if !self.ended {
            self.ended = true;
            self.writer.finish(self.seq, how);
        }
    }

    /// Whether a reader is attached (`detach`).
    pub fn readers_attached(&self) -> bool {
        self.writer.readers_attached()
    }

    /// Events recorded so far (the last seq).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Waits (at most `limit`) until what was recorded, the ending included, reached the store (see
    /// [`crate::resume::store::Writer::settle`]); whether it did.
    pub async fn settle(&self, limit: std::time::Duration) -> bool {
        self.writer.settle(limit).await
    }
}

/// The JSON error body of a recorded `event: error`.
pub fn error_body(ty: ErrorType, msg: &str, request_id: &str) -> Bytes {
    crate::respond::json_body(ty, msg, ty.status(), request_id)
}
