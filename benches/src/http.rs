//! Just enough HTTP/1.1 for the harness: request and response heads, body framing, `http://` URLs.

use std::net::SocketAddr;

/// How a message body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// `Content-Length`.
    Length(u64),
    /// Until the connection closes (responses only).
    Close,
}

/// A parsed request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method, e.g. `POST`.
    pub method: String,
    /// The request target, e.g. `/api/chat?n=10`.
    pub target: String,
    /// How the request body is delimited (`Length(0)` when there is none).
    pub body: Framing,
    /// The client asked to close the connection after this exchange (or spoke HTTP/1.0).
    pub close: bool,
}

/// A parsed response head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// How the response body is delimited.
    pub body: Framing,
    /// The `Content-Type`, if any.
    pub content_type: Option<String>,
}

/// The largest request or response head either binary reads; a peer sending more without ending its head is
/// answered with an error instead of growing the buffer.
pub const MAX_HEAD: usize = 64 * 1024;

/// Where the head ends: the index just past the blank line, if `buf` holds a whole head.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    memchr::memmem::find(buf, b"\r\n\r\n").map(|p| p + 4)
}

/// Header lines of a head (without the first line), as `(lowercase name, trimmed value)`.
fn headers(head: &str) -> impl Iterator<Item = (String, &str)> {
    head.split("\r\n").skip(1).filter_map(|line| {
        let (name, value) = line.split_once(':')?;
        Some((name.trim().to_ascii_lowercase(), value.trim()))
    })
}

fn framing(head: &str, default: Framing) -> Result<Framing, String> {
    let mut framing = default;
    for (name, value) in headers(head) {
        match name.as_str() {
            "transfer-encoding" if value.to_ascii_lowercase().contains("chunked") => {
                return Ok(Framing::Chunked)
            }
            "content-length" => {
                framing = Framing::Length(value.parse().map_err(|_| format!("bad Content-Length {value:?}"))?)
            }
            _ => {}
        }
    }
    Ok(framing)
}

/// Parses a request head (`buf[..head_end(buf)]`).
pub fn parse_request(head: &[u8]) -> Result<Request, String> {
    let head = std::str::from_utf8(head).map_err(|_| "request head is not UTF-8".to_string())?;
    let line = head.split("\r\n").next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("bad request line {line:?}"));
    };
    let mut close = version == "HTTP/1.0";
    for (name, value) in headers(head) {
        if name == "connection" {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    Ok(Request {
        method: method.to_string(),
        target: target.to_string(),
        body: framing(head, Framing::Length(0))?,
        close,
    })
}

/// Parses a response head (`buf[..head_end(buf)]`).
pub fn parse_response(head: &[u8]) -> Result<Response, String> {
    let head = std::str::from_utf8(head).map_err(|_| "response head is not UTF-8".to_string())?;
    let line = head.split("\r\n").next().unwrap_or_default();
    let status = line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}"))?;
    let content_type = headers(head).find(|(n, _)| n == "content-type").map(|(_, v)| v.to_string());
    Ok(Response { status, body: framing(head, Framing::Close)?, content_type })
}

/// An `http://host:port/path?query` URL with a literal IP address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// Address to connect to.
    pub addr: SocketAddr,
    /// The `Host` header value.
    pub host: String,
    /// Path and query.
    pub target: String,
}

impl Url {
    /// Parses `http://IP:PORT[/path][?query]`.
    pub fn parse(url: &str) -> Result<Url, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| format!("{url}: only http:// URLs"))?;
        let (host, target) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        let host = host.replace("localhost", "127.0.0.1");
        let addr = host.parse().map_err(|_| format!("{url}: host must be IP:PORT"))?;
        Ok(Url { addr, host, target })
    }

    /// A request head for this URL with a body of `body_len` bytes (`None`: no body).
    pub fn request(&self, method: &str, body_len: Option<usize>, extra_headers: &[String]) -> Vec<u8> {
        let mut head = format!(
            "{method} {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nConnection: close\r\n",
            self.target, self.host
        );
        if let Some(len) = body_len {
            head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {len}\r\n"));
        }
        for h in extra_headers {
            head.push_str(h);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        head.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn request_heads() {
        let raw = b"POST /api/chat?n=3 HTTP/1.1\r\nHost: x\r\ncontent-length: 12\r\n\r\n{\"a\":1}";
        let end = head_end(raw).unwrap();
        let r = parse_request(&raw[..end]).unwrap();
        assert_eq!((r.method.as_str(), r.target.as_str()), ("POST", "/api/chat?n=3"));
        assert_eq!(r.body, Framing::Length(12));
        assert!(!r.close);
        let r = parse_request(b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: Close\r\n\r\n")
            .unwrap();
        assert_eq!((r.body, r.close), (Framing::Chunked, true));
        assert!(parse_request(b"GET / HTTP/1.0\r\n\r\n").unwrap().close);
        assert!(parse_request(b"nonsense\r\n\r\n").is_err());
    }

    #[test]
    fn response_heads() {
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.body), (200, Framing::Chunked));
        assert_eq!(r.content_type.as_deref(), Some("text/event-stream"));
        let r = parse_response(b"HTTP/1.0 404 Not Found\r\nContent-Length: 5\r\n\r\n").unwrap();
        assert_eq!((r.status, r.body), (404, Framing::Length(5)));
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\n\r\n").unwrap().body, Framing::Close);
        assert!(parse_response(b"HTTP/2 200\r\n\r\n").is_err());
    }

    #[test]
    fn urls() {
        let u = Url::parse("http://127.0.0.1:8080/ollama/api/chat?n=5").unwrap();
        assert_eq!(u.addr.port(), 8080);
        assert_eq!(u.target, "/ollama/api/chat?n=5");
        assert_eq!(Url::parse("http://localhost:1").unwrap().target, "/");
        assert_eq!(Url::parse("http://127.0.0.1:1?x=1").unwrap().target, "/?x=1");
        assert!(Url::parse("https://127.0.0.1:1/").is_err());
        assert!(Url::parse("http://example.com/").is_err());
        let req = String::from_utf8(u.request("POST", Some(2), &["Authorization: Bearer k".into()])).unwrap();
        assert!(req.starts_with("POST /ollama/api/chat?n=5 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"));
        assert!(req.contains("Content-Length: 2\r\n") && req.ends_with("Authorization: Bearer k\r\n\r\n"));
    }
}
