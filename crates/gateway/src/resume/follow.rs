//! A resume request, served from the store and never from the upstream: a request carrying
//! `Last-Event-ID: <stream>.<seq>` on a resumable route's URL (what `EventSource` sends when it reconnects),
//! or `<path_prefix>/_streams/<stream>` with `Last-Event-ID` or `?after=<seq>` (fetch clients).
//!
//! What the reader gets (the rules that keep a browser's `EventSource` from looping, which reconnects after
//! every normal close and stops only on a non-200 answer or `204`):
//!
//! | the stream | answer |
//! |---|---|
//! | unknown id (never existed, removed, another route's, an id that does not parse) | `404` JSON `resume_unknown` |
//! | past its `ttl` | `410` JSON `resume_expired` |
//! | wrong or missing key (route with `auth`) | `401` `unauthorized` (no key) / `403` `forbidden` (another key) |
//! | `Last-Event-ID` at the stream's end, or `<stream>.end` | `204 No Content` |
//! | records after the seq are retained | `200`: replay, then follow the live tail until the stream's end |
//! | records after the seq are no longer retained (or the reader falls behind) | `200` + `event: error` `resume_gap`, `id: <stream>.end`, close |
//! | the owner stopped without an ending | `200` + replay + `event: error` `upstream_lost`, `id: <stream>.end`, close |
//!
//! A reader is its request's task: heartbeats and `write_timeout` apply as to any stream; its lag is
//! bounded by the store's retained window (a reader behind it gets `resume_gap`). It ends with the stream,
//! when the client leaves, or when the process starts shutting down (it reconnects elsewhere).

use http::HeaderValue;
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use ssegate_frame::encode::{Id, Output};
use ssegate_frame::Event;
use subtle::ConstantTimeEq;
use tokio::time::Instant;

use super::id::{self, LastEventId};
use super::store::{Ending, Next, Opened, Reader, Record, StreamId};
use crate::error::ErrorType;
use crate::exchange::downstream::{send_json_error_with, Downstream, WriteError};
use crate::exchange::{ClientWatch, End};
use crate::gateway::RouteState;
use crate::headers::Answer;
use crate::metrics::resume::{self as m, ResumeResult};

/// The path segment of `/_streams/<stream>`, after the route's prefix.
const STREAMS: &str = "/_streams/";

/// How often a store call made before the answer is committed (the open, the first read) is tried before the
/// reader is answered `503`: a browser's `EventSource` gives up for good on any status but `200` and `204`,
/// so a store that is slow for a moment — a thousand readers reconnecting at once after an upgrade — must not
/// end their streams. Each try is bounded by the store's own response timeout.
const FIRST_TRIES: u32 = 3;
/// The pause between those tries.
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);

/// What a resume request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// A stream, from a seq (or its terminal id).
    Stream(LastEventId),
    /// Something that cannot name a stream of ours (answered `resume_unknown`).
    Unknown,
    /// `/_streams/<stream>` with a malformed `?after=` (answered `bad_request`).
    BadAfter,
}

/// The request header `EventSource` sends on its reconnects.
pub const LAST_EVENT_ID: &str = "last-event-id";

/// Whether a request on a resumable route is a resume ([`detect`] without the details). `OPTIONS` never
/// is (a CORS preflight is answered by the edge).
pub fn is_resume(rest: &str, req: &pingora::http::RequestHeader) -> bool {
    if req.method == http::Method::OPTIONS {
        return false;
    }
    rest.starts_with(STREAMS)
        || req.headers.get(LAST_EVENT_ID).is_some_and(|v| !v.as_bytes().iter().all(u8::is_ascii_whitespace))
}

/// Whether a request on a resumable route is a resume, and of what: `rest` is its path after the route's
/// prefix, `last_event_id` its `Last-Event-ID` header. `None`: an ordinary request (a new stream).
pub fn detect(rest: &str, query: Option<&str>, last_event_id: Option<&HeaderValue>) -> Option<Ask> {
    let lei = last_event_id.map(|v| v.as_bytes()).filter(|v| !v.iter().all(u8::is_ascii_whitespace));
    if let Some(stream) = rest.strip_prefix(STREAMS) {
        let Some(stream) = StreamId::parse(stream) else { return Some(Ask::Unknown) };
        if let Some(v) = lei {
            // The header wins when it names this stream (EventSource sends it on its reconnects).
            if let Some(parsed) = id::parse(v).filter(|p| p.stream() == stream) {
                return Some(Ask::Stream(parsed));
            }
        }
        let after = query.and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("after=")));
        return match after {
            None => Some(Ask::Stream(LastEventId::After(stream, 0))),
            Some(a) => match id::parse_seq(a) {
                Some(seq) => Some(Ask::Stream(LastEventId::After(stream, seq))),
                None => Some(Ask::BadAfter),
            },
        };
    }
    let v = lei?;
    Some(id::parse(v).map_or(Ask::Unknown, Ask::Stream))
}

