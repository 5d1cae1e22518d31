//! Security at the edge (issue 7): client keys, provider credential injection (and that secrets never
//! leak), request limits, no open proxy, CORS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use ssegate_tests::client::{Conn, H2Conn};
use ssegate_tests::gateway::run_cli_env;
use ssegate_tests::metrics::Scrape;
use ssegate_tests::mock::Gate;
use ssegate_tests::{
    assert_sse_head, bounded, expect_json_error, get, request, show, sse, Gateway, MockUpstream, Reply, Step,
};
use ssegate_tests::{GatewaySpec, RouteSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn ndjson() -> Reply {
    Reply::stream("application/x-ndjson", vec![Step::send("{\"a\":1}\n"), Step::End])
}

/// Scrapes until `name{labels}` reaches `value` (up to 3 s); asserts it.
async fn expect_metric(gw: &Gateway, name: &str, labels: &[(&str, &str)], value: f64) {
    let v = Scrape::until(gw.admin_addr(), |s| s.value(name, labels) == value).await.value(name, labels);
    assert!(v == value, "{name}{labels:?} = {v}, expected {value}");
}

// ---- client keys ------------------------------------------------------------------------------------

#[tokio::test]
async fn auth_requires_a_valid_key_and_the_key_is_not_forwarded() {
    bounded(async {
        let mock = MockUpstream::serve(ndjson()).await;
        let gw = GatewaySpec::new()
            .file("keys.txt", b"# clients\nfile-key\n")
            .route(
                RouteSpec::new("r")
                    .upstream(&mock)
                    .auth_keys_env(&["SSEGATE_TEST_KEYS"])
                    .auth_keys_files_in_dir(&["keys.txt"]),
            )
            .env("SSEGATE_TEST_KEYS", "env-key-1,env-key-2")
            .start()
            .await;
        let a = gw.addr();

        // No key, a wrong key, a wrong scheme: 401, nothing sent upstream.
        for headers in [
            vec![],
            vec![("Authorization", "Bearer env-key-3")],
            vec![("x-api-key", "env-key")],
            vec![("Authorization", "Basic env-key-1")],
        ] {
            let mut resp = request(a, "GET", "/r", &headers, b"").await;
            assert_eq!(resp.header("www-authenticate"), Some("Bearer"), "{headers:?}");
            expect_json_error(&mut resp, 401, "unauthorized").await;
        }
        // A POST with a body is refused too, and the answer arrives intact.
        let mut resp = request(a, "POST", "/r", &[("Content-Type", "application/json")], b"{\"x\":1}").await;
        expect_json_error(&mut resp, 401, "unauthorized").await;
        assert!(mock.requests().is_empty(), "{:?}", mock.requests());
        expect_metric(&gw, "ssegate_rejected_total", &[("route", "r"), ("reason", "unauthorized")], 5.0)
            .await;

        // Valid keys from the variable (Bearer) and the file (x-api-key).
        let mut resp = request(a, "GET", "/r", &[("Authorization", "Bearer env-key-2")], b"").await;
        assert_sse_head(&resp);
        resp.body_to_end().await;
        let mut resp = request(a, "GET", "/r", &[("x-api-key", "file-key"), ("x-other", "kept")], b"").await;
        assert_sse_head(&resp);
        resp.body_to_end().await;
        // The gateway key goes in x-api-key; the client's own Authorization is not the gateway's to drop.
        let h = [("x-api-key", "env-key-1"), ("Authorization", "Bearer provider-key")];
        let mut resp = request(a, "GET", "/r", &h, b"").await;
        assert_sse_head(&resp);
        resp.body_to_end().await;

        let reqs = mock.requests();
        assert_eq!(reqs.len(), 3);
        assert_eq!(reqs[0].header("authorization"), None, "{:?}", reqs[0].headers);
        assert_eq!(reqs[1].header("x-api-key"), None, "{:?}", reqs[1].headers);
        assert_eq!(reqs[1].header("x-other"), Some("kept"));
        assert_eq!(reqs[2].header("x-api-key"), None, "{:?}", reqs[2].headers);
        assert_eq!(reqs[2].header("authorization"), Some("Bearer provider-key"));
    })
    .await;
}

#[tokio::test]
async fn auth_and_reference_errors_name_the_source_never_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ssegate.toml");
    let text = "[server]\nlisten = [\"127.0.0.1:0\"]\n\n[[route]]\nname = \"r\"\npath_prefix = \"/r\"\n\
                upstream = \"http://127.0.0.1:9\"\nauth = { keys_env = [\"SSEGATE_T_NOT_SET\"], keys_file = [\"gone.txt\"] }\n\
                upstream_headers = { \"Authorization\" = \"Bearer ${env:SSEGATE_T_PROVIDER}\", \"x-org\" = \"${file:org.txt}\" }\n";
    std::fs::write(&path, text).unwrap();
    let p = path.display().to_string();
    let (code, out) = run_cli_env(&["check", "--config", &p], &[("SSEGATE_T_PROVIDER", "sk-NEVER-PRINTED")]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("environment variable SSEGATE_T_NOT_SET is not set"), "{out}");
    assert!(out.contains("gone.txt"), "{out}");
    assert!(out.contains("upstream_headers.x-org: cannot read") && out.contains("org.txt"), "{out}");
    assert!(!out.contains("sk-NEVER-PRINTED"), "{out}");
    // A missing variable for a header names the header and the variable.
    let (code, out) = run_cli_env(&["check", "--config", &p], &[]);
    assert_eq!(code, Some(1));
    assert!(
        out.contains("upstream_headers.Authorization: environment variable SSEGATE_T_PROVIDER is not set"),
        "{out}"
    );
    // `run` refuses to start the same way.
    let (code, out) = run_cli_env(&["run", "--config", &p], &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("SSEGATE_T_NOT_SET"), "{out}");
}

