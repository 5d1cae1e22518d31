//! The producer: upstream body reads → decompress → decode → items.
//!
//! The pump owns the upstream session and everything that turns its bytes into [`Item`]s. It hands its
//! items to whoever consumes them ([`Pump::items`], drained by delivery) and never writes to the client,
//! never touches timers: the exchange selects on [`Pump::read`] next to the client and the timers.

use bytes::Bytes;
use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;
use ssegate_frame::{Decoder, Item};

use crate::gateway::RouteState;
use crate::upstream::Decompressor;

/// How long an idle pooled upstream connection is kept.
const POOL_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

/// What one upstream chunk became.
#[derive(Debug)]
pub enum Produced {
    /// Decoded items are in [`Pump::items`] (possibly none yet: a message may span reads).
    Items,
    /// A passthrough chunk, as it came (not copied).
    Bytes(Bytes),
}

/// The upstream side of a streaming exchange.
pub struct Pump {
    up: HttpSession,
    /// `None`: pass the bytes through untouched.
    decoder: Option<Decoder>,
    /// Boxed: rare (a compressed upstream body), and 256 bytes inline in every stream's future.
    decompressor: Option<Box<Decompressor>>,
    items: Vec<Item>,
}

impl std::fmt::Debug for Pump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pump").field("decoding", &self.decoder.is_some()).finish_non_exhaustive()
    }
}

impl Pump {
    pub fn new(up: HttpSession, decoder: Option<Decoder>, decompressor: Option<Box<Decompressor>>) -> Pump {
        Pump { up, decoder, decompressor, items: Vec::new() }
    }

    /// The next body chunk of the upstream (`None` at its end). While compressed input of an earlier read
    /// is still to be inflated, an empty chunk at once: [`Pump::push`] then inflates its next step, so
    /// that a large expansion is decoded and delivered piece by piece (between pieces the exchange still
    /// watches the client and the timers).
    pub async fn read(&mut self) -> pingora::Result<Option<Bytes>> {
        if self.decoder.is_some() && self.decompressor.as_deref().is_some_and(Decompressor::has_pending) {
            return Ok(Some(Bytes::new()));
        }
        self.up.read_response_body().await
    }

    /// Turns one chunk into items (or passes it on). Compressed input is inflated one bounded step
    /// (64 KiB of output, see `upstream/decompress.rs`) at a time; the rest waits for the next
    /// [`Pump::read`]. Fails only when it cannot be decompressed.
    pub fn push(&mut self, chunk: Bytes) -> Result<Produced, String> {
        let Some(dec) = self.decoder.as_mut() else { return Ok(Produced::Bytes(chunk)) };
        let chunk = match self.decompressor.as_mut() {
            None => chunk,
            Some(d) => {
                if !chunk.is_empty() {
                    d.push(chunk);
                }
                d.step().map_err(|e| format!("cannot decompress the upstream body: {e}"))?
            }
        };
        dec.push(&chunk, &mut self.items);
        Ok(Produced::Items)
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
