//! What a reverse proxy keeps that is not framing (issue 18): the upstream's end-to-end response headers
//! on converted streams, a route's `response_headers`, one request id end to end, `X-Forwarded-*` by
//! `[server] trusted_proxies`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use ssegate_tests::{
    assert_sse_head, bounded, get, request, show, sse, Gateway, GatewaySpec, MockUpstream, Reply, RouteSpec,
    Step, Toml,
};

/// Headers the upstream sends on every stream of these tests: end-to-end ones the client must get, and
/// ones a conversion or the hop must drop.
fn with_upstream_headers(reply: Reply) -> Reply {
    reply
        .with_header("X-Request-Id", "req_up_1")
        .with_header("Set-Cookie", "a=1; Path=/")
        .with_header("Set-Cookie", "b=2; Path=/")
        .with_header("Retry-After", "7")
        .with_header("x-ratelimit-remaining-requests", "99")
        .with_header("anthropic-ratelimit-tokens-remaining", "5000")
        .with_header("Access-Control-Allow-Origin", "https://app.example")
        .with_header("ETag", "\"abc\"")
        .with_header("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")
        .with_header("Accept-Ranges", "bytes")
        .with_header("Content-MD5", "Q2hlY2sgSW50ZWdyaXR5IQ==")
        .with_header("Content-Encoding", "identity")
        .with_header("Cache-Control", "max-age=60")
        .with_header("Connection", "x-hop")
        .with_header("X-Hop", "1")
        .with_header("Keep-Alive", "timeout=5")
}

