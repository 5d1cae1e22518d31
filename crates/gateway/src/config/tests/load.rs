//! Config unit tests: loading as a whole (syntax, positions, ordering, defaults, every shipped config).

use super::*;

#[test]
fn full_config_with_every_key() {
    let dir = Dir::new("full");
    let src = r#"
[server]
listen = ["127.0.0.1:8080", "[::1]:8080"]
threads = 4
shutdown_drain = "20s"
shutdown_retry = "2s"
write_timeout = "45s"
max_request_body = "2MiB"
pid_file = "run/ssegate.pid"
upgrade_sock = "/var/run/ssegate.sock"

[server.tls]
listen = "127.0.0.1:8443"
cert = "cert.pem"
key = "key.pem"

[admin]
listen = "localhost:9090"

[[route]]
name = "gemini"
path_prefix = "/gemini"
strip_prefix = false
upstream = "https://Generativelanguage.googleapis.com/v1beta/"
ca_file = "ca.pem"
format = "json-array"
heartbeat_interval = "250ms"
event_field = "type"
ids = true
done_event = { event = "end", data = "[DONE]" }
forward_comments = true
connect_timeout = "2s"
header_timeout = "1m"
idle_timeout = "90s"
max_duration = "0s"
max_event_size = 65536
on_decode_error = "close"

[[route]]
name = "local.v6"
path_prefix = "/"
upstream = "http://[::1]:11434"
format = "passthrough"
heartbeat_interval = "0s"
max_event_size = "64KiB"
"#;
    let path = dir.file();
    let c = Config::from_str_at(&path, src).unwrap();
    assert_eq!(c.path, path);
    let s = &c.server;
    assert_eq!(s.listen, vec!["127.0.0.1:8080".parse().unwrap(), "[::1]:8080".parse().unwrap()]);
    assert_eq!(s.threads, 4);
    assert_eq!(s.shutdown_drain, Duration::from_secs(20));
    assert_eq!(s.shutdown_retry, Duration::from_secs(2));
    assert_eq!(s.write_timeout, Duration::from_secs(45));
    assert_eq!(s.max_request_body, 2 * 1024 * 1024);
    assert_eq!(s.pid_file, dir.0.join("run/ssegate.pid"));
    assert_eq!(s.upgrade_sock, PathBuf::from("/var/run/ssegate.sock"));
    let tls = s.tls.as_ref().unwrap();
    assert_eq!(tls.listen, "127.0.0.1:8443".parse().unwrap());
    assert_eq!(tls.cert, dir.0.join("cert.pem"));
    assert_eq!(tls.key, dir.0.join("key.pem"));
    assert_eq!(c.admin.as_ref().unwrap().listen, "127.0.0.1:9090".parse().unwrap());

    assert_eq!(c.routes.len(), 2);
    let r = &c.routes[0];
    assert_eq!(r.name, "gemini");
    assert_eq!(r.path_prefix, "/gemini");
    assert!(!r.strip_prefix);
    assert_eq!(
        r.upstream,
        Upstream {
            tls: true,
            host: "generativelanguage.googleapis.com".into(),
            port: 443,
            base_path: "/v1beta".into(),
            host_header: "generativelanguage.googleapis.com".into(),
            ca_file: Some(dir.0.join("ca.pem")),
        }
    );
    assert_eq!(r.format, FormatChoice::Fixed(Format::JsonArray));
    assert_eq!(r.heartbeat_interval, Some(Duration::from_millis(250)));
    assert_eq!(r.event_field.as_deref(), Some("type"));
    assert!(r.ids);
    assert_eq!(r.done_event, Some(DoneEvent { event: Some("end".into()), data: "[DONE]".into() }));
    assert!(r.forward_comments);
    assert_eq!(r.connect_timeout, Duration::from_secs(2));
    assert_eq!(r.header_timeout, Duration::from_secs(60));
    assert_eq!(r.idle_timeout, Duration::from_secs(90));
    assert_eq!(r.max_duration, None);
    assert_eq!(r.max_event_size, 65536);
    assert_eq!(r.on_decode_error, DecodeErrorPolicy::Close);

    let r = &c.routes[1];
    assert_eq!(r.name, "local.v6");
    assert_eq!(r.path_prefix, "/");
    assert_eq!(r.upstream.host, "::1");
    assert_eq!(r.upstream.port, 11434);
    assert_eq!(r.upstream.host_header, "[::1]:11434");
    assert_eq!(r.upstream.base_path, "");
    assert!(!r.upstream.tls);
    assert_eq!(r.format, FormatChoice::Passthrough);
    assert_eq!(r.heartbeat_interval, None);
    assert_eq!(r.max_event_size, 64 * 1024);
}

