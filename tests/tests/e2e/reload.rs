//! Config hot reload (SIGHUP, `ssegate reload`): every change applied to new requests, none to streams in
//! flight, a broken or restart-only config refused as a whole, reload metrics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use ssegate_tests::client::{Conn, End};
use ssegate_tests::gateway::run_cli;
use ssegate_tests::metrics::Scrape;
use ssegate_tests::tls::{connect, TestCert};
use ssegate_tests::{
    assert_bytes, bounded, expect_json_error, get, request, show, Gateway, GatewaySpec, MockUpstream, Reply,
    RouteSpec, Signal, Step,
};

/// Events of the long streams, 100 ms apart: the streams stay open while the reloads happen.
const PACED: usize = 60;
/// Streams per long route (two routes; those on `b` over TLS).
const STREAMS: usize = 50;

fn paced() -> Reply {
    let mut steps = Vec::new();
    for k in 1..=PACED {
        steps.push(Step::send(format!("{{\"k\":{k}}}\n")));
        steps.push(Step::Sleep(100));
    }
    steps.push(Step::End);
    Reply::stream("application/x-ndjson", steps)
}

fn paced_body() -> Vec<u8> {
    (1..=PACED).flat_map(|k| format!("data: {{\"k\":{k}}}\n\n").into_bytes()).collect()
}

/// Answers its head at once, then the one event after 1.5 s.
fn slow() -> Reply {
    Reply::stream("application/x-ndjson", vec![Step::Sleep(1500), Step::send("{\"late\":1}\n"), Step::End])
}

