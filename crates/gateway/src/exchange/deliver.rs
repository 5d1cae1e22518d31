//! Delivery: decoded items to encoded output, with the route's event ids and its decode-error policy.
//! No I/O: what it encodes is written by the downstream writer in one flush. On a resumable stream every
//! event is also appended to the resume store ([`Recording`]) and written with `id: <stream>.<seq>`.

use bytes::BytesMut;
use ssegate_frame::encode::{Id, Output};
use ssegate_frame::{DecodeError, Item};

use super::record::Recording;
use crate::config::DecodeErrorPolicy;
use crate::metrics::RouteMetrics;
use crate::provider::Tracker;

/// The most decoded items kept allocated between reads.
const KEEP_ITEMS: usize = 64;

/// Per-stream delivery state.
#[derive(Debug)]
pub struct Delivery {
    output: Output,
    /// `ids = true`: number events `id: 1`, `id: 2`, … (replacing upstream ids).
    ids: bool,
    policy: DecodeErrorPolicy,
    next_id: u64,
    /// Bad upstream messages so far (only the first is logged at warn: a broken upstream cannot flood the log).
    /// `u32` (saturating): it packs with the small fields above, which keeps the exchange future's size.
    decode_errors: u32,
    /// `provider`: end marker, in-band errors, token usage.
    tracker: Option<Tracker>,
    /// `resume`: the stream's id and store writer (its ids replace `ids` and the upstream's).
    recording: Option<Box<Recording>>,
}

/// What one [`Delivery::deliver`] did.
#[derive(Debug, Default, PartialEq)]
pub struct Delivered {
    /// Events encoded.
    pub events: u64,
    /// A decode error that ends the stream (after the events before it).
    pub fatal: Option<DecodeError>,
}

impl Delivery {
    pub fn new(output: Output, ids: bool, policy: DecodeErrorPolicy) -> Delivery {
        Delivery { output, ids, policy, next_id: 0, decode_errors: 0, tracker: None, recording: None }
    }

    /// Records the stream for resume.
    pub fn record(&mut self, recording: Box<Recording>) {
        self.recording = Some(recording);
    }

    /// The resume recording, if the stream is resumable.
    pub fn recording(&mut self) -> Option<&mut Recording> {
        self.recording.as_deref_mut()
    }

    /// Encodes the route's `done_event` into `out` (recorded, with its resume id, on a resumable stream).
    pub fn done(&mut self, ev: &ssegate_frame::Event, out: &mut BytesMut) {
        match &mut self.recording {
            Some(rec) => self.output.event_with_id(ev, rec.append(ev), out),
            None => self.output.event(ev, out),
        }
    }

    /// After the client left (`detach`): `items` (drained) are recorded and observed as [`Delivery::deliver`]
    /// would deliver them, nothing is encoded.
    pub fn record_only(&mut self, items: &mut Vec<Item>, metrics: &RouteMetrics) -> Delivered {
        let mut done = Delivered::default();
        for item in items.drain(..) {
            match item {
                Item::Event(ev) => {
                    if let Some(t) = &mut self.tracker {
                        t.observe(&ev);
                    }
                    if let Some(rec) = &mut self.recording {
                        rec.append(&ev);
                    }
                    done.events += 1;
                }
                Item::Comment(_) | Item::Retry(_) => {}
                Item::Error(e) => {
                    if let Some(fatal) = self.bad_message(e, metrics) {
                        done.fatal = Some(fatal);
                        break;
                    }
                }
            }
        }
        items.clear();
        done
    }

    /// Counts and logs a bad message; returns it when it ends the stream.
    fn bad_message(&mut self, e: DecodeError, metrics: &RouteMetrics) -> Option<DecodeError> {
        metrics.decode_error(&e);
        self.decode_errors = self.decode_errors.saturating_add(1);
        if self.decode_errors == 1 {
            tracing::warn!(route = metrics.name(), kind = e.kind(), error = %e,
                "bad upstream message (further ones of this stream are logged at debug)");
        } else {
            tracing::debug!(route = metrics.name(), kind = e.kind(), error = %e, "bad upstream message");
        }
        (!e.recoverable() || self.policy == DecodeErrorPolicy::Close).then_some(e)
    }

    /// Watches the events for the route's provider (see [`crate::provider`]).
    pub fn tracking(mut self, tracker: Option<Tracker>) -> Delivery {
        self.tracker = tracker;
        self
    }

    /// The client's output format.
    pub fn output(&self) -> Output {
        self.output
    }

    /// The provider tracker, if the route has a provider.
    pub fn tracker(&self) -> Option<&Tracker> {
        self.tracker.as_ref()
    }

