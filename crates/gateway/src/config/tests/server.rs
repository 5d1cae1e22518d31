//! Config unit tests: `[server]`, `[server.tls]`, `[admin]` and listener conflicts.

use super::*;

#[test]
fn single_listen_string_and_tls_only() {
    let dir = Dir::new("tlsonly");
    let src = "[server]\nlisten = \"0.0.0.0:80\"\n[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://h\"\n";
    let c = Config::from_str_at(&dir.file(), src).unwrap();
    assert_eq!(c.server.listen, vec!["0.0.0.0:80".parse().unwrap()]);
    assert_eq!(c.routes[0].upstream.port, 80);
    assert_eq!(c.routes[0].upstream.host_header, "h");

    let src = "[server.tls]\nlisten = \"127.0.0.1:8443\"\ncert = \"cert.pem\"\nkey = \"key.pem\"\n[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://h\"\n";
    let c = Config::from_str_at(&dir.file(), src).unwrap();
    assert!(c.server.listen.is_empty());
    assert!(c.server.tls.is_some());
}

#[test]
fn listen_errors() {
    one_error(
        "[server]\nlisten = [\"127.0.0.1\"]\n[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://h\"\n",
        2,
        11,
        "invalid server.listen address \"127.0.0.1\": expected ip:port",
    );
    one_error(
        "[server]\nlisten = [\"localhost:99999\"]\n[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://h\"\n",
        2,
        11,
        "invalid port \"99999\"",
    );
    let c = load("[server]\nlisten = [\"localhost:8080\"]\n[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://h\"\n").unwrap();
    assert_eq!(c.server.listen, vec!["127.0.0.1:8080".parse().unwrap()]);
    // Duplicates: within server.listen, and admin vs server.
    one_error(
        "[server]\nlisten = [\"127.0.0.1:8080\", \"127.0.0.1:8080\"]\n[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://h\"\n",
        2,
        29,
        "listen address 127.0.0.1:8080 is already used by server.listen 127.0.0.1:8080 (line 2)",
    );
    one_error(
        "[server]\nlisten = [\"0.0.0.0:8080\"]\n[admin]\nlisten = \"127.0.0.1:8080\"\n[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://h\"\n",
        4,
        10,
        "overlaps server.listen 0.0.0.0:8080 (line 2)",
    );
    // Port 0 (OS-chosen) never conflicts; different families do not either.
    load("[server]\nlisten = [\"127.0.0.1:0\", \"[::]:8080\", \"0.0.0.0:8081\"]\n[admin]\nlisten = \"127.0.0.1:0\"\n[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://h\"\n").unwrap();
}

#[test]
fn tls_errors() {
    let dir = Dir::new("tlserr");
    let src = "[server]\n[server.tls]\nlisten = \"127.0.0.1:8443\"\ncert = \"missing.pem\"\nkey = \"not-pem.txt\"\n[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://h\"\n";
    let errs = Config::from_str_at(&dir.file(), src).unwrap_err().0;
    assert_eq!(errs.len(), 2, "{errs:#?}");
    let f = dir.file().display().to_string();
    assert!(errs[0].starts_with(&format!("{f}:4:8: cannot read cert file \"missing.pem\"")), "{}", errs[0]);
    assert!(errs[1].starts_with(&format!("{f}:5:7: key file \"not-pem.txt\"")), "{}", errs[1]);
    assert!(errs[1].contains("is not PEM"), "{}", errs[1]);

    let src = "[server]\n[server.tls]\nlisten = \"127.0.0.1:8443\"\n[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://h\"\n";
    let errs = Config::from_str_at(&dir.file(), src).unwrap_err().0;
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs[0].ends_with(":2:1: missing key `cert` in [server.tls]"), "{}", errs[0]);
    assert!(errs[1].ends_with(":2:1: missing key `key` in [server.tls]"), "{}", errs[1]);

    // A directory is not a file.
    let src = format!("[server]\n[server.tls]\nlisten = \"127.0.0.1:8443\"\ncert = {:?}\nkey = \"key.pem\"\n[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://h\"\n", dir.0.display().to_string());
    let errs = Config::from_str_at(&dir.file(), &src).unwrap_err().0;
    assert!(errs[0].contains("is not a regular file"), "{errs:#?}");
}

#[test]
fn threads_rules() {
    let src = |t: &str| MINIMAL.replace("]\n\n", &format!("]\nthreads = {t}\n\n"));
    assert_eq!(load(&src("1")).unwrap().server.threads, 1);
    assert_eq!(load(&src("1024")).unwrap().server.threads, 1024);
    one_error(&src("0"), 3, 11, "threads must be between 1 and 1024, got 0");
    one_error(&src("1025"), 3, 11, "got 1025");
    one_error(&src("-3"), 3, 11, "got -3");
}

#[test]
fn server_limits() {
    let c = load(MINIMAL).unwrap();
    assert_eq!(c.server.max_header_size, 32 * 1024);
    assert_eq!(c.server.request_header_timeout, Duration::from_secs(10));
    assert_eq!(c.server.request_body_timeout, Duration::from_secs(30));
    let r = &c.routes[0];
    assert!(r.auth.is_none() && r.upstream_headers.is_empty() && r.cors.is_none());
    assert_eq!((r.max_streams, r.retry_after), (0, Duration::from_secs(1)));
    let src = MINIMAL.replace(
        "[server]\n",
        "[server]\nmax_header_size = \"8KiB\"\nrequest_header_timeout = \"2s\"\nrequest_body_timeout = \"3s\"\n",
    );
    let c = load(&src).unwrap();
    assert_eq!(c.server.max_header_size, 8 * 1024);
    assert_eq!(c.server.request_header_timeout, Duration::from_secs(2));
    assert_eq!(c.server.request_body_timeout, Duration::from_secs(3));
    let bad = MINIMAL.replace("[server]\n", "[server]\nmax_header_size = \"2MiB\"\n");
    assert!(errors(&bad)[0].contains("max_header_size must be between 1KiB and 512KiB"));
    one_error(&route_with("max_streams = -1"), 8, 15, "max_streams must be between 0");
    let c = load(&route_with("max_streams = 3\nretry_after = \"2500ms\"")).unwrap();
    assert_eq!((c.routes[0].max_streams, c.routes[0].retry_after), (3, Duration::from_millis(2500)));
}

#[test]
fn dns_servers_default_to_the_system_and_take_an_optional_port() {
    assert!(load(MINIMAL).unwrap().server.dns_servers.is_empty(), "default: the system's resolv.conf");
    let src = MINIMAL
        .replace("[server]\n", "[server]\ndns_servers = [\"10.0.0.2\", \"127.0.0.1:5353\", \"[::1]:53\"]\n");
    let got: Vec<String> = load(&src).unwrap().server.dns_servers.iter().map(|a| a.to_string()).collect();
    assert_eq!(got, ["10.0.0.2:53", "127.0.0.1:5353", "[::1]:53"]);
    for bad in ["ns.example", "10.0.0.2:0", "10.0.0.2:99999", ""] {
        let src = MINIMAL.replace("[server]\n", &format!("[server]\ndns_servers = [\"{bad}\"]\n"));
        let e = errors(&src);
        assert!(
            e.len() == 1 && e[0].contains("dns_servers") && e[0].contains("not an IP address"),
            "{bad}: {e:?}"
        );
    }
}