/// The access line whose `request_id` is `id` (waits up to 3 s for it).
async fn access_line(gw: &Gateway, id: &str) -> serde_json::Value {
    let t = Instant::now();
    loop {
        let found = gw
            .log_lines()
            .into_iter()
            .find(|l| l.get("outcome").is_some() && l.get("request_id").and_then(|v| v.as_str()) == Some(id));
        if let Some(l) = found {
            return l;
        }
        if t.elapsed() > Duration::from_secs(3) {
            panic!("no access line with request_id {id:?}; log:\n{}", gw.stderr());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn is_generated_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[tokio::test]
async fn converted_streams_carry_the_upstreams_end_to_end_headers() {
    bounded(async {
        let cases = [
            ("ndjson", Reply::stream("application/x-ndjson", vec![Step::send("{\"a\":1}\n"), Step::End])),
            ("sse", Reply::stream("text/event-stream", vec![Step::send("data: {\"a\":1}\n\n"), Step::End])),
            ("json-array", Reply::full(200, "application/json", "[{\"a\":1}]")),
        ];
        for (format, reply) in cases {
            let mock = MockUpstream::serve(with_upstream_headers(reply)).await;
            let gw =
                GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock).format(format)).start().await;
            let mut resp = get(gw.addr(), "/r").await;
            let body = resp.body_to_end().await;
            assert_sse_head(&resp);
            assert_eq!(body, b"data: {\"a\":1}\n\n", "{format}: {}", show(&body));
            let h = |n: &str| resp.header(n);
            assert_eq!(h("x-request-id"), Some("req_up_1"), "{format}: {:?}", resp.headers);
            assert_eq!(resp.header_all("set-cookie"), ["a=1; Path=/", "b=2; Path=/"], "{format}: not merged");
            assert_eq!(h("retry-after"), Some("7"), "{format}");
            assert_eq!(h("x-ratelimit-remaining-requests"), Some("99"), "{format}");
            assert_eq!(h("anthropic-ratelimit-tokens-remaining"), Some("5000"), "{format}");
            // No CORS on the route: the service's own CORS headers pass.
            assert_eq!(h("access-control-allow-origin"), Some("https://app.example"), "{format}");
            // The gateway's streaming headers win; what the conversion falsifies and hop-by-hop never pass.
            assert_eq!(resp.header_all("cache-control"), ["no-cache, no-transform"], "{format}");
            assert_eq!(resp.header_all("content-type").len(), 1, "{format}");
            for gone in [
                "etag",
                "last-modified",
                "accept-ranges",
                "content-md5",
                "content-encoding",
                "content-length",
            ] {
                assert_eq!(h(gone), None, "{format}: {gone} must be dropped: {:?}", resp.headers);
            }
            for hop in ["x-hop", "keep-alive"] {
                assert_eq!(h(hop), None, "{format}: hop-by-hop {hop}: {:?}", resp.headers);
            }
            assert!(h("connection").is_none_or(|v| !v.contains("x-hop")), "{format}: {:?}", resp.headers);
        }
    })
    .await;
}

fn policy() -> Toml {
    Toml::table([
        ("remove", Toml::strs(["Server", "x-internal-*"])),
        ("set", Toml::table([("x-served-by", "ssegate"), ("x-ratelimit-limit", "override")])),
    ])
}

#[tokio::test]
async fn response_headers_remove_and_set_on_every_answer_of_the_route() {
    bounded(async {
        let extra = |r: Reply| {
            r.with_header("Server", "upstream/1.0")
                .with_header("X-Internal-A", "1")
                .with_header("x-internal-b", "2")
                .with_header("x-keep", "yes")
                .with_header("x-ratelimit-limit", "10")
        };
        let conv = MockUpstream::serve(extra(Reply::stream(
            "application/x-ndjson",
            vec![Step::send("{\"a\":1}\n"), Step::End],
        )))
        .await;
        let pass = MockUpstream::serve(extra(Reply::full(200, "text/plain", "hello"))).await;
        let dead = "http://127.0.0.1:1";
        let gw = GatewaySpec::new()
            .route(RouteSpec::new("conv").upstream(&conv).set("response_headers", policy()))
            .route(RouteSpec::new("pass").upstream(&pass).set("response_headers", policy()))
            .route(RouteSpec::new("dead").upstream(dead).set("response_headers", policy()))
            .start()
            .await;
        for path in ["/conv", "/pass"] {
            let mut resp = get(gw.addr(), path).await;
            let body = resp.body_to_end().await;
            assert_eq!(resp.status, 200, "{path}: {}", show(&body));
            let h = |n: &str| resp.header(n);
            assert_eq!(h("server"), None, "{path}: {:?}", resp.headers);
            assert_eq!(h("x-internal-a"), None, "{path}: {:?}", resp.headers);
            assert_eq!(h("x-internal-b"), None, "{path}: {:?}", resp.headers);
            assert_eq!(h("x-keep"), Some("yes"), "{path}: {:?}", resp.headers);
            assert_eq!(h("x-served-by"), Some("ssegate"), "{path}");
            assert_eq!(resp.header_all("x-ratelimit-limit"), ["override"], "{path}: set replaces");
            assert!(h("x-request-id").is_some_and(is_generated_id), "{path}: {:?}", resp.headers);
        }
        // The route's JSON errors get `set` too.
        let mut resp = get(gw.addr(), "/dead").await;
        resp.body_to_end().await;
        assert_eq!(resp.status, 502);
        assert_eq!(resp.header("x-served-by"), Some("ssegate"), "{:?}", resp.headers);
    })
    .await;
}

#[tokio::test]
async fn early_commit_has_no_upstream_headers_but_the_request_id_and_logs_the_upstreams() {
    bounded(async {
        let reply = Reply::stream("application/x-ndjson", vec![Step::send("{\"a\":1}\n"), Step::End])
            .with_header("X-Request-Id", "req_late")
            .with_header("Set-Cookie", "late=1")
            .with_head_delay(Duration::from_millis(600));
        let mock = MockUpstream::serve(reply).await;
        let gw = GatewaySpec::new()
            .route(RouteSpec::new("r").upstream(&mock).heartbeat("100ms"))
            .args(["--log-format", "json"])
            .start()
            .await;
        let mut resp = get(gw.addr(), "/r").await;
        let body = resp.body_to_end().await;
        assert_sse_head(&resp);
        assert!(body.starts_with(b": keepalive"), "committed early: {}", show(&body));
        assert!(body.ends_with(b"data: {\"a\":1}\n\n"), "{}", show(&body));
        // The head left before the upstream's existed: none of its headers, the gateway's request id.
        assert_eq!(resp.header("set-cookie"), None, "{:?}", resp.headers);
        let id = resp.header("x-request-id").unwrap().to_string();
        assert!(is_generated_id(&id), "{id}");
        let line = access_line(&gw, &id).await;
        assert_eq!(line["upstream_request_id"], "req_late", "{line}");
    })
    .await;
}

#[tokio::test]
async fn request_id_generated_kept_or_replaced_and_the_same_everywhere() {
    bounded(async {
        let mock = MockUpstream::serve(Reply::stream(
            "application/x-ndjson",
            vec![Step::send("{\"a\":1}\n"), Step::End],
        ))
        .await;
        let gw = GatewaySpec::new()
            .route(RouteSpec::new("r").upstream(&mock))
            .args(["--log-format", "json"])
            .start()
            .await;
        let long = "x".repeat(129);
        let cases: [(Option<&str>, bool); 5] = [
            (None, false),
            (Some("client-id_1.2:3"), true),
            (Some("bad id"), false),
            (Some(long.as_str()), false),
            (Some("caf\u{e9}"), false),
        ];
        for (i, (given, kept)) in cases.into_iter().enumerate() {
            let headers: Vec<(&str, &str)> = given.map(|g| ("X-Request-Id", g)).into_iter().collect();
            let mut resp = request(gw.addr(), "GET", "/r", &headers, b"").await;
            resp.body_to_end().await;
            assert_eq!(resp.status, 200);
            let id = resp.header("x-request-id").unwrap().to_string();
            if kept {
                assert_eq!(Some(id.as_str()), given);
            } else {
                assert!(is_generated_id(&id), "{given:?} -> {id}");
            }
            assert!(mock.wait_requests(i + 1, Duration::from_secs(3)).await);
            let up = &mock.requests()[i];
            assert_eq!(up.header_all("x-request-id"), [id.as_str()], "sent upstream once");
            let line = access_line(&gw, &id).await;
            assert_eq!(line["route"], "r", "{line}");
            assert!(line.get("upstream_request_id").is_none(), "the mock sends none: {line}");
        }
        let a = resp_id(&gw, &[]).await;
        let b = resp_id(&gw, &[]).await;
        assert_ne!(a, b, "a new id per request");
    })
    .await;
}

async fn resp_id(gw: &Gateway, headers: &[(&str, &str)]) -> String {
    let mut resp = request(gw.addr(), "GET", "/r", headers, b"").await;
    resp.body_to_end().await;
    resp.header("x-request-id").unwrap().to_string()
}

#[tokio::test]
async fn request_id_in_json_errors_error_events_and_refusals_before_a_route() {
    bounded(async {
        let reset = MockUpstream::serve(Reply::stream(
            "application/x-ndjson",
            vec![Step::send("{\"a\":1}\n"), Step::Sleep(30), Step::Reset],
        ))
        .await;
        let gw = GatewaySpec::new()
            .route(RouteSpec::new("dead").upstream("http://127.0.0.1:1"))
            .route(RouteSpec::new("reset").upstream(&reset))
            .args(["--log-format", "json"])
            .start()
            .await;
        // A JSON error of the route (502), a 404 before any route, a 400 for a bad target: header and body agree.
        for (path, status, given) in
            [("/dead", 502, Some("mine-1")), ("/nowhere", 404, None), ("/dead/../x", 400, Some("mine-2"))]
        {
            let headers: Vec<(&str, &str)> = given.map(|g| ("x-request-id", g)).into_iter().collect();
            let mut resp = request(gw.addr(), "GET", path, &headers, b"").await;
            let body = resp.body_to_end().await;
            assert_eq!(resp.status, status, "{path}: {}", show(&body));
            let id = resp.header("x-request-id").unwrap_or_else(|| panic!("{path}: {:?}", resp.headers));
            if let Some(g) = given {
                assert_eq!(id, g, "{path}");
            } else {
                assert!(is_generated_id(id), "{path}: {id}");
            }
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["error"]["request_id"], id, "{path}: {v}");
        }
        let line = access_line(&gw, "mine-1").await;
        assert_eq!(line["error"], "upstream_connect", "{line}");

        // An error event after events: the same id in its data.
        let mut resp = request(gw.addr(), "GET", "/reset", &[("X-Request-Id", "mine-3")], b"").await;
        let body = resp.body_to_end().await;
        assert_eq!(resp.header("x-request-id"), Some("mine-3"));
        let blocks = sse::parse(&body);
        let err = blocks.last().unwrap_or_else(|| panic!("{}", show(&body)));
        sse::assert_error_event(err, "upstream_reset");
        assert_eq!(err.json()["error"]["request_id"], "mine-3", "{}", show(&body));
    })
    .await;
}

