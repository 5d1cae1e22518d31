//! DNS (issue 17): upstream host names are resolved through `[server] dns_servers` with a cache that honours
//! each answer's TTL, a failed lookup is remembered for 5 s (`upstream::dns::NEGATIVE_TTL`), and a DNS
//! failure is a `502` JSON `upstream_dns`, counted. The name server is a small responder written here, on
//! 127.0.0.1 (UDP, ephemeral port), that counts the queries it gets: the assertions are on those counts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ssegate_tests::metrics::Scrape;
use ssegate_tests::{bounded, expect_json_error, get, Gateway, MockUpstream, Reply, Step};
use ssegate_tests::{GatewaySpec, RouteSpec};
use tokio::net::UdpSocket;

/// The failed-lookup memory of the gateway (`upstream::dns::NEGATIVE_TTL`).
const NEGATIVE_TTL: Duration = Duration::from_secs(5);

/// What the responder answers for a name.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// One `A` record with this TTL (seconds); `AAAA` gets an empty `NOERROR`.
    A(Ipv4Addr, u32),
    /// `NXDOMAIN`, without an SOA (nothing to derive a negative TTL from).
    NxDomain,
    /// `SERVFAIL`.
    ServFail,
    /// No answer at all.
    Silent,
}

#[derive(Debug, Default)]
struct Zone {
    answers: HashMap<String, Answer>,
    /// Queries seen per lower-case name (every type), and when the last `A` answer was sent per name.
    queries: HashMap<String, usize>,
    answered_at: HashMap<String, Instant>,
}

/// A UDP name server on 127.0.0.1 answering from a table it can be told to change.
#[derive(Debug, Clone)]
struct Responder {
    addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
}

impl Responder {
    async fn start(answers: &[(&str, Answer)]) -> Responder {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let zone = Arc::new(Mutex::new(Zone::default()));
        let r = Responder { addr, zone: zone.clone() };
        for (name, a) in answers {
            r.set(name, *a);
        }
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            loop {
                let Ok((n, from)) = sock.recv_from(&mut buf).await else { return };
                let Some((name, qtype, question_end)) = parse_query(&buf[..n]) else { continue };
                let answer = {
                    let mut z = zone.lock().unwrap();
                    *z.queries.entry(name.clone()).or_default() += 1;
                    let a = z.answers.get(&name).copied().unwrap_or(Answer::NxDomain);
                    if matches!(a, Answer::A(..)) && qtype == 1 {
                        z.answered_at.insert(name.clone(), Instant::now());
                    }
                    a
                };
                if let Some(reply) = build_reply(&buf[..question_end], qtype, answer) {
                    let _ = sock.send_to(&reply, from).await;
                }
            }
        });
        r
    }

    fn set(&self, name: &str, a: Answer) {
        self.zone.lock().unwrap().answers.insert(name.to_ascii_lowercase(), a);
    }

    fn queries(&self, name: &str) -> usize {
        self.zone.lock().unwrap().queries.get(name).copied().unwrap_or(0)
    }

    fn answered_at(&self, name: &str) -> Instant {
        self.zone.lock().unwrap().answered_at[name]
    }
}

/// The lower-case name, the type and the end of the (single) question of a standard query.
fn parse_query(msg: &[u8]) -> Option<(String, u16, usize)> {
    if msg.len() < 12 || msg[2] & 0x80 != 0 || u16::from_be_bytes([msg[4], msg[5]]) != 1 {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *msg.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(msg.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*msg.get(i)?, *msg.get(i + 1)?]);
    Some((labels.join("."), qtype, i + 4))
}

/// The reply to `query` (header and question, as received), or `None` to stay silent.
fn build_reply(query: &[u8], qtype: u16, answer: Answer) -> Option<Vec<u8>> {
    let rcode = match answer {
        Answer::Silent => return None,
        Answer::A(..) => 0,
        Answer::NxDomain => 3,
        Answer::ServFail => 2,
    };
    let mut out = query.to_vec();
    // QR, the query's opcode and RD, RA; the rcode; one question, no authority or additional records.
    out[2] = 0x80 | (query[2] & 0x79);
    out[3] = 0x80 | rcode;
    out[6..12].copy_from_slice(&[0, 0, 0, 0, 0, 0]);
    if let (Answer::A(ip, ttl), 1) = (answer, qtype) {
        out[7] = 1;
        out.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]); // the question's name, A, IN
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&[0, 4]);
        out.extend_from_slice(&ip.octets());
    }
    Some(out)
}

fn sse_upstream() -> Reply {
    Reply::stream("application/x-ndjson", vec![Step::send("{\"a\":1}\n"), Step::End])
}

async fn gateway(dns: &Responder, upstream_url: &str) -> Gateway {
    GatewaySpec::new()
        .server(|s| s.set("dns_servers", ssegate_tests::Toml::strs([dns.addr.to_string()])))
        .route(RouteSpec::new("r").upstream(upstream_url).connect_timeout("1s").heartbeat("5s"))
        .start()
        .await
}

fn dns_errors(s: &Scrape) -> f64 {
    s.value("ssegate_upstream_errors_total", &[("route", "r"), ("kind", "upstream_dns")])
}