#[test]
fn defaults() {
    let c = load(MINIMAL).unwrap();
    let s = &c.server;
    assert_eq!(s.listen, vec!["127.0.0.1:8080".parse().unwrap()]);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_THREADS);
    assert_eq!(s.threads, cpus);
    assert!(s.tls.is_none());
    assert_eq!(s.shutdown_drain, Duration::from_secs(10));
    assert_eq!(s.shutdown_retry, Duration::from_secs(1));
    assert_eq!(s.write_timeout, Duration::from_secs(30));
    assert_eq!(s.max_request_body, 10 * 1024 * 1024);
    assert_eq!(s.pid_file, PathBuf::from("/tmp/ssegate.pid"));
    assert_eq!(s.upgrade_sock, PathBuf::from("/tmp/ssegate_upgrade.sock"));
    assert!(c.admin.is_none());
    let r = &c.routes[0];
    assert!(r.strip_prefix);
    assert_eq!(
        r.upstream,
        Upstream {
            tls: false,
            host: "127.0.0.1".into(),
            port: 9000,
            base_path: String::new(),
            host_header: "127.0.0.1:9000".into(),
            ca_file: None,
        }
    );
    assert_eq!(r.format, FormatChoice::Auto);
    assert_eq!(r.heartbeat_interval, Some(Duration::from_secs(15)));
    assert_eq!(r.event_field, None);
    assert!(!r.ids);
    assert_eq!(r.done_event, None);
    assert!(!r.forward_comments);
    assert_eq!(r.connect_timeout, Duration::from_secs(5));
    assert_eq!(r.header_timeout, Duration::from_secs(300));
    assert_eq!(r.idle_timeout, Duration::from_secs(300));
    assert_eq!(r.max_duration, Some(Duration::from_secs(3600)));
    assert_eq!(r.max_event_size, 1024 * 1024);
    assert_eq!(r.on_decode_error, DecodeErrorPolicy::Skip);
}

#[test]
fn syntax_and_serde_errors_have_positions() {
    one_error("[server\nlisten = []\n", 1, 8, "unclosed table");
    // Unknown key on line 7, column 1.
    let src = "[server]\nlisten = [\"127.0.0.1:8080\"]\n\n[[route]]\nname = \"r\"\npath_prefix = \"/r\"\nbogus = 1\n";
    one_error(src, 7, 1, "unknown field `bogus`");
    one_error("[servr]\n", 1, 2, "unknown field `servr`");
    one_error(&route_with("ids = \"yes\""), 8, 7, "invalid type: string \"yes\", expected a boolean");
    one_error(&route_with("max_event_size = 1.5"), 8, 18, "expected a size");
    one_error(&route_with("idle_timeout = 30"), 8, 16, "expected a duration string");
    one_error("[server]\nlisten = [1]\n", 2, 11, "expected a string");
    one_error("[server]\nlisten = 1\n", 2, 10, "address string");
    one_error(&route_with("done_event = { data = \"x\", evnt = \"e\" }"), 8, 28, "unknown field `evnt`");
    one_error(&route_with("name = \"again\""), 8, 1, "duplicate key");
}

#[test]
fn missing_things() {
    one_error(
        "[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://h\"\n",
        1,
        1,
        "missing [server] table",
    );
    one_error("[server]\nlisten = [\"127.0.0.1:1\"]\n", 1, 1, "no routes");
    one_error(
        "[server]\nlisten = []\n[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://h\"\n",
        1,
        1,
        "no listener",
    );
    let errs = errors("[server]\nlisten = [\"127.0.0.1:1\"]\n\n[[route]]\nformat = \"sse\"\n");
    assert_eq!(
        errs,
        vec![
            "test.toml:4:1: missing key `name` in [[route]]",
            "test.toml:4:1: missing key `path_prefix` in [[route]]",
            "test.toml:4:1: missing key `upstream` in [[route]]",
        ]
    );
    one_error("[server]\nlisten = [\"127.0.0.1:1\"]\n[admin]\n[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://h\"\n", 3, 1, "missing key `listen` in [admin]");
    one_error(&route_with("done_event = { event = \"end\" }"), 8, 14, "missing key `data` in done_event");
}

#[test]
fn collects_every_error_in_file_order() {
    let src = r#"[server]
listen = ["nope", "127.0.0.1:8080"]
threads = 0

[admin]
listen = "127.0.0.1:8080"

[[route]]
name = "bad name"
path_prefix = "x"
upstream = "ftp://h"
format = "sse"
event_field = "type"
heartbeat_interval = "1ms"
max_event_size = "1B"
on_decode_error = "maybe"
"#;
    let errs = errors(src);
    let positions: Vec<&str> = errs.iter().map(|e| e.split(':').nth(1).unwrap_or("")).collect();
    assert_eq!(positions, ["2", "3", "6", "9", "10", "11", "13", "14", "15", "16"], "{errs:#?}");
    assert!(errs.iter().all(|e| e.starts_with("test.toml:")));
    let display = ConfigErrors(errs.clone()).to_string();
    assert_eq!(display.lines().count(), errs.len());
}

#[test]
fn columns_count_characters_and_crlf_works() {
    // "ä" is two bytes; the column counts it once.
    let src = "# ä\r\n[server]\r\nlisten = [\"127.0.0.1:8080\"]\r\n[[route]]\r\nname = \"r\"\r\npath_prefix = \"/r\"\r\nupstream = \"http://h\"\r\ndone_event = { data = \"ä\", event = \"\" }\r\n";
    one_error(src, 8, 36, "done_event.event must not be empty");
    let cx = Cx::new(Path::new("x"), "aä\nb", &System);
    assert_eq!(cx.line_col(0), (1, 1));
    assert_eq!(cx.line_col(2), (1, 2)); // inside "ä": floored to its start
    assert_eq!(cx.line_col(3), (1, 3));
    assert_eq!(cx.line_col(4), (2, 1));
    assert_eq!(cx.line_col(99), (2, 2));
}

