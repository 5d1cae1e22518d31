//! A minimal SSE reader for assertions on the gateway's output (which always uses LF line ends).

/// One parsed SSE block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Block {
    pub event: Option<String>,
    /// `data` lines joined with LF; `None` when the block has no `data` field.
    pub data: Option<String>,
    pub id: Option<String>,
    pub retry: Option<String>,
    /// Comment lines without the leading `:` (and one leading space).
    pub comments: Vec<String>,
}

impl Block {
    pub fn is_heartbeat(&self) -> bool {
        self.event.is_none() && self.data.is_none() && self.id.is_none() && self.retry.is_none()
    }

    /// The `data` parsed as JSON (panics if it is not).
    pub fn json(&self) -> serde_json::Value {
        let data = self.data.as_deref().unwrap_or_else(|| panic!("block has no data: {self:?}"));
        serde_json::from_str(data).unwrap_or_else(|e| panic!("data is not JSON ({e}): {data:?}"))
    }
}

/// Splits `bytes` into blocks at blank lines and parses each. A trailing unterminated block is ignored.
pub fn parse(bytes: &[u8]) -> Vec<Block> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    let mut rest: &str = &text;
    while let Some(i) = rest.find("\n\n") {
        out.push(parse_block(&rest[..i + 1]));
        rest = &rest[i + 2..];
    }
    out
}

/// Like [`parse`] for a whole body: panics when anything follows the last blank line (a partial block, a
/// stray byte after the final event), so the last block really is where the stream ended.
#[track_caller]
pub fn parse_all(bytes: &[u8]) -> Vec<Block> {
    let tail = match bytes.windows(2).rposition(|w| w == b"\n\n") {
        Some(i) => &bytes[i + 2..],
        None => bytes,
    };
    assert!(
        tail.is_empty(),
        "bytes after the last complete SSE block: \"{}\" (body: \"{}\")",
        crate::show(tail),
        crate::show(bytes)
    );
    parse(bytes)
}

/// Parses one block (lines ending in LF, without the blank line).
pub fn parse_block(block: &str) -> Block {
    let mut b = Block::default();
    for line in block.split('\n').filter(|l| !l.is_empty()) {
        if let Some(c) = line.strip_prefix(':') {
            b.comments.push(c.strip_prefix(' ').unwrap_or(c).to_string());
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => b.event = Some(value.to_string()),
            "data" => {
                b.data = Some(match b.data.take() {
                    Some(d) => format!("{d}\n{value}"),
                    None => value.to_string(),
                })
            }
            "id" => b.id = Some(value.to_string()),
            "retry" => b.retry = Some(value.to_string()),
            _ => {}
        }
    }
    b
}

/// Asserts `block` is `event: error` whose data is
/// `{"error":{"type":ty,"message":<string>,"status":N,"request_id":<string>}}` with nothing else; returns
/// the status.
#[track_caller]
pub fn assert_error_event(block: &Block, ty: &str) -> u64 {
    assert_eq!(block.event.as_deref(), Some("error"), "not an error event: {block:?}");
    let v = block.json();
    assert_error_json(&v, ty)
}

/// Asserts `v` is `{"error":{"type":ty,"message":<string>,"status":N,"request_id":<string>}}`; returns N.
#[track_caller]
pub fn assert_error_json(v: &serde_json::Value, ty: &str) -> u64 {
    let err = v.get("error").unwrap_or_else(|| panic!("no \"error\" object: {v}"));
    assert_eq!(err.get("type").and_then(|t| t.as_str()), Some(ty), "error type: {v}");
    assert!(err.get("message").is_some_and(|m| m.is_string()), "error message must be a string: {v}");
    let status =
        err.get("status").and_then(|s| s.as_u64()).unwrap_or_else(|| panic!("no numeric status: {v}"));
    assert_eq!(v.as_object().map(|o| o.len()), Some(1), "only \"error\" at the top level: {v}");
    assert!(err.get("request_id").is_some_and(|m| m.is_string()), "error request_id must be a string: {v}");
    let n = err.as_object().map(|o| o.len());
    assert_eq!(n, Some(4), "error has exactly type, message, status, request_id: {v}");
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_blocks() {
        let b = parse(
            b": keepalive\n\nevent: error\ndata: {\"a\":1}\n\nid: 3\ndata: x\ndata: y\n\ndata: partial",
        );
        assert_eq!(b.len(), 3);
        assert!(b[0].is_heartbeat());
        assert_eq!(b[1].event.as_deref(), Some("error"));
        assert_eq!(b[2].data.as_deref(), Some("x\ny"));
        assert_eq!(b[2].id.as_deref(), Some("3"));
    }
}
