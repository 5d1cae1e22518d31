//! JSON text sequences (RFC 7464, `application/json-seq`): every value is introduced by RS (0x1E) and
//! should be followed by LF.
//!
//! - An element runs from an RS to the next RS. Its value is emitted (validated and compacted, see the
//!   `json` module) as soon as it is complete *and* followed by LF (so a well-formed producer's values are
//!   delivered without waiting for the next RS), or at the next RS or the end of the stream. Pretty-printed
//!   values with line breaks inside work.
//! - Consecutive RS (empty elements) are ignored; whitespace before a value is ignored.
//! - Per RFC 7464 §2.3 a top-level number or literal must be followed by whitespace, else it may have been
//!   truncated: `RS 123 RS` yields `MalformedJson{reason: "truncated"}`.
//! - Every error skips to the next RS, where decoding resumes (`recoverable: true`): a truncated or
//!   malformed value, non-whitespace after a value, non-whitespace outside an element (e.g. before the first
//!   RS), invalid UTF-8 (`InvalidUtf8`), and a value longer than `max_event_size` (`TooLarge`).
//! - An unfinished value at [`finish`](crate::Decoder::finish) yields `MalformedJson{reason: "truncated",
//!   recoverable: false}`.

use bytes::Bytes;
use memchr::memchr;

use super::json::{malformed, skip_ws};
use super::scan::{Fed, Framer};
use crate::Item;

const RS: u8 = 0x1e;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Outside an element (stream start, after an emitted value's LF): only whitespace until RS.
    Between,
    /// After RS, before the value: whitespace.
    Lead,
    /// Inside the value.
    Value,
    /// After the value: spaces/tabs/CR until LF.
    Trail,
    /// After an error: everything until RS.
    Skip,
}

/// The json-seq decoder.
#[derive(Debug)]
pub(crate) struct JsonSeqDecoder {
    framer: Framer,
    state: State,
    /// The complete value waiting for its LF (or RS / end of stream).
    pending: Option<Item>,
}

impl JsonSeqDecoder {
    pub(crate) fn new(max: usize, field: Option<Box<[u8]>>) -> Self {
        JsonSeqDecoder { framer: Framer::new(max, field), state: State::Between, pending: None }
    }

    pub(crate) fn push(&mut self, chunk: &Bytes, out: &mut Vec<Item>) {
        let mut pos = 0;
        while pos < chunk.len() {
            let rs = memchr(RS, chunk.get(pos..).unwrap_or_default()).map(|k| pos + k);
            self.element(chunk, pos, rs.unwrap_or(chunk.len()), out);
            match rs {
                Some(at) => {
                    self.end_of_element(out);
                    pos = at + 1;
                }
                None => break,
            }
        }
    }

    /// Processes `chunk[pos..end]`, which holds no RS.
    fn element(&mut self, chunk: &Bytes, mut pos: usize, end: usize, out: &mut Vec<Item>) {
        let d = chunk.get(..end).unwrap_or_default();
        while pos < end {
            match self.state {
                State::Skip => return,
                State::Between | State::Lead => {
                    pos = skip_ws(d, pos);
                    let Some(&first) = d.get(pos) else { return };
                    if self.state == State::Between {
                        out.push(malformed("data outside a sequence element", true));
                        self.state = State::Skip;
                    } else if let Err(reason) = self.framer.begin(first) {
                        out.push(malformed(reason, true));
                        self.state = State::Skip;
                    } else {
                        self.state = State::Value;
                    }
                }
                State::Value => {
                    let mut value = None;
                    let fed = self.framer.feed(chunk, pos..end, out, |item, _| value = Some(item));
                    match fed {
                        Fed::More => return,
                        Fed::TooLarge(next) => {
                            self.framer.clear();
                            self.state = State::Skip;
                            pos = next;
                        }
                        Fed::Done(next) => {
                            pos = next;
                            self.state = match value {
                                Some(item @ Item::Event(_)) => {
                                    self.pending = Some(item);
                                    State::Trail
                                }
                                Some(err) => {
                                    out.push(err);
                                    State::Skip
                                }
                                None => State::Skip,
                            };
                        }
                        Fed::Error(_, reason) => {
                            out.push(malformed(reason, true));
                            self.state = State::Skip;
                        }
                    }
                }
                State::Trail => {
                    while let Some(&c) = d.get(pos) {
                        pos += 1;
                        match c {
                            b' ' | b'\t' | b'\r' => {}
                            b'\n' => {
                                out.extend(self.pending.take());
                                self.state = State::Between;
                                break;
                            }
                            _ => {
                                self.pending = None;
                                out.push(malformed("content after the value", true));
                                self.state = State::Skip;
                                break;
                            }
                        }
                    }
                }
            }
        }
    }

    /// An RS ends the current element.
    fn end_of_element(&mut self, out: &mut Vec<Item>) {
        match self.state {
            State::Value => {
                out.push(malformed("truncated", true));
                self.framer.clear();
            }
            State::Trail => out.extend(self.pending.take()),
            State::Between | State::Lead | State::Skip => {}
        }
        self.state = State::Lead;
    }

    pub(crate) fn buffered(&self) -> usize {
        let pending = match &self.pending {
            Some(Item::Event(ev)) => ev.data.len(),
            _ => 0,
        };
        self.framer.buffered() + pending
    }

    pub(crate) fn finish(&mut self, out: &mut Vec<Item>) {
        match self.state {
            State::Value => out.push(malformed("truncated", false)),
            State::Trail => out.extend(self.pending.take()),
            State::Between | State::Lead | State::Skip => {}
        }
        self.framer.clear();
        self.pending = None;
        self.state = State::Between;
    }
}