// ---- credential injection and secrets that never leak -----------------------------------------------

const PROVIDER_SECRET: &str = "sk-prov-7f3a9c1e-SECRET";
const ORG_SECRET: &str = "org-5d2b-SECRET";
const CLIENT_KEY: &str = "gwkey-91c4e7-SECRET";

#[tokio::test]
async fn injected_credentials_replace_the_clients_and_no_secret_leaks_anywhere() {
    bounded(async {
        let mock = MockUpstream::start(|req| {
            if req.target.starts_with("/fail") {
                Reply::full(500, "application/json", "{\"error\":\"boom\"}")
            } else {
                ndjson()
            }
        })
        .await;
        let dead = ssegate_tests::mock::dead_upstream_url();
        let org_file = format!("{ORG_SECRET}\n");
        let env = [
            ("SSEGATE_TEST_PROVIDER", PROVIDER_SECRET),
            ("SSEGATE_TEST_CLIENT_KEYS", CLIENT_KEY),
            ("RUST_LOG", "trace"),
        ];
        let mut captured = String::new();
        for format in ["text", "json"] {
            let mut spec = GatewaySpec::new().file("org", org_file.as_bytes());
            let org = format!("${{file:{}}}", spec.dir().join("org").display());
            let inject = [("Authorization", "Bearer ${env:SSEGATE_TEST_PROVIDER}"), ("X-Org", org.as_str())];
            let auth = ["SSEGATE_TEST_CLIENT_KEYS"];
            spec = spec
                .route(RouteSpec::new("r").upstream(&mock).upstream_headers(&inject).auth_keys_env(&auth))
                .route(RouteSpec::new("open").upstream(&mock).upstream_headers(&inject))
                .route(RouteSpec::new("dead").upstream(&dead).upstream_headers(&inject).auth_keys_env(&auth))
                .args(["--log-format", format]);
            for (k, v) in env {
                spec = spec.env(k, v);
            }
            let gw = spec.start().await;
            let a = gw.addr();
            let bearer = format!("Bearer {CLIENT_KEY}");
            // Success, with the gateway key in Authorization (replaced by the injected one).
            let mut resp = request(a, "POST", "/r/v1/chat", &[("Authorization", &bearer)], b"{}").await;
            assert_sse_head(&resp);
            resp.body_to_end().await;
            // Success on an open route: the client's own Authorization and X-Org are replaced, not doubled.
            let h = [("Authorization", "Bearer client-own"), ("x-org", "client-org")];
            let mut resp = request(a, "GET", "/open/x", &h, b"").await;
            assert_sse_head(&resp);
            resp.body_to_end().await;
            // Failures: a wrong key, an upstream error, an unreachable upstream, a bad path, no route.
            let mut resp = request(a, "GET", "/r", &[("Authorization", "Bearer nope")], b"").await;
            expect_json_error(&mut resp, 401, "unauthorized").await;
            let mut resp = request(a, "GET", "/r/fail", &[("x-api-key", CLIENT_KEY)], b"").await;
            captured.push_str(&String::from_utf8_lossy(&resp.body_to_end().await));
            assert_eq!(resp.status, 500);
            let mut resp = request(a, "GET", "/dead", &[("x-api-key", CLIENT_KEY)], b"").await;
            captured.push_str(&format!("{:?}", resp.headers));
            expect_json_error(&mut resp, 502, "upstream_connect").await;
            let mut resp = request(a, "GET", "/r/%2e%2e/x", &[("x-api-key", CLIENT_KEY)], b"").await;
            expect_json_error(&mut resp, 400, "bad_request").await;
            let mut resp = request(a, "GET", "/nowhere", &[("x-api-key", CLIENT_KEY)], b"").await;
            expect_json_error(&mut resp, 404, "not_found").await;
            // A malformed request carrying the key (its raw bytes must not reach the log).
            let raw = format!("GET /r HTTP/1.1\r\nx-api-key: {CLIENT_KEY}\r\nBad Header\r\n\r\n");
            let mut s = TcpStream::connect(a).await.unwrap();
            s.write_all(raw.as_bytes()).await.unwrap();
            let mut sink = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut sink)).await;
            captured.push_str(&String::from_utf8_lossy(&sink));

            let scrape = Scrape::fetch(gw.admin_addr()).await;
            assert!(
                scrape.text.contains("ssegate_rejected_total{reason=\"unauthorized\""),
                "{}",
                scrape.text
            );
            captured.push_str(&scrape.text);
            // `check` on the very same config and environment.
            let (code, out) =
                run_cli_env(&["check", "--config", &gw.config_path().display().to_string()], &env);
            assert_eq!(code, Some(0), "{out}");
            captured.push_str(&out);
            // The access line of the last stream is written a moment after its client saw the end.
            let t = Instant::now();
            let mut log = gw.stderr() + &gw.stdout();
            while !log.contains("stream finished") && t.elapsed() < Duration::from_secs(3) {
                tokio::time::sleep(Duration::from_millis(20)).await;
                log = gw.stderr() + &gw.stdout();
            }
            assert!(log.contains("stream finished"), "no access log at trace level?\n{log}");
            assert!(
                log.contains("DEBUG") || log.contains("\"level\":\"DEBUG\""),
                "not at debug level:\n{log}"
            );
            captured.push_str(&log);
        }
        for secret in [PROVIDER_SECRET, ORG_SECRET, CLIENT_KEY] {
            assert!(!captured.contains(secret), "{secret} leaked:\n{captured}");
        }

        // And the upstream got exactly the injected credentials.
        let reqs = mock.requests();
        assert_eq!(reqs.len(), 6, "{reqs:?}");
        for r in &reqs {
            assert_eq!(
                r.header_all("authorization"),
                [format!("Bearer {PROVIDER_SECRET}").as_str()],
                "{r:?}"
            );
            assert_eq!(r.header_all("x-org"), [ORG_SECRET], "{r:?}");
            assert_eq!(r.header("x-api-key"), None, "{r:?}");
        }
    })
    .await;
}