#[tokio::test]
async fn an_answer_is_cached_for_its_ttl_and_a_changed_one_is_used_after_it() {
    bounded(async {
        const TTL: u32 = 4;
        let name = "svc.ssegate.test";
        let mock = MockUpstream::serve(sse_upstream()).await;
        let dns = Responder::start(&[(name, Answer::A(Ipv4Addr::LOCALHOST, TTL))]).await;
        let gw = gateway(&dns, &format!("http://{name}:{}", mock.addr().port())).await;

        let mut first = get(gw.addr(), "/r").await;
        let body = first.body_to_end().await;
        assert_eq!(first.status, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(dns.queries(name), 1, "one query for the first request");
        // The name now points where nothing listens: a request that used it would be refused (502).
        dns.set(name, Answer::A(Ipv4Addr::new(127, 0, 0, 2), TTL));
        let answered = dns.answered_at(name);
        let mut second = get(gw.addr(), "/r").await;
        assert!(
            answered.elapsed() < Duration::from_secs(TTL.into()),
            "the second request came after the TTL"
        );
        assert_eq!(second.status, 200, "within the TTL the cached answer is used");
        assert_eq!(dns.queries(name), 1, "within the TTL nothing is asked again");
        second.body_to_end().await;

        tokio::time::sleep_until((answered + Duration::from_millis(u64::from(TTL) * 1000 + 300)).into())
            .await;
        let mut third = get(gw.addr(), "/r").await;
        expect_json_error(&mut third, 502, "upstream_connect").await;
        assert_eq!(dns.queries(name), 2, "the expired answer was asked for again, once");
        let mut fourth = get(gw.addr(), "/r").await;
        expect_json_error(&mut fourth, 502, "upstream_connect").await;
        assert_eq!(dns.queries(name), 2, "and the new answer is cached in turn");
    })
    .await;
}

#[tokio::test]
async fn a_failed_lookup_is_remembered_briefly_and_is_a_counted_502() {
    bounded(async {
        let mock = MockUpstream::serve(sse_upstream()).await;
        let name = "gone.ssegate.test";
        let dns = Responder::start(&[(name, Answer::NxDomain)]).await;
        let gw = gateway(&dns, &format!("http://{name}:{}", mock.addr().port())).await;

        let mut first = get(gw.addr(), "/r").await;
        let failed_at = Instant::now();
        expect_json_error(&mut first, 502, "upstream_dns").await;
        let after_first = dns.queries(name);
        assert!(after_first >= 1);
        // The name is fixed at once, but the failure is remembered: still a 502, no new query.
        dns.set(name, Answer::A(Ipv4Addr::LOCALHOST, 60));
        let mut second = get(gw.addr(), "/r").await;
        assert!(failed_at.elapsed() < NEGATIVE_TTL, "the second request came after the negative TTL");
        expect_json_error(&mut second, 502, "upstream_dns").await;
        assert_eq!(dns.queries(name), after_first, "a remembered failure asks nobody");
        tokio::time::sleep_until((failed_at + NEGATIVE_TTL + Duration::from_millis(300)).into()).await;
        let mut third = get(gw.addr(), "/r").await;
        assert_eq!(third.status, 200, "after the negative TTL the fixed name is used");
        third.body_to_end().await;
        assert!(dns.queries(name) > after_first);
        let s = Scrape::until(gw.admin_addr(), |s| dns_errors(s) >= 2.0).await;
        assert_eq!(dns_errors(&s), 2.0);
        assert_eq!(
            s.value("ssegate_upstream_errors_total", &[("route", "r"), ("kind", "upstream_connect")]),
            0.0
        );
    })
    .await;
}

#[tokio::test]
async fn a_failing_or_silent_name_server_is_a_counted_502_within_the_connect_timeout() {
    bounded(async {
        let mock = MockUpstream::serve(sse_upstream()).await;
        let port = mock.addr().port();
        let dns = Responder::start(&[
            ("fail.ssegate.test", Answer::ServFail),
            ("mute.ssegate.test", Answer::Silent),
        ])
        .await;
        let gw = GatewaySpec::new()
            .server(|s| s.set("dns_servers", ssegate_tests::Toml::strs([dns.addr.to_string()])))
            .route(
                RouteSpec::new("fail").upstream(&format!("http://fail.ssegate.test:{port}")).heartbeat("5s"),
            )
            .route(
                RouteSpec::new("mute")
                    .upstream(&format!("http://mute.ssegate.test:{port}"))
                    .connect_timeout("500ms")
                    .heartbeat("5s"),
            )
            .start()
            .await;
        let mut resp = get(gw.addr(), "/fail").await;
        let body = resp.body_to_end().await;
        assert_eq!(resp.status, 502);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["type"], "upstream_dns");
        assert_eq!(v["error"]["message"], "the upstream's host name could not be resolved");
        assert!(
            !String::from_utf8_lossy(&body).contains("ssegate.test"),
            "the host name is for the log only"
        );
        assert!(dns.queries("fail.ssegate.test") >= 1);
        // A name server that never answers: the lookup ends with the route's connect_timeout.
        let mut resp = get(gw.addr(), "/mute").await;
        expect_json_error(&mut resp, 502, "upstream_dns").await;
        assert!(dns.queries("mute.ssegate.test") >= 1);
        let kind = |s: &Scrape, r: &str| {
            s.value("ssegate_upstream_errors_total", &[("route", r), ("kind", "upstream_dns")])
        };
        let s = Scrape::until(gw.admin_addr(), |s| kind(s, "fail") >= 1.0 && kind(s, "mute") >= 1.0).await;
        assert_eq!((kind(&s, "fail"), kind(&s, "mute")), (1.0, 1.0));
        assert!(gw.stderr().contains("fail.ssegate.test"), "the log names the host: {}", gw.stderr());
    })
    .await;
}
