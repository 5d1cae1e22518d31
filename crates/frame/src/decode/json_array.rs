//! One JSON array streamed element by element (Gemini `streamGenerateContent` without `alt=sse`:
//! `[{...}\r\n,\r\n{...}]`).
//!
//! - Each element is emitted (validated and compacted, see the `json` module) as soon as it is complete;
//!   a number or literal element completes at the `,`, `]` or whitespace after it.
//! - Whitespace is allowed anywhere between tokens; `[]` yields nothing; an empty body yields nothing.
//! - **Bad content in a framed element** (brackets balanced, e.g. `{"a" 1}`): that element yields
//!   [`MalformedJson`](crate::DecodeError::MalformedJson) `{recoverable: true}` (or `InvalidUtf8`) and the
//!   decoder continues with the next element.
//! - An element longer than `max_event_size` yields one `TooLarge`; it is tracked without buffering and
//!   skipped, and the decoder continues with the next element.
//! - **Structural errors** end the stream's decoding with `MalformedJson{recoverable: false}`: a top level
//!   that is not an array, a missing `,`/`]` between elements, an empty element (`[1,,2]`, `[1,]`), a
//!   closing bracket of the wrong kind, non-whitespace after the closing `]`, and an array still open at
//!   [`finish`](crate::Decoder::finish) (`"truncated"`). Everything after such an error is ignored.

use bytes::Bytes;

use super::json::{malformed, skip_ws};
use super::scan::{Fed, Framer};
use crate::Item;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Before the opening `[`.
    Start,
    /// After `[`: an element or `]`.
    First,
    /// After `,`: an element.
    Next,
    /// Inside an element.
    Element,
    /// After an element: `,` or `]`.
    After,
    /// After the closing `]`: only whitespace.
    End,
    /// After a structural error: everything is ignored.
    Dead,
}

/// The json-array decoder.
#[derive(Debug)]
pub(crate) struct JsonArrayDecoder {
    framer: Framer,
    state: State,
}

impl JsonArrayDecoder {
    pub(crate) fn new(max: usize, field: Option<Box<[u8]>>) -> Self {
        JsonArrayDecoder { framer: Framer::new(max, field), state: State::Start }
    }

    fn die(&mut self, reason: &'static str, out: &mut Vec<Item>) {
        out.push(malformed(reason, false));
        self.state = State::Dead;
        self.framer.clear();
    }

    pub(crate) fn push(&mut self, chunk: &Bytes, out: &mut Vec<Item>) {
        let d: &[u8] = chunk;
        let mut pos = 0;
        while pos < d.len() {
            if self.state == State::Element {
                match self.framer.feed(chunk, pos..d.len(), out, |item, out| out.push(item)) {
                    Fed::More => return,
                    Fed::TooLarge(next) => pos = next,
                    Fed::Done(next) => {
                        self.state = State::After;
                        pos = next;
                    }
                    Fed::Error(_, reason) => {
                        self.die(reason, out);
                        return;
                    }
                }
                continue;
            }
            if self.state == State::Dead {
                return;
            }
            pos = skip_ws(d, pos);
            let Some(&c) = d.get(pos) else { return };
            match (self.state, c) {
                (State::Start, b'[') => self.state = State::First,
                (State::Start, _) => return self.die("not a JSON array", out),
                (State::First, b']') | (State::After, b']') => self.state = State::End,
                (State::First | State::Next, _) => match self.framer.begin(c) {
                    Ok(()) => {
                        self.state = State::Element;
                        continue;
                    }
                    Err(_) => return self.die("expected an array element", out),
                },
                (State::After, b',') => self.state = State::Next,
                (State::After, _) => return self.die("expected ',' or ']'", out),
                (State::End, _) => return self.die("content after the array", out),
                (State::Element | State::Dead, _) => return,
            }
            pos += 1;
        }
    }

    pub(crate) fn buffered(&self) -> usize {
        self.framer.buffered()
    }

    pub(crate) fn finish(&mut self, out: &mut Vec<Item>) {
        match self.state {
            State::Start | State::End | State::Dead => {}
            State::Element if self.framer.is_scalar() => {
                self.framer.finish_scalar(out, |item, out| out.push(item));
                out.push(malformed("truncated", false));
            }
            State::First | State::Next | State::Element | State::After => {
                out.push(malformed("truncated", false))
            }
        }
        self.framer.clear();
        self.state = State::Start;
    }
}