/// Waits until the gateway handles SIGHUP (it writes `pid_file` then), sends it, and waits for the
/// reload counter `result` to reach `n`.
async fn hup(gw: &Gateway, result: &str, n: f64) -> Scrape {
    let pid_file = gw.dir().join("ssegate.pid");
    let t = Instant::now();
    while !pid_file.exists() {
        assert!(t.elapsed() < Duration::from_secs(5), "no pid_file {}", pid_file.display());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gw.signal(Signal::Hup);
    reloads(gw, result, n).await
}

async fn reloads(gw: &Gateway, result: &str, n: f64) -> Scrape {
    let name = "ssegate_config_reloads_total";
    let s = Scrape::until(gw.admin_addr(), |s| s.value(name, &[("result", result)]) >= n).await;
    assert_eq!(s.value(name, &[("result", result)]), n, "reloads {result}:\n{}", gw.stderr());
    s
}

/// Whether `log` has `<path>:<line>:<col>: `.
fn has_position(log: &str, path: &Path) -> bool {
    let prefix = format!("{}:", path.display());
    log.match_indices(&prefix).any(|(i, _)| {
        let mut rest = log[i + prefix.len()..].splitn(3, ':');
        let num = |s: Option<&str>| s.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
        num(rest.next()) && num(rest.next())
    })
}

/// The log line containing `needle`.
fn logged(gw: &Gateway, needle: &str) -> String {
    let log = gw.stderr();
    match log.lines().find(|l| l.contains(needle)) {
        Some(l) => l.to_string(),
        None => panic!("no {needle:?} in the log:\n{log}"),
    }
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

#[tokio::test]
async fn reloads_apply_each_change_and_every_open_stream_completes() {
    bounded(async {
        let cert1 = TestCert::generate();
        let cert2 = TestCert::generate();
        let long = MockUpstream::serve(paced()).await;
        let slow = MockUpstream::serve(slow()).await;
        let a = || RouteSpec::new("a").upstream(&long).heartbeat("0s").auth_keys_files_in_dir(&["keys.txt"]);
        let b = || RouteSpec::new("b").upstream(&long).heartbeat("0s").max_streams(STREAMS as i64);
        let h = |beat: &str| RouteSpec::new("h").upstream(&slow).heartbeat(beat);
        let c = || RouteSpec::new("c").upstream(&slow);
        let d = || {
            let cred = [("Authorization", "Bearer ${file:cred.txt}")];
            RouteSpec::new("d").upstream(&slow).heartbeat("0s").upstream_headers(&cred)
        };
        let last_cred = || slow.requests().last().and_then(|r| r.header("authorization").map(str::to_string));
        let spec = |routes: Vec<RouteSpec>| routes.into_iter().fold(GatewaySpec::new(), GatewaySpec::route);
        let gw = spec(vec![a(), b(), h("0s"), c()])
            .tls(&cert1)
            .file("keys.txt", b"key-1\n")
            .file("cred.txt", b"cred-1\n")
            .start()
            .await;
        let tls_addr = gw.tls_addr().unwrap();

        // The long streams: half on `a` (plaintext, with a key), half on `b` over TLS.
        let mut streams = Vec::new();
        for i in 0..2 * STREAMS {
            let (addr, cert) = (gw.addr(), cert1.cert_der.clone());
            streams.push(tokio::spawn(async move {
                let auth = bearer("key-1");
                let mut resp = if i % 2 == 0 {
                    request(addr, "GET", "/a", &[("Authorization", &auth)], b"").await
                } else {
                    Conn::tls(tls_addr, &cert).await.send("GET", "/b", &[], b"").await
                };
                let status = resp.status;
                let body = resp.body_to_end().await;
                assert_eq!(status, 200, "stream {i}: {}", show(&body));
                (i, body, resp.end().cloned())
            }));
        }
        assert!(long.wait_requests(2 * STREAMS, Duration::from_secs(5)).await, "streams not all open");
        // Started before the heartbeat change: keeps heartbeat_interval = "0s".
        let h_before = tokio::spawn({
            let addr = gw.addr();
            async move { get(addr, "/h").await.body_to_end().await }
        });
        assert!(slow.wait_requests(1, Duration::from_secs(5)).await);

        let routes = |h_beat: &str, with_c: bool, with_d: bool| {
            let mut r = vec![a(), b(), h(h_beat)];
            r.extend(with_c.then(c));
            r.extend(with_d.then(d));
            spec(r).tls(&cert1)
        };
        // 1. heartbeat_interval of `h`: 0s -> 200ms.
        gw.rewrite_config(&routes("200ms", true, false));
        hup(&gw, "success", 1.0).await;
        let h_after = get(gw.addr(), "/h").await.body_to_end().await;
        assert!(h_after.starts_with(b": keepalive\n\n"), "new stream: {}", show(&h_after));
        // 2. a route added.
        gw.rewrite_config(&routes("200ms", true, true));
        hup(&gw, "success", 2.0).await;
        let mut resp = get(gw.addr(), "/d").await;
        assert_bytes(&resp.body_to_end().await, b"data: {\"late\":1}\n\n");
        assert_eq!(last_cred().as_deref(), Some("Bearer cred-1"));
        // 3. a route removed: 404, and its series leave /metrics.
        let s = Scrape::fetch(gw.admin_addr()).await;
        assert!(s.has("ssegate_streams_active", &[("route", "c")]));
        gw.rewrite_config(&routes("200ms", false, true));
        hup(&gw, "success", 3.0).await;
        expect_json_error(&mut get(gw.addr(), "/c").await, 404, "not_found").await;
        let s = Scrape::until(gw.admin_addr(), |s| !s.text.contains("route=\"c\"")).await;
        assert!(!s.text.contains("route=\"c\""), "series of the removed route:\n{}", s.text);
        assert!(s.has("ssegate_streams_active", &[("route", "d")]));
        // 4. the key file and a credential file rotated: the new key is accepted, the old one refused ...
        std::fs::write(gw.dir().join("keys.txt"), "key-2\n").unwrap();
        std::fs::write(gw.dir().join("cred.txt"), "cred-2\n").unwrap();
        hup(&gw, "success", 4.0).await;
        let mut resp = request(gw.addr(), "GET", "/a", &[("Authorization", &bearer("key-1"))], b"").await;
        expect_json_error(&mut resp, 401, "unauthorized").await;
        let resp = request(gw.addr(), "GET", "/a", &[("Authorization", &bearer("key-2"))], b"").await;
        assert_eq!(resp.status, 200);
        drop(resp);
        // ... and the injected credential is the rotated file's.
        let n = slow.requests().len();
        let resp = get(gw.addr(), "/d").await;
        assert!(slow.wait_requests(n + 1, Duration::from_secs(5)).await);
        assert_eq!(last_cred().as_deref(), Some("Bearer cred-2"));
        drop(resp);
        // 5. the TLS certificate rotated: a new handshake presents the new one.
        std::fs::write(gw.dir().join("cert.pem"), &cert2.cert_pem).unwrap();
        std::fs::write(gw.dir().join("key.pem"), &cert2.key_pem).unwrap();
        hup(&gw, "success", 5.0).await;
        let tls = connect(tls_addr, &cert2.cert_der, &[b"http/1.1"]).await;
        let presented = tls.get_ref().1.peer_certificates().unwrap()[0].as_ref().to_vec();
        assert!(presented == cert2.cert_der, "the old certificate was presented after the reload");
        drop(tls);
        // max_streams of `b` kept counting the streams opened before the reloads: all its slots are taken.
        let mut resp = Conn::tls(tls_addr, &cert2.cert_der).await.send("GET", "/b", &[], b"").await;
        expect_json_error(&mut resp, 503, "overloaded").await;

        // Every reload happened while every stream was open; each one completes with all its events.
        assert!(streams.iter().all(|s| !s.is_finished()), "streams ended before the reloads were done");
        let want = paced_body();
        for s in streams {
            let (i, body, end) = s.await.unwrap();
            assert_eq!(end, Some(End::Clean), "stream {i}");
            assert!(body == want, "stream {i}: {}", show(&body));
        }
        let before = h_before.await.unwrap();
        assert_bytes(&before, b"data: {\"late\":1}\n\n");

        let s = Scrape::fetch(gw.admin_addr()).await;
        assert_eq!(s.value("ssegate_config_reloads_total", &[("result", "error")]), 0.0);
        assert_eq!(s.value("ssegate_config_last_reload_successful", &[]), 1.0);
        assert_eq!(
            s.value("ssegate_streams_total", &[("route", "a"), ("outcome", "completed")]),
            STREAMS as f64
        );
    })
    .await;
}

#[tokio::test]
async fn a_broken_or_restart_only_config_changes_nothing() {
    bounded(async {
        let cert = TestCert::generate();
        let mock =
            MockUpstream::serve(Reply::stream("application/x-ndjson", vec![Step::send("{}\n"), Step::End]))
                .await;
        let route = || RouteSpec::new("r").upstream(&mock).auth_keys_files_in_dir(&["keys.txt"]);
        let good = GatewaySpec::new().route(route()).tls(&cert);
        let gw = good.file("keys.txt", b"k1\n").start().await;
        let config = std::fs::read_to_string(gw.config_path()).unwrap();
        let s = Scrape::fetch(gw.admin_addr()).await;
        let started = s.value("ssegate_config_last_reload_success_timestamp_seconds", &[]);
        assert!(started > 1e9, "set at the start");
        let serves = |gw: &Gateway| {
            let addr = gw.addr();
            async move {
                let mut resp = request(addr, "GET", "/r", &[("Authorization", "Bearer k1")], b"").await;
                assert_eq!(resp.body_to_end().await, b"data: {}\n\n");
            }
        };

        // A syntax error: reported with its position, counted.
        std::fs::write(gw.config_path(), format!("{config}\n[[route]\n")).unwrap();
        let s = hup(&gw, "error", 1.0).await;
        assert_eq!(s.value("ssegate_config_last_reload_successful", &[]), 0.0);
        assert!(has_position(&gw.stderr(), gw.config_path()), "no file:line:col: in:\n{}", gw.stderr());
        serves(&gw).await;

        // A key file that is gone.
        std::fs::write(gw.config_path(), config.replace("keys.txt", "gone.txt")).unwrap();
        hup(&gw, "error", 2.0).await;
        assert!(gw.stderr().contains("gone.txt"), "{}", gw.stderr());
        serves(&gw).await;

        // A certificate that does not parse: the old one stays.
        let bad = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        std::fs::write(gw.dir().join("cert.pem"), bad).unwrap();
        std::fs::write(gw.config_path(), &config).unwrap();
        hup(&gw, "error", 3.0).await;
        let line = logged(&gw, "[server.tls] cert");
        assert!(has_position(&line, gw.config_path()), "{line}");
        std::fs::write(gw.dir().join("cert.pem"), &cert.cert_pem).unwrap();
        drop(connect(gw.tls_addr().unwrap(), &cert.cert_der, &[b"http/1.1"]).await);

        // A new listen address: refused, named.
        let reserved = ssegate_tests::reserve_addr();
        let other = reserved.addr();
        std::fs::write(gw.config_path(), config.replace(&gw.addr().to_string(), &other.to_string())).unwrap();
        hup(&gw, "error", 4.0).await;
        let line = logged(&gw, "server.listen changed from");
        assert!(has_position(&line, gw.config_path()), "{line}");
        assert!(tokio::net::TcpStream::connect(other).await.is_err(), "a new listener was opened");
        serves(&gw).await;

        // The good config again, with a lower max_header_size (a [server] limit read per request): applied.
        let pad = "a".repeat(2000);
        let big = [("Authorization", "Bearer k1"), ("x-pad", pad.as_str())];
        let mut resp = request(gw.addr(), "GET", "/r", &big, b"").await;
        assert_eq!(resp.body_to_end().await, b"data: {}\n\n");
        std::fs::write(
            gw.config_path(),
            config.replacen("[server]\n", "[server]\nmax_header_size = \"1KiB\"\n", 1),
        )
        .unwrap();
        let s = hup(&gw, "success", 1.0).await;
        assert_eq!(s.value("ssegate_config_last_reload_successful", &[]), 1.0);
        assert!(s.value("ssegate_config_last_reload_success_timestamp_seconds", &[]) >= started);
        serves(&gw).await;
        let mut resp = request(gw.addr(), "GET", "/r", &big, b"").await;
        expect_json_error(&mut resp, 431, "header_too_large").await;
    })
    .await;
}

#[tokio::test]
async fn reload_command_validates_then_signals() {
    bounded(async {
        let mock =
            MockUpstream::serve(Reply::stream("application/x-ndjson", vec![Step::send("{}\n"), Step::End]))
                .await;
        let gw = GatewaySpec::new().route(RouteSpec::new("r").upstream(&mock)).start().await;
        let path = gw.config_path().display().to_string();
        let pid_file = gw.dir().join("ssegate.pid");
        let t = Instant::now();
        while !pid_file.exists() {
            assert!(t.elapsed() < Duration::from_secs(5), "no pid_file");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let config = std::fs::read_to_string(gw.config_path()).unwrap();

        // A valid config with a new route: signalled and applied.
        let added = config.replace("name = \"r\"", "name = \"r2\"").replace("\"/r\"", "\"/r2\"");
        std::fs::write(gw.config_path(), format!("{config}\n{}", &added[added.find("[[route]]").unwrap()..]))
            .unwrap();
        let (code, out) = run_cli(&["reload", "--config", &path]);
        assert_eq!(code, Some(0), "{out}");
        assert!(out.contains(&format!("sent SIGHUP to ssegate (pid {})", gw.pid())), "{out}");
        reloads(&gw, "success", 1.0).await;
        assert_bytes(&get(gw.addr(), "/r2").await.body_to_end().await, b"data: {}\n\n");

        // An invalid config: exit 1 with the error, nothing signalled.
        std::fs::write(gw.config_path(), config.replace("[[route]]", "[[route]]\nbogus = 1")).unwrap();
        let (code, out) = run_cli(&["reload", "--config", &path]);
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains(&format!("{path}:")) && out.contains("bogus"), "{out}");
        assert!(out.contains("was not signalled"), "{out}");

        // No pid file, or one naming a process that is gone: exit 1, said plainly.
        std::fs::write(gw.config_path(), &config).unwrap();
        let moved = gw.dir().join("moved.pid");
        std::fs::rename(&pid_file, &moved).unwrap();
        let (code, out) = run_cli(&["reload", "--config", &path]);
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains("cannot read pid_file"), "{out}");
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        let gone_pid = gone.id();
        gone.wait().unwrap();
        std::fs::write(&pid_file, format!("{gone_pid}\n")).unwrap();
        let (code, out) = run_cli(&["reload", "--config", &path]);
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains("stale pid_file"), "{out}");
        // A pid taken over by another program: not signalled (SIGHUP would end most programs).
        let mut other = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        std::fs::write(&pid_file, format!("{}\n", other.id())).unwrap();
        let (code, out) = run_cli(&["reload", "--config", &path]);
        let _ = other.kill();
        let _ = other.wait();
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains("is not ssegate; nothing was signalled"), "{out}");
        std::fs::rename(&moved, &pid_file).unwrap();

        let s = Scrape::fetch(gw.admin_addr()).await;
        assert_eq!(s.value("ssegate_config_reloads_total", &[("result", "success")]), 1.0);
        assert_eq!(s.value("ssegate_config_reloads_total", &[("result", "error")]), 0.0);
    })
    .await;
}