#[tokio::test]
async fn x_forwarded_for_is_replaced_from_untrusted_peers_and_extended_from_trusted_ones() {
    bounded(async {
        let spoofed = [
            ("X-Forwarded-For", "6.6.6.6"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "evil.example"),
            ("Forwarded", "for=6.6.6.6"),
            ("X-Real-IP", "6.6.6.6"),
            ("X-Request-Id", "xff-1"),
        ];
        for trusted in [false, true] {
            let mock = MockUpstream::serve(Reply::stream(
                "application/x-ndjson",
                vec![Step::send("{\"a\":1}\n"), Step::End],
            ))
            .await;
            let mut spec =
                GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock)).args(["--log-format", "json"]);
            if trusted {
                spec = spec.server(|s| s.set("trusted_proxies", Toml::strs(["127.0.0.0/8", "::1"])));
            }
            let gw = spec.start().await;
            let mut resp = request(gw.addr(), "GET", "/r", &spoofed, b"").await;
            resp.body_to_end().await;
            assert_eq!(resp.status, 200);
            assert!(mock.wait_requests(1, Duration::from_secs(3)).await);
            let up = &mock.requests()[0];
            let line = access_line(&gw, "xff-1").await;
            let host = up.header("x-forwarded-host").unwrap_or_default().to_string();
            if trusted {
                assert_eq!(up.header_all("x-forwarded-for"), ["6.6.6.6, 127.0.0.1"]);
                assert_eq!(up.header("x-forwarded-proto"), Some("https"));
                assert_eq!(host, "evil.example");
                assert_eq!(line["client"], "6.6.6.6", "{line}");
                assert_eq!(up.header("forwarded"), Some("for=6.6.6.6"));
                assert_eq!(up.header("x-real-ip"), Some("6.6.6.6"));
            } else {
                assert_eq!(up.header_all("x-forwarded-for"), ["127.0.0.1"], "the client's own is replaced");
                assert_eq!(up.header("x-forwarded-proto"), Some("http"));
                assert_eq!(host, gw.addr().to_string(), "the Host the client sent");
                assert_eq!(line["client"], "127.0.0.1", "{line}");
                assert_eq!(up.header("forwarded"), None, "a client's claim about itself is dropped");
                assert_eq!(up.header("x-real-ip"), None);
            }
        }
    })
    .await;
}

