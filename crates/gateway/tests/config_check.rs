//! `ssegate check` through the real binary: every shipped config passes; a broken one reports every error
//! as `file:line:col: message` and exits 1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn check(config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ssegate"))
        .arg("check")
        .arg("--config")
        .arg(config)
        .output()
        .expect("run ssegate check")
}

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

#[test]
fn every_shipped_config_passes_check() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(config_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "expected the default config and the examples, found {files:?}");
    for file in files {
        let out = check(&file);
        assert!(
            out.status.success(),
            "{}: {}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn broken_config_reports_every_error_with_line_and_col() {
    let dir = std::env::temp_dir().join(format!("ssegate-config-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("broken.toml");
    std::fs::write(
        &file,
        r#"[server]
listen = ["127.0.0.1"]

[[route]]
name = "a"
path_prefix = "/a/"
upstream = "ftp://example.com"
format = "ndjsn"
heartbeat_interval = "15"
"#,
    )
    .unwrap();
    let out = check(&file);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let f = file.display().to_string();
    let lines: Vec<&str> = stderr.lines().collect();
    let expected = [
        format!("{f}:2:11: invalid server.listen address \"127.0.0.1\""),
        format!("{f}:6:15: invalid path_prefix \"/a/\""),
        format!("{f}:7:12: invalid upstream \"ftp://example.com\""),
        format!("{f}:8:10: unknown format \"ndjsn\"; expected one of auto, passthrough, sse,"),
        format!("{f}:9:22: heartbeat_interval: duration \"15\" has no unit"),
    ];
    assert_eq!(lines.len(), expected.len(), "{stderr}");
    for (line, want) in lines.iter().zip(&expected) {
        assert!(line.starts_with(want.as_str()), "expected {want:?}, got {line:?}");
    }

    // A TOML syntax error and an unknown key are located too.
    std::fs::write(&file, "[server]\nlisten = [\"127.0.0.1:1\"\n").unwrap();
    let out = check(&file);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with(&format!("{f}:2:24: unclosed array")), "{stderr}");
    std::fs::write(&file, "[server]\nlisten = [\"127.0.0.1:1\"]\nthreds = 2\n").unwrap();
    let out = check(&file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with(&format!("{f}:3:1: unknown field `threds`")), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);

    // A missing file: one message, exit 1, no panic.
    let out = check(Path::new("/nonexistent/ssegate.toml"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file"));
}