    /// Encodes `items` (draining them) into `out`. Bad messages are counted and logged; one that the policy
    /// (or the decoder) makes fatal stops the batch: the events before it are delivered, nothing after it.
    pub fn deliver(
        &mut self,
        items: &mut Vec<Item>,
        out: &mut BytesMut,
        metrics: &RouteMetrics,
    ) -> Delivered {
        let mut done = Delivered::default();
        for item in items.drain(..) {
            match item {
                Item::Event(ev) => {
                    if let Some(t) = &mut self.tracker {
                        t.observe(&ev);
                    }
                    if let Some(rec) = &mut self.recording {
                        self.output.event_with_id(&ev, rec.append(&ev), out);
                    } else if self.ids {
                        self.next_id += 1;
                        self.output.event_with_id(&ev, Id::new(self.next_id), out);
                    } else {
                        self.output.event(&ev, out);
                    }
                    done.events += 1;
                }
                Item::Comment(text) => self.output.comment(&text, out),
                Item::Retry(ms) => self.output.retry(ms, out),
                Item::Error(e) => {
                    if let Some(fatal) = self.bad_message(e, metrics) {
                        done.fatal = Some(fatal);
                        break;
                    }
                }
            }
        }
        if items.capacity() > KEEP_ITEMS {
            *items = Vec::new();
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use ssegate_frame::Event;

    use super::*;

    fn ev(data: &str, id: Option<&str>) -> Item {
        Item::Event(Event {
            data: Bytes::from(data.to_owned()),
            id: id.map(|i| Bytes::from(i.to_owned())),
            ..Event::default()
        })
    }

    fn bad(recoverable: bool) -> Item {
        Item::Error(DecodeError::MalformedJson { reason: "x", recoverable })
    }

    #[test]
    fn ids_replace_upstream_ids_and_continue_across_batches() {
        let m = crate::metrics::route("t_deliver_ids");
        let mut d = Delivery::new(Output::Sse, true, DecodeErrorPolicy::Skip);
        let mut out = BytesMut::new();
        let mut items = vec![ev("a", Some("up-7")), Item::Comment(Bytes::from_static(b"c")), ev("b", None)];
        assert_eq!(d.deliver(&mut items, &mut out, &m), Delivered { events: 2, fatal: None });
        let mut items = vec![ev("c", None)];
        d.deliver(&mut items, &mut out, &m);
        assert_eq!(&out[..], b"id: 1\ndata: a\n\n: c\n\nid: 2\ndata: b\n\nid: 3\ndata: c\n\n");
        assert!(items.is_empty());
    }

    #[test]
    fn without_ids_upstream_ids_pass() {
        let m = crate::metrics::route("t_deliver_noids");
        let mut d = Delivery::new(Output::Sse, false, DecodeErrorPolicy::Skip);
        let mut out = BytesMut::new();
        d.deliver(&mut vec![ev("a", Some("7")), Item::Retry(1500)], &mut out, &m);
        assert_eq!(&out[..], b"id: 7\ndata: a\n\nretry: 1500\n\n");
    }

    #[test]
    fn skip_policy_drops_bad_messages_and_goes_on() {
        let m = crate::metrics::route("t_deliver_skip");
        let mut d = Delivery::new(Output::Sse, false, DecodeErrorPolicy::Skip);
        let mut out = BytesMut::new();
        let got = d.deliver(&mut vec![ev("a", None), bad(true), ev("b", None)], &mut out, &m);
        assert_eq!(got, Delivered { events: 2, fatal: None });
        assert_eq!(&out[..], b"data: a\n\ndata: b\n\n");
    }

    #[test]
    fn close_policy_and_unrecoverable_errors_stop_after_the_events_before() {
        let m = crate::metrics::route("t_deliver_close");
        for (policy, recoverable) in [(DecodeErrorPolicy::Close, true), (DecodeErrorPolicy::Skip, false)] {
            let mut d = Delivery::new(Output::Sse, false, policy);
            let mut out = BytesMut::new();
            let got = d.deliver(&mut vec![ev("a", None), bad(recoverable), ev("b", None)], &mut out, &m);
            assert_eq!(got.events, 1);
            assert!(got.fatal.is_some());
            assert_eq!(&out[..], b"data: a\n\n");
        }
    }

    #[test]
    fn a_large_item_list_is_not_kept() {
        let m = crate::metrics::route("t_deliver_keep");
        let mut d = Delivery::new(Output::Sse, false, DecodeErrorPolicy::Skip);
        let mut items: Vec<Item> = (0..1000).map(|i| ev(&i.to_string(), None)).collect();
        let mut out = BytesMut::new();
        d.deliver(&mut items, &mut out, &m);
        assert!(items.capacity() <= KEEP_ITEMS);
    }
}