#[test]
fn unreadable_config_file() {
    let err = Config::load(Path::new("/nonexistent/ssegate.toml")).unwrap_err();
    assert_eq!(err.0.len(), 1);
    assert!(err.0[0].starts_with("/nonexistent/ssegate.toml: cannot read config file"), "{err}");
}

#[test]
fn never_panics_on_garbage() {
    let inputs = [
        "",
        "\u{feff}",
        "[[server]]",
        "server = 1",
        "route = 1",
        "route = []",
        "[[route]]\n[[route]]",
        "[server]\nlisten = [[]]",
        "[server]\nthreads = 99999999999999999999",
        "[server]\nmax_request_body = 9223372036854775807",
        "[server]\ntls = 5",
        "[[route]]\ndone_event = 1",
        "[[route]]\nupstream = \"http://[\"",
        "[[route]]\nupstream = \"https://\u{1F600}\"",
        "[[route]]\npath_prefix = \"/\u{1F600}\"",
        "\u{0}\u{1}",
        "a = \"\\uD800\"",
    ];
    for src in inputs {
        let _ = load(src);
    }
    // Every prefix of a full config.
    let full =
        route_with("format = \"ndjson\"\nevent_field = \"t\"\ndone_event = { event = \"e\", data = \"d\" }");
    for i in 0..=full.len() {
        if full.is_char_boundary(i) {
            let _ = load(&full[..i]);
        }
    }
}

#[test]
fn every_shipped_config_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let mut count = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            count += 1;
            if let Err(e) = Config::load(&path) {
                failures.push(e.to_string());
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(count >= 6, "expected at least 6 files in {}, found {count}", dir.display());
}

#[test]
fn map_source_serves_the_config_file_and_every_read() {
    let source = MapSource::new()
        .with_file("/cfg/ssegate.toml", MINIMAL)
        .with_file("/cfg/cert.pem", "-----BEGIN TEST-----\n")
        .with_file("/cfg/sub/x", "");
    let c = Config::load_with(Path::new("/cfg/ssegate.toml"), &source).unwrap();
    assert_eq!((c.path.as_path(), c.routes.len()), (Path::new("/cfg/ssegate.toml"), 1));
    let err = Config::load_with(Path::new("/cfg/other.toml"), &source).unwrap_err();
    assert_eq!(err.0, ["/cfg/other.toml: cannot read config file: entity not found"]);

    // A path with files under it is a directory, not a regular file.
    let tls = "\n[server.tls]\nlisten = \"127.0.0.1:8443\"\ncert = \"cert.pem\"\nkey = \"sub\"\n\n[[route]]";
    let src = MINIMAL.replace("\n\n[[route]]", tls);
    let errs = Config::from_str_with(Path::new("/cfg/ssegate.toml"), &src, &source).unwrap_err().0;
    assert_eq!(errs, ["/cfg/ssegate.toml:6:7: key \"sub\" (/cfg/sub) is not a regular file"]);
}

#[test]
fn map_source_and_system_give_the_same_messages() {
    let dir = Dir::new("utf8");
    let bad = b"\xff\xfe key\n".to_vec();
    std::fs::write(dir.0.join("bad.txt"), &bad).unwrap();
    let src = format!("{MINIMAL}auth = {{ keys_file = [\"bad.txt\", \"missing.txt\"] }}\n");
    let real = Config::from_str_at(&dir.file(), &src).unwrap_err().0;
    assert_eq!(real.len(), 2, "{real:#?}");
    assert!(real[0].ends_with("bad.txt: stream did not contain valid UTF-8"), "{real:#?}");
    let mapped = MapSource::new().with_file(dir.0.join("bad.txt"), bad);
    let mapped = Config::from_str_with(&dir.file(), &src, &mapped).unwrap_err().0;
    assert_eq!(real[0], mapped[0]);
}

#[test]
fn system_source_reads_the_process_environment() {
    // Any variable this process already has that fits in a header value (tests never set one).
    let Some((name, value)) = std::env::vars().find(|(k, v)| {
        k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !v.is_empty()
            && !v.contains("${")
            && http::HeaderValue::from_str(v).is_ok()
    }) else {
        return;
    };
    let src = format!("{MINIMAL}upstream_headers = {{ \"x-v\" = \"${{env:{name}}}\" }}\n");
    let c = Config::from_str_at(Path::new("test.toml"), &src).unwrap();
    assert_eq!(c.routes[0].upstream_headers[0].value.to_str().unwrap(), value);
    // The map source does not see it.
    let errs = errors(&src);
    assert_eq!(
        errs,
        [format!("test.toml:8:30: upstream_headers.x-v: environment variable {name} is not set")]
    );
}