#[tokio::test]
async fn over_h2_and_tls_the_upstream_learns_https_and_the_authority() {
    bounded(async {
        let cert = ssegate_tests::tls::TestCert::generate();
        let mock = MockUpstream::serve(
            Reply::stream("application/x-ndjson", vec![Step::send("{\"a\":1}\n"), Step::End])
                .with_header("Set-Cookie", "a=1")
                .with_header("Set-Cookie", "b=2"),
        )
        .await;
        let gw = GatewaySpec::new().tls(&cert).route(RouteSpec::new("r").upstream(&mock)).start().await;
        let tls = gw.tls_addr().unwrap();
        let mut resp = ssegate_tests::h2_tls_request(tls, &cert.cert_der, "GET", "/r", b"").await;
        resp.body_to_end().await;
        assert_eq!(resp.version, "HTTP/2.0");
        assert_sse_head(&resp);
        assert_eq!(resp.header_all("set-cookie"), ["a=1", "b=2"], "two fields on h2 too");
        let id = resp.header("x-request-id").unwrap().to_string();
        assert!(is_generated_id(&id), "{id}");
        let up = &mock.requests()[0];
        assert_eq!(up.header("x-request-id"), Some(id.as_str()));
        assert_eq!(up.header("x-forwarded-proto"), Some("https"));
        assert_eq!(up.header("x-forwarded-for"), Some("127.0.0.1"));
        assert_eq!(up.header("x-forwarded-host"), Some(format!("localhost:{}", tls.port()).as_str()));
    })
    .await;
}