/// What a resume request did, for its metrics and access-log line.
#[derive(Debug)]
pub struct Followed {
    pub end: End,
    /// The seq the reader resumed after (`None`: refused before it was known).
    pub from: Option<u64>,
    /// Events sent from the store.
    pub events: u64,
    pub bytes_out: u64,
    pub heartbeats: u64,
}

impl Followed {
    /// `n` body bytes written (also in `ssegate_bytes_total{direction="downstream_out"}`).
    fn wrote(&mut self, n: usize, route: &RouteState) {
        if n > 0 {
            self.bytes_out += n as u64;
            route.metrics.bytes_out(n as u64);
        }
    }

    fn refused(ty: ErrorType, reusable: bool) -> Followed {
        Followed { end: End::Failed { ty, reusable }, from: None, events: 0, bytes_out: 0, heartbeats: 0 }
    }
}

/// What the reader needs from the request: its route, the client key's hash (routes with `auth`), the
/// output chosen by `Accept`, CORS and answer headers, and the process's shutdown watch.
#[derive(Debug)]
pub struct ReaderRequest<'a> {
    pub route: &'a RouteState,
    pub key_hash: Option<[u8; 32]>,
    pub output: Output,
    pub cors: &'a [(http::HeaderName, HeaderValue)],
    pub answer: &'a Answer,
    pub shutdown: ShutdownWatch,
}

/// Serves a resume request (its key, slot and body already admitted by the edge).
pub async fn serve(session: &mut ServerSession, req: ReaderRequest<'_>, ask: Ask) -> Followed {
    let route = req.route;
    let name = route.cfg.name.as_str();
    let ask = match ask {
        Ask::Stream(a) => a,
        Ask::Unknown => {
            m::request(name, ResumeResult::Miss);
            let msg = "no resumable stream has this id";
            return answer_error(session, &req, ErrorType::ResumeUnknown, msg).await;
        }
        Ask::BadAfter => {
            let msg = "?after= must be a sequence number (the <seq> of an id <stream>.<seq>)";
            return answer_error(session, &req, ErrorType::BadRequest, msg).await;
        }
    };
    let Some(store) = &route.resume else {
        return answer_error(session, &req, ErrorType::ResumeUnknown, "resume is off on this route").await;
    };
    let stream = ask.stream();
    let mut tries = 1;
    let opened = loop {
        match store.open(stream).await {
            Err(e) if tries < FIRST_TRIES => retry_later(&req, &e, &mut tries).await,
            opened => break opened,
        }
    };
    let (meta, reader) = match opened {
        Ok(Opened::Found(meta, reader)) if meta.route == route.cfg.name => (meta, reader),
        Ok(Opened::Found(..) | Opened::Unknown) => {
            m::request(name, ResumeResult::Miss);
            return answer_error(session, &req, ErrorType::ResumeUnknown, "no resumable stream has this id")
                .await;
        }
        Ok(Opened::Expired) => {
            m::request(name, ResumeResult::Expired);
            let msg = "the stream has expired (its ttl after the end has passed)";
            return answer_error(session, &req, ErrorType::ResumeExpired, msg).await;
        }
        Err(e) => return unavailable(session, &req, e).await,
    };
    if !same_key(meta.key_hash.as_ref(), req.key_hash.as_ref(), route.cfg.auth.is_some()) {
        m::request(name, ResumeResult::Forbidden);
        let msg = "this stream was started with another key";
        return answer_error(session, &req, ErrorType::Forbidden, msg).await;
    }
    let after = match ask {
        LastEventId::After(_, seq) => seq,
        LastEventId::End(_) => {
            m::request(name, ResumeResult::Hit);
            return no_content(session, &req, None).await;
        }
    };
    Box::pin(follow(session, req, stream, reader, after)).await
}

