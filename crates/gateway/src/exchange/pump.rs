//! The producer: upstream body reads → decompress → decode → items.
//!
//! The pump owns the upstream session and everything that turns its bytes into [`Item`]s. It hands its
//! items to whoever consumes them ([`Pump::items`], drained by delivery) and never writes to the client,
//! never touches timers: the exchange selects on [`Pump::read`] next to the client and the timers.

use bytes::{Bytes, BytesMut};
use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;
use ssegate_frame::{Decoder, Item};

use crate::gateway::RouteState;
use crate::upstream::Decompressor;

/// How long an idle pooled upstream connection is kept.
const POOL_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

/// Reads of at most this many bytes are copied into the pump's reusable buffer ([`Pump::read`]); a longer
/// read gets a `Bytes` of its own, as pingora's `read_response_body` would give it (next to the copy and
/// the decoding of that many bytes, one allocation is small). Bounds what the buffer keeps per stream.
const REUSE_MAX: usize = 1024;

/// What one read of the upstream became.
#[derive(Debug)]
pub enum Produced {
    /// This many bytes of the upstream body were read (as they came: compressed if the body is) and
    /// decoded: the items are in [`Pump::items`] (possibly none yet: a message may span reads).
    Items(usize),
    /// A passthrough chunk, as it came (not copied).
    Bytes(Bytes),
}

/// Why a read of the upstream failed.
#[derive(Debug)]
pub enum ReadError {
    /// The upstream connection broke (or its body's framing did).
    Upstream(pingora::BError),
    /// The body cannot be decompressed.
    Decode(String),
}

/// The upstream side of a streaming exchange.
pub struct Pump {
    up: HttpSession,
    /// `None`: pass the bytes through untouched.
    decoder: Option<Decoder>,
    /// Boxed: rare (a compressed upstream body), and 256 bytes inline in every stream's future.
    decompressor: Option<Box<Decompressor>>,
    items: Vec<Item>,
    /// Where a decoded HTTP/1 read is copied to (see [`Pump::read`]).
    buf: BytesMut,
}

impl std::fmt::Debug for Pump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pump").field("decoding", &self.decoder.is_some()).finish_non_exhaustive()
    }
}

impl Pump {
    pub fn new(up: HttpSession, decoder: Option<Decoder>, decompressor: Option<Box<Decompressor>>) -> Pump {
        Pump { up, decoder, decompressor, items: Vec::new(), buf: BytesMut::new() }
    }

    /// Reads the next piece of the upstream body and decodes it (or, passing through, hands it on):
    /// `None` at the body's end. Compressed input is inflated one bounded step (64 KiB of output, see
    /// `upstream/decompress.rs`) per call; while an earlier read's input is still to be inflated, a call
    /// inflates its next step without reading, so that a large expansion is decoded and delivered piece by
    /// piece (between pieces the exchange still watches the client and the timers).
    ///
    /// A decoded HTTP/1 read is taken as a slice of pingora's body buffer (`read_body_ref`) and copied into
    /// the pump's own buffer, whose space is reused once the events sliced from it are delivered, instead
    /// of `read_response_body`'s `Bytes::copy_from_slice` per read (an allocation, and a second one for
    /// the shared header when the decoder slices an event from it, and their frees: ~130 instructions per
    /// event at one event per read). The decoder needs a `Bytes` (its events are zero-copy slices of it),
    /// so one copy stays.
    ///
    /// Cancel-safe, as the `select!` of the body loop (`wake.rs`) and of `drain.rs` need: the only
    /// `.await` is pingora's body read, which is itself cancel-safe (its one socket read per call moves
    /// bytes only when it completes, and its parser state lives in the session, committed before it
    /// awaits). Everything after it — the decoder's push, the decompressor's step — is synchronous, in the
    /// same poll that completes the read: a read either has not happened (the future dropped while
    /// pending: the bytes wait in the socket or pingora's buffer) or is decoded in full before this future
    /// returns. No borrow of pingora's buffer outlives the call.
    pub async fn read(&mut self) -> Result<Option<Produced>, ReadError> {
        let Some(dec) = self.decoder.as_mut() else {
            return match self.up.read_response_body().await {
                Ok(chunk) => Ok(chunk.map(Produced::Bytes)),
                Err(e) => Err(ReadError::Upstream(e)),
            };
        };
        let Some(d) = self.decompressor.as_deref_mut() else {
            let n = match &mut self.up {
                HttpSession::H1(h1) => match h1.read_body_ref().await.map_err(ReadError::Upstream)? {
                    Some(body) => {
                        dec.push(&own(&mut self.buf, body), &mut self.items);
                        body.len()
                    }
                    None => return Ok(None),
                },
                up => match up.read_response_body().await.map_err(ReadError::Upstream)? {
                    Some(chunk) => {
                        dec.push(&chunk, &mut self.items);
                        chunk.len()
                    }
                    None => return Ok(None),
                },
            };
            return Ok(Some(Produced::Items(n)));
        };
        let mut n = 0;
        if !d.has_pending() {
            match self.up.read_response_body().await.map_err(ReadError::Upstream)? {
                Some(chunk) if chunk.is_empty() => {}
                Some(chunk) => {
                    n = chunk.len();
                    d.push(chunk);
                }
                None => return Ok(None),
            }
        }
        let out =
            d.step().map_err(|e| ReadError::Decode(format!("cannot decompress the upstream body: {e}")))?;
        dec.push(&out, &mut self.items);
        Ok(Some(Produced::Items(n)))
    }

    /// The upstream body ended: what the decompressor and the decoder still hold becomes items (an
    /// unfinished message is dropped or reported by the decoder's rules).
    pub fn finish(&mut self) -> Result<(), String> {
        let Some(dec) = self.decoder.as_mut() else { return Ok(()) };
        if let Some(d) = self.decompressor.as_mut() {
            match d.finish() {
                Ok(rest) if !rest.is_empty() => dec.push(&rest, &mut self.items),
                Ok(_) => {}
                Err(e) => return Err(format!("truncated compressed upstream body: {e}")),
            }
        }
        dec.finish(&mut self.items);
        Ok(())
    }

    /// Whether the body is decoded (not passed through).
    pub fn decoding(&self) -> bool {
        self.decoder.is_some()
    }

    /// The items produced so far, for delivery to drain.
    pub fn items(&mut self) -> &mut Vec<Item> {
        &mut self.items
    }

    /// The upstream session (to read an error body, or to shut it down).
    pub fn session(&mut self) -> &mut HttpSession {
        &mut self.up
    }

    /// Closes the upstream connection (never returned to the pool).
    pub async fn abort(&mut self) {
        self.up.shutdown().await;
    }

    /// Returns the connection, read to its end, to the route's pool.
    pub async fn release(self, route: &RouteState, peer: &HttpPeer) {
        route.connector.release_http_session(self.up, peer, Some(POOL_IDLE)).await;
    }
}

/// `body` as a `Bytes`: copied to the end of `buf` and split off it when it is short. `buf` reuses its
/// allocation when the earlier pieces are all dropped (after delivery; a resume store that keeps events
/// keeps their piece, and `buf` then takes new space); it stays under twice [`REUSE_MAX`].
fn own(buf: &mut BytesMut, body: &[u8]) -> Bytes {
    if body.len() > REUSE_MAX {
        return Bytes::copy_from_slice(body);
    }
    buf.extend_from_slice(body);
    buf.split().freeze()
}

#[cfg(test)]
#[path = "pump_tests.rs"]
mod tests;