// ---- limits -----------------------------------------------------------------------------------------

#[tokio::test]
async fn chunked_request_body_over_the_limit_is_413() {
    bounded(async {
        let mock = MockUpstream::serve(ndjson()).await;
        let gw = GatewaySpec::new()
            .server(|s| s.max_request_body("1KiB"))
            .route(RouteSpec::new("r").upstream(&mock))
            .start()
            .await;
        let mut raw = b"POST /r HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..3 {
            raw.extend_from_slice(b"200\r\n");
            raw.extend_from_slice(&[b'x'; 0x200]);
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"0\r\n\r\n");
        let mut resp = Conn::connect(gw.addr()).await.send_raw(&raw, false).await;
        expect_json_error(&mut resp, 413, "payload_too_large").await;
        assert!(mock.requests().is_empty());
        expect_metric(&gw, "ssegate_rejected_total", &[("route", "r"), ("reason", "payload_too_large")], 1.0)
            .await;
    })
    .await;
}

#[tokio::test]
async fn request_head_over_max_header_size_is_431() {
    bounded(async {
        let mock = MockUpstream::serve(ndjson()).await;
        let gw = GatewaySpec::new()
            .server(|s| s.max_header_size("4KiB"))
            .route(RouteSpec::new("r").upstream(&mock))
            .start()
            .await;
        let big = "v".repeat(5000);
        let mut resp = request(gw.addr(), "GET", "/r", &[("x-big", &big)], b"").await;
        expect_json_error(&mut resp, 431, "header_too_large").await;
        // Many small headers count too.
        let many: Vec<(String, String)> = (0..200).map(|i| (format!("x-h{i}"), "y".repeat(20))).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut resp = request(gw.addr(), "GET", "/r", &many, b"").await;
        expect_json_error(&mut resp, 431, "header_too_large").await;
        assert!(mock.requests().is_empty());
        // Under the limit it passes.
        let mut resp = request(gw.addr(), "GET", "/r", &[("x-big", &big[..3000])], b"").await;
        assert_sse_head(&resp);
        resp.body_to_end().await;
        expect_metric(&gw, "ssegate_downstream_rejected_total", &[("reason", "header_too_large")], 2.0).await;

        // Over pingora's own hard limit (1 MiB) the connection is closed without an answer.
        let huge = "h".repeat(1100 * 1024);
        let raw = format!("GET /r HTTP/1.1\r\nHost: x\r\nx-huge: {huge}\r\n\r\n");
        let mut s = TcpStream::connect(gw.addr()).await.unwrap();
        let _ = s.write_all(raw.as_bytes()).await;
        let mut sink = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut sink)).await;
        assert!(r.is_ok(), "connection still open");
        assert!(sink.is_empty(), "{}", show(&sink));
        assert_eq!(mock.requests().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn slowloris_header_trickle_is_disconnected() {
    bounded(async {
        let mock = MockUpstream::serve(ndjson()).await;
        let gw = GatewaySpec::new()
            .server(|s| s.request_header_timeout("1s"))
            .route(RouteSpec::new("r").upstream(&mock))
            .start()
            .await;
        let s = TcpStream::connect(gw.addr()).await.unwrap();
        let (mut rd, mut wr) = s.into_split();
        let t0 = Instant::now();
        // One header line every 100 ms, forever: each read is quick, the head never ends.
        let writer = tokio::spawn(async move {
            if wr.write_all(b"GET /r HTTP/1.1\r\nHost: x\r\n").await.is_err() {
                return;
            }
            for i in 0.. {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if wr.write_all(format!("x-{i}: y\r\n").as_bytes()).await.is_err() {
                    return;
                }
            }
        });
        let mut buf = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(3), rd.read_to_end(&mut buf)).await;
        let took = t0.elapsed();
        writer.abort();
        assert!(r.is_ok(), "the trickling client was still connected after {took:?}");
        assert!(took >= Duration::from_millis(900), "closed after {took:?}, before request_header_timeout");
        assert!(buf.is_empty(), "{}", show(&buf));
        assert!(mock.requests().is_empty());
        expect_metric(&gw, "ssegate_downstream_rejected_total", &[("reason", "header_timeout")], 1.0).await;

        // A keep-alive connection may idle longer than request_header_timeout between requests.
        let mut resp = get(gw.addr(), "/r").await;
        resp.body_to_end().await;
        let conn = resp.into_conn().expect("keep-alive");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut resp = conn.send("GET", "/r", &[], b"").await;
        assert_sse_head(&resp);
        resp.body_to_end().await;
    })
    .await;
}

#[tokio::test]
async fn silent_and_stalled_connections_are_dropped() {
    bounded(async {
        let mock = MockUpstream::serve(ndjson()).await;
        let gw = GatewaySpec::new()
            .server(|s| s.request_header_timeout("1s"))
            .route(RouteSpec::new("r").upstream(&mock))
            .start()
            .await;
        // Nothing at all, then a few bytes and a stall (shorter than the h2c preface pingora peeks for).
        for first in [&b""[..], b"GET /r", b"PRI * HTTP/2.0\r\n"] {
            let mut s = TcpStream::connect(gw.addr()).await.unwrap();
            s.write_all(first).await.unwrap();
            let t0 = Instant::now();
            let mut buf = Vec::new();
            let r = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut buf)).await;
            assert!(r.is_ok(), "{} still connected after {:?}", show(first), t0.elapsed());
            assert!(t0.elapsed() >= Duration::from_millis(900), "{}: closed too early", show(first));
        }
        assert!(mock.requests().is_empty());
        // An ordinary request still works, HTTP/1.1 and h2c.
        let mut resp = get(gw.addr(), "/r").await;
        assert_sse_head(&resp);
        resp.body_to_end().await;
        let mut resp = ssegate_tests::h2c_request(gw.addr(), "GET", "/r", b"").await;
        assert_sse_head(&resp);
        resp.body_to_end().await;
    })
    .await;
}

