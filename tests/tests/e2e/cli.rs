//! The command line: `ssegate check` over every shipped config and on broken configs, `--version`, and
//! start-up failures that must be one clear message and a non-zero exit, never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::Path;

use ssegate_tests::gateway::{run_cli, workspace_root};

fn write_temp(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// Asserts `out` has a line `path:line:COL: message` (COL digits, non-empty message).
#[track_caller]
fn assert_has_location(out: &str, path: &str, line: u32) {
    let prefix = format!("{path}:{line}:");
    let ok = out.lines().any(|l| {
        l.find(&prefix).is_some_and(|i| {
            let rest = &l[i + prefix.len()..];
            let digits = rest.chars().take_while(char::is_ascii_digit).count();
            digits > 0 && rest[digits..].starts_with(": ") && rest.len() > digits + 2
        })
    });
    assert!(ok, "no `{prefix}COL: message` line in:\n{out}");
}

#[test]
fn check_passes_every_shipped_config() {
    let dir = workspace_root().join("config");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "config/ has no .toml files");
    for f in files {
        let (code, out) = run_cli(&["check", "--config", &f.display().to_string()]);
        assert_eq!(code, Some(0), "ssegate check {} failed:\n{out}", f.display());
    }
}

#[test]
fn check_reports_an_unknown_key_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(
        dir.path(),
        "broken.toml",
        "[server]\nlisten = [\"127.0.0.1:8080\"]\nbogus_key = 1\n\n[[route]]\nname = \"r\"\npath_prefix = \"/r\"\n\
         upstream = \"http://127.0.0.1:9\"\n",
    );
    let (code, out) = run_cli(&["check", "--config", &path]);
    assert_eq!(code, Some(1), "exit code; output:\n{out}");
    assert_has_location(&out, &path, 3);
    assert!(out.contains("bogus_key"), "the message names the key:\n{out}");
}

#[test]
fn check_reports_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(
        dir.path(),
        "broken.toml",
        "[server]\nlisten = [\"127.0.0.1:8080\"]\n\n[[route]]\nname = \"r\"\npath_prefix = \"/r\"\n\
         upstream = \"http://127.0.0.1:9\"\nformat = \"xml\"\nheartbeat_interval = \"soon\"\n",
    );
    let (code, out) = run_cli(&["check", "--config", &path]);
    assert_eq!(code, Some(1), "exit code; output:\n{out}");
    assert_has_location(&out, &path, 8);
    assert_has_location(&out, &path, 9);
}

#[test]
fn check_reports_a_toml_syntax_error_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(dir.path(), "broken.toml", "[server]\nlisten = [\"127.0.0.1:8080\"\n\n[[route]]\n");
    let (code, out) = run_cli(&["check", "--config", &path]);
    assert_eq!(code, Some(1), "exit code; output:\n{out}");
    let located = out.lines().any(|l| {
        l.split_once(&format!("{path}:")).is_some_and(|(_, rest)| {
            let mut parts = rest.splitn(3, ':');
            let num =
                |s: Option<&str>| s.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
            num(parts.next()) && num(parts.next())
        })
    });
    assert!(located, "a `{path}:LINE:COL:` location:\n{out}");
    assert!(!out.contains("panicked"), "no panic:\n{out}");
}

#[test]
fn check_of_a_missing_file_fails_cleanly() {
    let (code, out) = run_cli(&["check", "--config", "/nonexistent/ssegate.toml"]);
    assert_eq!(code, Some(1), "exit code; output:\n{out}");
    assert!(out.contains("/nonexistent/ssegate.toml"), "names the file:\n{out}");
    assert!(!out.contains("panicked"), "no panic:\n{out}");
}

#[test]
fn version_prints_the_version() {
    let (code, out) = run_cli(&["--version"]);
    assert_eq!(code, Some(0));
    assert!(out.contains(env!("CARGO_PKG_VERSION")), "{out}");
}

#[test]
fn run_with_a_broken_config_exits_non_zero_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(dir.path(), "broken.toml", "[server]\nlisten = [\"127.0.0.1:8080\"]\nbogus = 1\n");
    let (code, out) = run_cli(&["run", "--config", &path]);
    assert!(code.is_some_and(|c| c != 0), "non-zero exit, got {code:?}:\n{out}");
    assert!(!out.contains("panicked"), "no panic:\n{out}");
    assert_has_location(&out, &path, 3);
}

#[test]
fn run_with_a_port_in_use_exits_non_zero_without_panicking() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let path = write_temp(
        dir.path(),
        "busy.toml",
        &format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\npid_file = \"{d}/p.pid\"\nupgrade_sock = \"{d}/u.sock\"\n\n\
             [[route]]\nname = \"r\"\npath_prefix = \"/r\"\nupstream = \"http://127.0.0.1:9\"\n"
        ),
    );
    let (code, out) = run_cli(&["run", "--config", &path]);
    assert!(code.is_some_and(|c| c != 0), "non-zero exit, got {code:?}:\n{out}");
    assert!(!out.contains("panicked"), "no panic:\n{out}");
    assert!(out.contains(&port.to_string()), "the message names the address:\n{out}");
    drop(busy);
}

#[tokio::test]
async fn a_hand_written_config_text_serves() {
    use ssegate_tests::{assert_bytes, bounded, get, GatewaySpec, MockUpstream, Reply, Step};
    bounded(async {
        let mock =
            MockUpstream::serve(Reply::stream("text/plain", vec![Step::send("a\nb\n"), Step::End])).await;
        let upstream = mock.url();
        // Comments, literal and multi-line strings, odd spacing: the text as an operator might write it.
        let gw = GatewaySpec::new()
            .config_text(move |p| {
                let dir = p.dir.display();
                format!(
                    "# written by hand\n[server]\nlisten   = [ '{}' ]  # literal string\n\
                     pid_file = '{dir}/p.pid'\nupgrade_sock = '{dir}/u.sock'\n\n\
                     [admin]\nlisten = \"{}\"\n\n\
                     [[route]]\nname = \"r\"\npath_prefix = \"/r\"\nupstream = \"\"\"{upstream}\"\"\"\n\
                     format = 'lines'\n",
                    p.listen[0], p.admin
                )
            })
            .start()
            .await;
        let mut resp = get(gw.addr(), "/r").await;
        assert_bytes(&resp.body_to_end().await, b"data: a\n\ndata: b\n\n");
    })
    .await;
}
