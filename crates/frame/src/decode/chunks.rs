//! Raw bytes, one event per upstream chunk.
//!
//! - Each pushed chunk becomes one event holding its text. An incomplete UTF-8 sequence at the end of a
//!   chunk is held back (at most 3 bytes) and prepended to the next chunk, so no event splits a character.
//! - Invalid UTF-8 (a sequence that can never become valid) is skipped and reported: the chunk's text
//!   around it becomes separate events, in stream order, with one [`DecodeError::InvalidUtf8`] per run of
//!   invalid bytes between them. Nothing is replaced.
//! - A chunk that yields no text yields no event.
//! - A chunk's text longer than `max_event_size` is split at character boundaries into events of at most
//!   `max_event_size` bytes (this format has no message boundary to skip to, so nothing is dropped).
//! - At [`finish`](crate::Decoder::finish), a held-back incomplete sequence yields `InvalidUtf8`.
//!
//! The events depend on how the upstream chunked its body, by design; their concatenated data does not.

use bytes::Bytes;

use crate::{DecodeError, Event, Item};

/// The chunks decoder.
#[derive(Debug)]
pub(crate) struct ChunksDecoder {
    max: usize,
    held: [u8; 4],
    held_len: usize,
}

impl ChunksDecoder {
    pub(crate) fn new(max: usize) -> Self {
        ChunksDecoder { max, held: [0; 4], held_len: 0 }
    }

    pub(crate) fn push(&mut self, chunk: &Bytes, out: &mut Vec<Item>) {
        if chunk.is_empty() {
            return;
        }
        let mut rest = if self.held_len == 0 {
            chunk.clone()
        } else {
            let held = self.held.get(..self.held_len).unwrap_or_default();
            let mut joined = Vec::with_capacity(held.len() + chunk.len());
            joined.extend_from_slice(held);
            joined.extend_from_slice(chunk);
            self.held_len = 0;
            Bytes::from(joined)
        };
        let mut after_error = false;
        loop {
            match std::str::from_utf8(&rest) {
                Ok(_) => {
                    self.emit(rest, out);
                    return;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    if valid > 0 {
                        self.emit(rest.slice(..valid), out);
                        after_error = false;
                    }
                    match e.error_len() {
                        Some(n) => {
                            if !after_error {
                                out.push(Item::Error(DecodeError::InvalidUtf8));
                                after_error = true;
                            }
                            rest = rest.slice((valid + n).min(rest.len())..);
                        }
                        None => {
                            let tail = rest.get(valid..).unwrap_or_default();
                            self.held_len = tail.len().min(self.held.len());
                            if let (Some(dst), Some(src)) =
                                (self.held.get_mut(..self.held_len), tail.get(..self.held_len))
                            {
                                dst.copy_from_slice(src);
                            }
                            return;
                        }
                    }
                }
            }
        }
    }

    pub(crate) fn buffered(&self) -> usize {
        self.held_len
    }

    pub(crate) fn finish(&mut self, out: &mut Vec<Item>) {
        if self.held_len > 0 {
            out.push(Item::Error(DecodeError::InvalidUtf8));
            self.held_len = 0;
        }
    }

    /// Emits valid text, split at character boundaries into pieces of at most `max` bytes.
    fn emit(&self, mut text: Bytes, out: &mut Vec<Item>) {
        while text.len() > self.max {
            let mut cut = self.max;
            while cut > 0 && text.get(cut).is_some_and(|&c| (0x80..0xc0).contains(&c)) {
                cut -= 1;
            }
            if cut == 0 {
                // max is smaller than the first character: emit that character alone.
                cut = 1;
                while text.get(cut).is_some_and(|&c| (0x80..0xc0).contains(&c)) {
                    cut += 1;
                }
            }
            out.push(Item::Event(Event::data(text.split_to(cut))));
        }
        if !text.is_empty() {
            out.push(Item::Event(Event::data(text)));
        }
    }
}