#[tokio::test]
async fn slow_request_body_gets_408() {
    bounded(async {
        let mock = MockUpstream::serve(ndjson()).await;
        let gw = GatewaySpec::new()
            .server(|s| s.request_body_timeout("1s"))
            .route(RouteSpec::new("r").upstream(&mock))
            .start()
            .await;
        let mut s = TcpStream::connect(gw.addr()).await.unwrap();
        s.write_all(b"POST /r HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789").await.unwrap();
        let t0 = Instant::now();
        let mut buf = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut buf)).await;
        assert!(r.is_ok(), "no answer and still connected after {:?}", t0.elapsed());
        let text = String::from_utf8_lossy(&buf);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains("\"type\":\"request_timeout\""), "{text}");
        assert!(t0.elapsed() >= Duration::from_millis(900));
        assert!(mock.requests().is_empty());
        expect_metric(&gw, "ssegate_rejected_total", &[("route", "r"), ("reason", "request_timeout")], 1.0)
            .await;
    })
    .await;
}

#[tokio::test]
async fn max_streams_gives_503_with_retry_after_until_a_slot_frees() {
    bounded(async {
        let gate = Gate::new();
        let g = gate.clone();
        let mock = MockUpstream::start(move |_| {
            Reply::stream(
                "application/x-ndjson",
                vec![Step::send("{\"a\":1}\n"), Step::Wait(g.clone()), Step::End],
            )
        })
        .await;
        let gw = GatewaySpec::new()
            .route(RouteSpec::new("r").upstream(&mock).max_streams(2).retry_after("3s").heartbeat("0s"))
            .start()
            .await;
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut resp = get(gw.addr(), "/r").await;
            assert_sse_head(&resp);
            resp.next_event().await.unwrap();
            held.push(resp);
        }
        let mut resp = get(gw.addr(), "/r").await;
        assert_eq!(resp.header("retry-after"), Some("3"), "{:?}", resp.headers);
        expect_json_error(&mut resp, 503, "overloaded").await;
        assert_eq!(mock.requests().len(), 2);
        expect_metric(&gw, "ssegate_rejected_total", &[("route", "r"), ("reason", "max_streams")], 1.0).await;

        // One stream ends: its slot is free again.
        gate.open();
        let mut first = held.remove(0);
        first.body_to_end().await;
        let t = Instant::now();
        let mut resp = loop {
            let resp = get(gw.addr(), "/r").await;
            if resp.status == 200 || t.elapsed() > Duration::from_secs(3) {
                break resp;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_sse_head(&resp);
        resp.next_event().await.unwrap();
        gate.open();
        gate.open();
        resp.body_to_end().await;
        held[0].body_to_end().await;
    })
    .await;
}

// ---- no open proxy ----------------------------------------------------------------------------------

/// The configured upstream on `/r` (base path `/base`) and on `/`, and an "other" listener the gateway
/// must never contact.
async fn two_upstreams() -> (Gateway, MockUpstream, MockUpstream) {
    let mock = MockUpstream::serve(ndjson()).await;
    let other = MockUpstream::serve(ndjson()).await;
    let gw = GatewaySpec::new()
        .route(RouteSpec::new("r").upstream(&format!("{}/base", mock.url())))
        .route(RouteSpec::new("root").prefix("/").upstream(&mock))
        .start()
        .await;
    (gw, mock, other)
}

async fn raw_exchange(addr: std::net::SocketAddr, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    let mut buf = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(r.is_ok(), "no end of the answer to {}: {}", show(raw), show(&buf));
    String::from_utf8_lossy(&buf).to_string()
}

#[tokio::test]
async fn absolute_form_host_header_and_connect_never_reach_another_host() {
    bounded(async {
        let (gw, mock, other) = two_upstreams().await;
        let o = other.addr();
        for target in
            [format!("http://{o}/x"), format!("http://{o}/r/x"), format!("https://{o}/r/x"), "*".into()]
        {
            let raw = format!("GET {target} HTTP/1.1\r\nHost: {o}\r\nConnection: close\r\n\r\n");
            let text = raw_exchange(gw.addr(), raw.as_bytes()).await;
            assert!(text.starts_with("HTTP/1.1 400"), "{target}: {text}");
            assert!(text.contains("\"type\":\"bad_request\""), "{target}: {text}");
        }
        let text =
            raw_exchange(gw.addr(), format!("CONNECT {o} HTTP/1.1\r\nHost: {o}\r\n\r\n").as_bytes()).await;
        assert!(text.starts_with("HTTP/1.1 405"), "{text}");
        assert!(text.contains("\"type\":\"method_not_allowed\""), "{text}");
        assert!(mock.requests().is_empty(), "{:?}", mock.requests());

        // A Host header naming the other listener: routed by path, sent to the configured upstream with
        // the upstream's Host.
        let mut resp = request(gw.addr(), "GET", "/r/x", &[("Host", &o.to_string())], b"").await;
        assert_sse_head(&resp);
        resp.body_to_end().await;
        // The same over h2c with `:authority` naming the other listener.
        let h2 = H2Conn::h2c_with_authority(gw.addr(), &o.to_string()).await;
        let mut resp = h2.request("GET", "/r/y", b"").await;
        assert_sse_head(&resp);
        resp.body_to_end().await;
        let mut resp = h2.request("GET", "/r/../y", b"").await;
        expect_json_error(&mut resp, 400, "bad_request").await;

        let reqs = mock.requests();
        assert_eq!(reqs.len(), 2, "{reqs:?}");
        assert_eq!(reqs[0].target, "/base/x");
        assert_eq!(reqs[1].target, "/base/y");
        for r in &reqs {
            assert_eq!(r.header_all("host"), [mock.addr().to_string().as_str()], "{r:?}");
        }
        assert_eq!(other.connections(), 0, "the other listener was contacted: {:?}", other.requests());
    })
    .await;
}

#[tokio::test]
async fn path_tricks_cannot_escape_the_route_prefix() {
    bounded(async {
        let (gw, mock, other) = two_upstreams().await;
        let o = other.addr();
        let tricks = [
            "/r/../admin".to_string(),
            "/r/./x".into(),
            "/r/..".into(),
            "/r/%2e%2e/admin".into(),
            "/r/%2E%2e/admin".into(),
            "/r/.%2e/admin".into(),
            "/r/%2e/x".into(),
            "/r/..%2fadmin".into(),
            "/r/%2Fadmin".into(),
            "/r/%5c..%5cadmin".into(),
            "/r/..\\admin".into(),
            "/r\\..\\admin".into(),
            "/r//x".into(),
            format!("//{o}/r/x"),
            format!("//{o}"),
            "/r/%00".into(),
            "/r/..;/admin".into(),
            "/r/..%3b/admin".into(),
            "/r/%c0%ae%c0%ae/admin".into(),
        ];
        for t in &tricks {
            let raw = format!("GET {t} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let text = raw_exchange(gw.addr(), raw.as_bytes()).await;
            assert!(text.starts_with("HTTP/1.1 400"), "{t}: {text}");
            assert!(text.contains("\"type\":\"bad_request\""), "{t}: {text}");
        }
        assert!(mock.requests().is_empty(), "{:?}", mock.requests());
        // What is allowed is forwarded byte for byte under the prefix.
        for (t, forwarded) in [
            ("/r/a..b/c.d", "/base/a..b/c.d"),
            ("/r/x/?q=../%2f", "/base/x/?q=../%2f"),
            ("/r/v;1?f[a]=|", "/base/v;1?f[a]=|"),
        ] {
            let mut resp = request(gw.addr(), "GET", t, &[], b"").await;
            assert_sse_head(&resp);
            resp.body_to_end().await;
            assert_eq!(mock.requests().last().unwrap().target, forwarded);
        }
        assert_eq!(other.connections(), 0);
        expect_metric(
            &gw,
            "ssegate_downstream_rejected_total",
            &[("reason", "bad_target")],
            tricks.len() as f64,
        )
        .await;
    })
    .await;
}

// ---- CORS -------------------------------------------------------------------------------------------

const APP: &str = "https://app.example";

async fn cors_gateway(mock: &MockUpstream) -> Gateway {
    GatewaySpec::new()
        .route(
            RouteSpec::new("r")
                .upstream(mock)
                .cors(&[APP, "http://localhost:3000"], None)
                .auth_keys_env(&["SSEGATE_TEST_CORS_KEY"]),
        )
        .route(RouteSpec::new("any").upstream(mock).cors(&["*"], Some("1m")))
        .env("SSEGATE_TEST_CORS_KEY", "k1")
        .start()
        .await
}

#[tokio::test]
async fn cors_preflight_is_answered_by_the_gateway() {
    bounded(async {
        let mock = MockUpstream::serve(ndjson()).await;
        let gw = cors_gateway(&mock).await;
        let pre = |origin: &'static str, method: &'static str, headers: &'static str| {
            let mut h = vec![("Origin", origin), ("Access-Control-Request-Method", method)];
            if !headers.is_empty() {
                h.push(("Access-Control-Request-Headers", headers));
            }
            h
        };
        // fetch + POST with content-type: application/json and a key: preflight without a key.
        let mut resp =
            request(gw.addr(), "OPTIONS", "/r/v1/chat", &pre(APP, "POST", "content-type,authorization"), b"")
                .await;
        assert_eq!(resp.status, 204, "{:?}", resp.headers);
        assert_eq!(resp.header("access-control-allow-origin"), Some(APP));
        assert_eq!(resp.header("access-control-allow-methods"), Some("GET, POST, OPTIONS"));
        assert_eq!(
            resp.header("access-control-allow-headers"),
            Some("content-type, authorization, x-api-key, last-event-id")
        );
        assert_eq!(resp.header("access-control-max-age"), Some("600"));
        assert_eq!(resp.header("vary"), Some("Origin"));
        assert_eq!(resp.header("access-control-allow-credentials"), None);
        assert!(resp.body_to_end().await.is_empty());
        let mut resp = request(gw.addr(), "OPTIONS", "/any", &pre("https://x.example", "GET", ""), b"").await;
        assert_eq!(resp.status, 204);
        assert_eq!(resp.header("access-control-allow-origin"), Some("*"));
        assert_eq!(resp.header("access-control-max-age"), Some("60"));
        resp.body_to_end().await;

        // Refused: another origin, a method or a header not allowed.
        for h in [
            pre("https://evil.example", "POST", ""),
            pre(APP, "PUT", ""),
            pre(APP, "POST", "content-type, x-secret"),
        ] {
            let mut resp = request(gw.addr(), "OPTIONS", "/r", &h, b"").await;
            assert_eq!(resp.header("access-control-allow-origin"), None, "{h:?}");
            expect_json_error(&mut resp, 403, "forbidden").await;
        }
        assert!(mock.requests().is_empty(), "preflights were forwarded: {:?}", mock.requests());
        expect_metric(&gw, "ssegate_rejected_total", &[("route", "r"), ("reason", "cors")], 3.0).await;
        expect_metric(&gw, "ssegate_rejected_total", &[("route", "r"), ("reason", "unauthorized")], 0.0)
            .await;
    })
    .await;
}

#[tokio::test]
async fn cors_headers_on_streams_and_errors() {
    bounded(async {
        let mock = MockUpstream::start(|req| {
            if req.target.starts_with("/limited") {
                Reply::full(429, "application/json", "{\"error\":\"slow down\"}")
                    .with_header("Access-Control-Allow-Origin", "https://upstream.example")
            } else {
                ndjson()
            }
        })
        .await;
        let gw = cors_gateway(&mock).await;
        let a = gw.addr();
        // EventSource: a cross-origin GET with Accept: text/event-stream (and the key in x-api-key here).
        let h = [("Origin", APP), ("Accept", "text/event-stream"), ("x-api-key", "k1")];
        let mut resp = request(a, "GET", "/r/stream", &h, b"").await;
        assert_sse_head(&resp);
        assert_eq!(resp.header("access-control-allow-origin"), Some(APP));
        assert_eq!(resp.header("vary"), Some("Origin"));
        assert!(resp.header("access-control-expose-headers").is_some());
        assert_eq!(sse::parse(&resp.body_to_end().await)[0].data.as_deref(), Some("{\"a\":1}"));
        // fetch + POST with JSON and the key in Authorization.
        let h = [("Origin", APP), ("Content-Type", "application/json"), ("Authorization", "Bearer k1")];
        let mut resp = request(a, "POST", "/r/chat", &h, b"{\"m\":1}").await;
        assert_sse_head(&resp);
        assert_eq!(resp.header("access-control-allow-origin"), Some(APP));
        resp.body_to_end().await;
        // A 401 is readable by the page too.
        let mut resp = request(a, "POST", "/r/chat", &h[..2], b"{}").await;
        assert_eq!(resp.header("access-control-allow-origin"), Some(APP));
        assert_eq!(resp.header("vary"), Some("Origin"));
        expect_json_error(&mut resp, 401, "unauthorized").await;
        // An upstream error passed through: the upstream's own CORS header is replaced by the route's.
        let mut resp = request(a, "GET", "/r/limited", &[("Origin", APP), ("x-api-key", "k1")], b"").await;
        assert_eq!(resp.status, 429);
        assert_eq!(resp.header_all("access-control-allow-origin"), [APP]);
        resp.body_to_end().await;
        // Another origin: served, but without CORS headers (the browser keeps the answer from the page).
        let mut resp =
            request(a, "GET", "/r/x", &[("Origin", "https://evil.example"), ("x-api-key", "k1")], b"").await;
        assert_sse_head(&resp);
        assert_eq!(resp.header("access-control-allow-origin"), None);
        assert_eq!(resp.header("vary"), Some("Origin"));
        resp.body_to_end().await;
        // A wildcard route answers `*`.
        let mut resp = request(a, "GET", "/any", &[("Origin", "https://x.example")], b"").await;
        assert_sse_head(&resp);
        assert_eq!(resp.header("access-control-allow-origin"), Some("*"));
        resp.body_to_end().await;
        // A plain OPTIONS (no Access-Control-Request-Method) is an ordinary request, forwarded.
        let mut resp = request(a, "OPTIONS", "/any", &[("Origin", "https://x.example")], b"").await;
        resp.body_to_end().await;
        assert_eq!(mock.requests().last().unwrap().method, "OPTIONS");
    })
    .await;
}