/// Whether the reader may read a stream started with `started` (a key hash, or none): the same key, or
/// neither had one on a route without `auth`. Constant time over the hash.
fn same_key(started: Option<&[u8; 32]>, presented: Option<&[u8; 32]>, auth: bool) -> bool {
    match (started, presented) {
        (Some(s), Some(p)) => bool::from(s.ct_eq(p)),
        (None, None) => !auth,
        _ => false,
    }
}

/// The reader's loop: replay, then follow, until the stream ends, the reader cannot go on, the client
/// leaves or the process shuts down.
async fn follow(
    session: &mut ServerSession,
    req: ReaderRequest<'_>,
    stream: StreamId,
    mut reader: Box<dyn Reader>,
    mut after: u64,
) -> Followed {
    let route = req.route;
    let name = route.cfg.name.as_str();
    let hex = stream.as_hex();
    let mut done =
        Followed { end: End::Completed, from: Some(after), events: 0, bytes_out: 0, heartbeats: 0 };
    let mut records: Vec<Record> = Vec::new();
    // The first read decides the answer's status (nothing is committed yet: a failure is answered as a
    // failed open is, never a close without an answer).
    let mut tries = 1;
    let first = loop {
        match reader.read(after, &mut records).await {
            Err(e) if tries < FIRST_TRIES => retry_later(&req, &e, &mut tries).await,
            read => break read,
        }
    };
    let first = match first {
        Ok(n) => n,
        Err(e) => {
            let mut f = unavailable(session, &req, e).await;
            f.from = Some(after);
            return f;
        }
    };
    if let Next::Ended { .. } = first {
        m::request(name, ResumeResult::Hit);
        return no_content(session, &req, Some(after)).await;
    }
    if let Next::Gone = first {
        m::request(name, ResumeResult::Expired);
        let msg = "the stream has expired (its ttl after the end has passed)";
        let mut f = answer_error(session, &req, ErrorType::ResumeExpired, msg).await;
        f.from = Some(after);
        return f;
    }
    m::request(name, if matches!(first, Next::Gap { .. }) { ResumeResult::Gap } else { ResumeResult::Hit });
    let mut down = Downstream::new(req.output, req.cors.to_vec(), req.answer.clone());
    if route.cfg.outputs.len() > 1 {
        down.vary_accept();
    }
    let stream_header = HeaderValue::from_bytes(&hex).ok();
    if down.commit_sse(session, None, stream_header).await.is_err() {
        done.end = End::ClientGone;
        return done;
    }
    let output = req.output;
    // As on the stream itself: NDJSON heartbeats (empty lines) only where the route asks for them.
    let heartbeat = match output {
        Output::Ndjson if !route.cfg.ndjson_heartbeats => None,
        _ => route.cfg.heartbeat_interval,
    };
    let mut shutdown = req.shutdown.clone();
    let mut client = ClientWatch::new();
    let mut next = Some(first);
    let terminal = loop {
        let step = match next.take() {
            Some(n) => n,
            None => {
                records.clear();
                match reader.read(after, &mut records).await {
                    Ok(n) => n,
                    Err(e) => return store_failed(session, &req, e, &mut done).await,
                }
            }
        };
        let terminal = match step {
            Next::Records => {
                for r in &records {
                    output.event_with_id(&r.event, Id::with_prefix(&hex, r.seq), down.out());
                }
                let n = records.len() as u64;
                after = records.last().map_or(after, |r| r.seq);
                records.clear();
                done.events += n;
                m::replayed(name, n);
                match down.flush(session).await {
                    Ok(w) => done.wrote(w, route),
                    Err(e) => return left(done, e, route),
                }
                continue;
            }
            Next::Pending => {
                let beat = heartbeat.map(|h| Instant::now() + h);
                let woke = tokio::select! {
                    r = reader.wait(after) => r.map(|()| Woke::Store),
                    _ = sleep_until(beat) => Ok(Woke::Heartbeat),
                    _ = client.gone(session) => Ok(Woke::ClientGone),
                    _ = crate::exchange::shutdown_turned(&mut shutdown) => Ok(Woke::Shutdown),
                };
                match woke {
                    Ok(Woke::Store) => {}
                    Ok(Woke::Heartbeat) => match down.heartbeat(session).await {
                        Ok(w) => {
                            done.wrote(w, route);
                            done.heartbeats += 1;
                            route.metrics.heartbeat();
                        }
                        Err(e) => return left(done, e, route),
                    },
                    Ok(Woke::ClientGone) => return left(done, WriteError::Gone, route),
                    Ok(Woke::Shutdown) => {
                        if *shutdown.borrow() {
                            // The reader reconnects (to this process's successor, or another instance).
                            break None;
                        }
                    }
                    Err(e) => return store_failed(session, &req, e, &mut done).await,
                }
                continue;
            }
            Next::Ended { how: Ending::Abandoned, .. } | Next::Lost => Some((
                ErrorType::UpstreamLost,
                "the stream's producer stopped before its end (no reader was attached, or its owner is gone)",
            )),
            Next::Ended { .. } => None,
            Next::Gap { .. } => {
                if done.events > 0 {
                    // Fell behind while following (a gap at the start was counted above).
                    m::request(name, ResumeResult::Gap);
                }
                Some((ErrorType::ResumeGap, "events after the last id are no longer retained"))
            }
            Next::Gone => Some((ErrorType::ResumeExpired, "the stream has expired while it was read")),
        };
        break terminal;
    };
    if let Some((ty, msg)) = terminal {
        // `id: <stream>.end`: a reconnect with it is answered 204.
        let body = crate::respond::json_body(ty, msg, ty.status(), req.answer.request_id());
        terminal_event(down.out(), output, ty, body, &hex);
        done.end = End::Failed { ty, reusable: true };
    }
    match down.finish(session).await {
        Some(w) => done.wrote(w, route),
        None => done.end = End::ClientGone,
    }
    done
}

