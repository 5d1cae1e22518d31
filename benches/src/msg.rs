//! The mock upstream's messages, one format each, every one carrying a [`marker`](crate::marker).

use crate::marker;

/// The framing the mock answers with, chosen by the request path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Ollama `/api/chat`: NDJSON, ending with a `"done":true` object.
    Ndjson,
    /// OpenAI `/v1/chat/completions`: SSE `data:` events, ending with `data: [DONE]`.
    Sse,
    /// Gemini-like JSON array streamed element by element.
    JsonArray,
    /// Raw text, one line per message.
    Text,
}

impl Kind {
    /// The format for a request path, if the mock serves it.
    pub fn for_path(path: &str) -> Option<Kind> {
        if path.ends_with("/api/chat") || path.ends_with("/api/generate") {
            Some(Kind::Ndjson)
        } else if path.ends_with("/chat/completions") {
            Some(Kind::Sse)
        } else if path.ends_with("/json-array") || path.ends_with(":streamGenerateContent") {
            Some(Kind::JsonArray)
        } else if path.ends_with("/raw") {
            Some(Kind::Text)
        } else {
            None
        }
    }

    /// The response's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Kind::Ndjson => "application/x-ndjson",
            Kind::Sse => "text/event-stream",
            Kind::JsonArray => "application/json",
            Kind::Text => "text/plain; charset=utf-8",
        }
    }

    /// What comes before the first message.
    pub fn prelude(self) -> &'static [u8] {
        match self {
            Kind::JsonArray => b"[",
            _ => b"",
        }
    }

    /// Appends message `seq` (sent at `t_ns`), framed, padded to about `size` bytes.
    pub fn message(self, seq: u64, t_ns: u64, size: usize, out: &mut Vec<u8>) {
        let (head, tail): (&[u8], &[u8]) = match self {
            Kind::Ndjson => (
                b"{\"model\":\"x\",\"created_at\":\"2026-11-21T00:00:00Z\",\"message\":{\"role\":\"assistant\",\"content\":\"",
                b"\"},\"done\":false}\n",
            ),
            Kind::Sse => (
                b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"",
                b"\"},\"finish_reason\":null}]}\n\n",
            ),
            Kind::JsonArray if seq == 0 => (b"{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"", b"\"}]}}]}"),
            Kind::JsonArray => (b",\r\n{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"", b"\"}]}}]}"),
            Kind::Text => (b"", b"\n"),
        };
        let start = out.len();
        out.extend_from_slice(head);
        marker::write(seq, t_ns, out);
        let used = out.len() - start + tail.len();
        if size > used {
            out.push(b' ');
            out.resize(out.len() + size - used - 1, b'x');
        }
        out.extend_from_slice(tail);
    }

    /// What ends the stream after `n` messages.
    pub fn epilogue(self, n: u64) -> Vec<u8> {
        match self {
            Kind::Ndjson => format!(
                "{{\"model\":\"x\",\"created_at\":\"2026-11-21T00:00:00Z\",\"message\":{{\"role\":\"assistant\",\"content\":\"\"}},\
                 \"done_reason\":\"stop\",\"done\":true,\"total_duration\":1,\"load_duration\":1,\"prompt_eval_count\":1,\
                 \"prompt_eval_duration\":1,\"eval_count\":{n},\"eval_duration\":1}}\n"
            )
            .into_bytes(),
            Kind::Sse => b"data: [DONE]\n\n".to_vec(),
            Kind::JsonArray => b"]".to_vec(),
            Kind::Text => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bytes::Bytes;
    use ssegate_frame::{Decoder, DecoderOptions, Format, Item};

    use super::*;

    /// Every format decodes (with the framing core, split at every byte) to one message per marker.
    #[test]
    fn messages_decode_with_their_markers() {
        for (kind, format) in [
            (Kind::Ndjson, Format::Ndjson),
            (Kind::Sse, Format::Sse),
            (Kind::JsonArray, Format::JsonArray),
            (Kind::Text, Format::Lines),
        ] {
            let mut wire = kind.prelude().to_vec();
            for seq in 0..3 {
                kind.message(seq, 1_000 + seq, 120, &mut wire);
            }
            wire.extend_from_slice(&kind.epilogue(3));
            for split in [1, 7, wire.len()] {
                let mut dec = Decoder::new(format, DecoderOptions::default());
                let mut items = Vec::new();
                for part in wire.chunks(split) {
                    dec.push(&Bytes::copy_from_slice(part), &mut items);
                }
                dec.finish(&mut items);
                let marks: Vec<_> = items
                    .iter()
                    .filter_map(|i| match i {
                        Item::Event(e) => marker::find(&e.data),
                        _ => None,
                    })
                    .collect();
                assert_eq!(marks, vec![(0, 1_000), (1, 1_001), (2, 1_002)], "{kind:?} split {split}");
                assert!(items.iter().all(|i| matches!(i, Item::Event(_))), "{kind:?}: {items:?}");
            }
        }
    }

    #[test]
    fn padding_reaches_the_size() {
        let mut v = Vec::new();
        Kind::Ndjson.message(1, 2, 200, &mut v);
        assert_eq!(v.len(), 200);
        v.clear();
        Kind::Text.message(1, 2, 8, &mut v);
        assert_eq!(v, b"@@1:2@@\n");
    }

    #[test]
    fn paths() {
        assert_eq!(Kind::for_path("/api/chat"), Some(Kind::Ndjson));
        assert_eq!(Kind::for_path("/v1/chat/completions"), Some(Kind::Sse));
        assert_eq!(Kind::for_path("/json-array"), Some(Kind::JsonArray));
        assert_eq!(Kind::for_path("/raw"), Some(Kind::Text));
        assert_eq!(Kind::for_path("/nope"), None);
    }
}
