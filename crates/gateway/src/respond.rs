//! The bodies of ssegate's error reports:
//! `{"error":{"type":"<type>","message":"<text>","status":<N>,"request_id":"<id>"}}`,
//! as a JSON response body before the response is committed and as the data of the output's error message (`event: error`) after it.
//! Which type a failure has, and what status, outcome and counter follow from it, is [`crate::error`];
//! writing them to the client is [`crate::exchange::downstream`].

use bytes::Bytes;

use crate::error::ErrorType;

/// `{"error":{"type":..,"message":..,"status":..,"request_id":..}}`
/// The fields are written in the documented order (`type, message, status` first; later fields are only
/// ever appended); `message` is JSON-escaped with runs of whitespace folded. `request_id` is the request's
/// id ([`crate::headers::request_id`]: visible ASCII), JSON-escaped all the same.
pub fn json_body(ty: ErrorType, message: &str, status: u16, request_id: &str) -> Bytes {
    let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
    let message = serde_json::Value::String(message).to_string();
    let id = serde_json::Value::String(request_id.to_owned()).to_string();
    Bytes::from(format!(
        r#"{{"error":{{"type":"{}","message":{message},"status":{status},"request_id":{id}}}}}"#,
        ty.as_str()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_body_shape_and_escaping() {
        let b = json_body(ErrorType::UpstreamReset, "broke \"here\"\n", 502, "r\"1");
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["error"]["type"], "upstream_reset");
        assert_eq!(v["error"]["message"], "broke \"here\"");
        assert!(b.starts_with(br#"{"error":{"type":"upstream_reset","message":"#));
        assert!(b.ends_with(br#","status":502,"request_id":"r\"1"}}"#));
        assert_eq!(v["error"]["request_id"], "r\"1");
        assert_eq!(v["error"]["status"], 502);
        assert!(!b.contains(&b'\n'));
    }

    #[test]
    fn error_event_is_one_data_line() {
        let mut out = bytes::BytesMut::new();
        ssegate_frame::encode::Output::Sse
            .error(&json_body(ErrorType::Shutdown, "bye\r\nevent: x", 503, "id"), &mut out);
        let s = std::str::from_utf8(&out).unwrap();
        assert!(s.starts_with("event: error\ndata: {"));
        assert_eq!(s.matches('\n').count(), 3);
        assert!(s.ends_with("}\n\n"));
    }
}
