use bytes::Bytes;

use crate::DecodeError;

/// One Server-Sent Event: what a client's `EventSource` dispatches as one `MessageEvent`.
///
/// All byte fields hold UTF-8 text when produced by a decoder of this crate. The encoder never trusts
/// that: whatever the bytes, it writes output that cannot inject a field or split an event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// The `event:` name; `None` means the default type (`message`).
    pub name: Option<Bytes>,
    /// The payload. Line breaks (CR, LF, CRLF) in it are written as separate `data:` lines and read back as LF.
    pub data: Bytes,
    /// The `id:`; `Some(empty)` resets the client's last event id, `None` leaves it unchanged.
    pub id: Option<Bytes>,
    /// The `retry:` reconnection time in milliseconds, sent together with this event.
    pub retry: Option<u64>,
}

impl Event {
    /// An event of the default type carrying `data`.
    pub fn data(data: impl Into<Bytes>) -> Self {
        Event { data: data.into(), ..Event::default() }
    }

    /// Sets the `event:` name.
    pub fn with_name(mut self, name: impl Into<Bytes>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the `id:`.
    pub fn with_id(mut self, id: impl Into<Bytes>) -> Self {
        self.id = Some(id.into());
        self
    }
}

/// What a decoder yields, in stream order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A complete message.
    Event(Event),
    /// An SSE comment line's text (without the leading `:`), only when
    /// [`DecoderOptions::comments`](crate::DecoderOptions::comments) is set.
    Comment(Bytes),
    /// An SSE `retry:` field seen outside of a dispatched event (the reconnection time in ms).
    Retry(u64),
    /// Bad input. The decoder has already skipped what it could not use; see
    /// [`DecodeError::recoverable`] for whether it keeps producing events.
    Error(DecodeError),
}