enum Woke {
    Store,
    Heartbeat,
    ClientGone,
    Shutdown,
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Writes `event: error` with `body` and `id: <stream>.end`.
pub fn terminal_event(
    out: &mut bytes::BytesMut,
    output: Output,
    _ty: ErrorType,
    body: bytes::Bytes,
    hex: &[u8],
) {
    let mut id = Vec::with_capacity(hex.len() + 1 + id::END.len());
    id.extend_from_slice(hex);
    id.push(b'.');
    id.extend_from_slice(id::END.as_bytes());
    let ev = Event {
        name: Some(bytes::Bytes::from_static(b"error")),
        data: body,
        id: Some(bytes::Bytes::from(id)),
        retry: None,
    };
    output.event(&ev, out);
}

/// The client left (or stopped reading) while following.
fn left(mut done: Followed, e: WriteError, route: &RouteState) -> Followed {
    if e == WriteError::Slow {
        route.metrics.slow_client();
    }
    route.metrics.client_disconnect();
    done.end = End::ClientGone;
    done
}

/// One failed store call, in `ssegate_resume_store_errors_total{store}`.
fn count_store_error(req: &ReaderRequest<'_>) {
    m::store_error(req.route.resume.as_ref().map_or("memory", |s| s.kind()));
}

/// A store call before the answer failed and will be tried again: counted, logged, and a pause.
async fn retry_later(req: &ReaderRequest<'_>, e: &super::store::StoreError, tries: &mut u32) {
    count_store_error(req);
    tracing::info!(route = %req.route.cfg.name, error = %e, try = *tries, "resume store call failed; trying again");
    *tries += 1;
    tokio::time::sleep(RETRY_PAUSE).await;
}

/// The store failed before anything was committed (after [`FIRST_TRIES`]): counted, logged, and answered `503`
/// `upstream_unavailable` (a fetch client may retry later; a browser's `EventSource` stops).
async fn unavailable(
    session: &mut ServerSession,
    req: &ReaderRequest<'_>,
    e: super::store::StoreError,
) -> Followed {
    count_store_error(req);
    tracing::warn!(route = %req.route.cfg.name, error = %e, "resume store unavailable");
    let msg = "the resume store is unavailable; retry later";
    answer_error(session, req, ErrorType::UpstreamUnavailable, msg).await
}

/// The store failed while reading, after the answer was committed: counted, logged, and the response closed (the client reconnects with its
/// last id).
async fn store_failed(
    session: &mut ServerSession,
    req: &ReaderRequest<'_>,
    e: super::store::StoreError,
    done: &mut Followed,
) -> Followed {
    count_store_error(req);
    tracing::warn!(route = %req.route.cfg.name, error = %e, "resume store failed while reading");
    let _ = session.finish_body().await;
    Followed {
        end: End::Failed { ty: ErrorType::UpstreamUnavailable, reusable: false },
        from: done.from,
        events: done.events,
        bytes_out: done.bytes_out,
        heartbeats: done.heartbeats,
    }
}

/// A JSON error answer (nothing committed yet).
async fn answer_error(
    session: &mut ServerSession,
    req: &ReaderRequest<'_>,
    ty: ErrorType,
    msg: &str,
) -> Followed {
    let reusable = session.is_body_done();
    send_json_error_with(session, ty, msg, req.cors, req.answer).await;
    Followed::refused(ty, reusable)
}

/// `204 No Content`: nothing more will come (a browser's `EventSource` stops reconnecting).
async fn no_content(session: &mut ServerSession, req: &ReaderRequest<'_>, from: Option<u64>) -> Followed {
    let ok = crate::exchange::downstream::send_preflight(session, req.cors, req.answer).await;
    Followed { end: End::Completed, from, events: 0, bytes_out: 0, heartbeats: 0 }.reusable_if(ok)
}

impl Followed {
    fn reusable_if(mut self, ok: bool) -> Followed {
        if !ok {
            self.end = End::ClientGone;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: &str = "0123456789abcdef0123456789abcdef";

    fn id() -> StreamId {
        StreamId::parse(S).unwrap()
    }

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn detect_tells_resumes_from_new_streams() {
        let after = |seq| Some(Ask::Stream(LastEventId::After(id(), seq)));
        // Not a resume: no header (or a blank one) off the streams path.
        assert_eq!(detect("/chat", None, None), None);
        assert_eq!(detect("/chat", None, Some(&hv("  "))), None);
        // Last-Event-ID on the route's URL.
        assert_eq!(detect("/chat", Some("q=1"), Some(&hv(&format!("{S}.7")))), after(7));
        assert_eq!(
            detect("/", None, Some(&hv(&format!("{S}.end")))),
            Some(Ask::Stream(LastEventId::End(id())))
        );
        assert_eq!(detect("/chat", None, Some(&hv("42"))), Some(Ask::Unknown));
        // /_streams/<stream>: the header when it names this stream, else ?after=, else from the start.
        let path = format!("/_streams/{S}");
        assert_eq!(detect(&path, None, None), after(0));
        assert_eq!(detect(&path, Some("x=1&after=5"), None), after(5));
        assert_eq!(detect(&path, Some("after=5"), Some(&hv(&format!("{S}.9")))), after(9));
        let other = "ffffffffffffffffffffffffffffffff.3";
        assert_eq!(detect(&path, Some("after=5"), Some(&hv(other))), after(5));
        assert_eq!(detect(&path, Some("after=-1"), None), Some(Ask::BadAfter));
        assert_eq!(detect(&path, Some("after="), None), Some(Ask::BadAfter));
        assert_eq!(detect("/_streams/nope", None, None), Some(Ask::Unknown));
        assert_eq!(detect(&format!("{path}/x"), None, None), Some(Ask::Unknown));
    }

    #[test]
    fn only_the_same_key_reads_a_keyed_stream() {
        let a = super::id::key_hash(b"a");
        let b = super::id::key_hash(b"b");
        assert!(same_key(Some(&a), Some(&a), true));
        assert!(!same_key(Some(&a), Some(&b), true));
        assert!(!same_key(Some(&a), None, true));
        assert!(
            !same_key(Some(&a), None, false),
            "a stream started with a key needs it, whatever the route says now"
        );
        assert!(same_key(None, None, false));
        assert!(!same_key(None, None, true), "a stream started without a key on a route that now has auth");
        assert!(!same_key(None, Some(&a), true));
    }

    #[test]
    fn the_terminal_event_carries_the_end_id() {
        let mut out = bytes::BytesMut::new();
        terminal_event(
            &mut out,
            Output::Sse,
            ErrorType::ResumeGap,
            bytes::Bytes::from_static(b"{}"),
            S.as_bytes(),
        );
        assert_eq!(&out[..], format!("id: {S}.end\nevent: error\ndata: {{}}\n\n").as_bytes());
    }
}
