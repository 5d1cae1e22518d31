//! Unit tests of the config module, one file per section. The helpers here are shared by all of them.

mod headers;
mod load;
mod pool;
mod redis;
mod route;
mod security;
mod server;
mod upstream;
mod values;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ssegate_frame::Format;

use super::*;

/// A temp dir with a PEM-looking cert, key and CA, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("ssegate-config-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["cert.pem", "key.pem", "ca.pem"] {
            std::fs::write(dir.join(f), "-----BEGIN TEST-----\nAA==\n-----END TEST-----\n").unwrap();
        }
        std::fs::write(dir.join("not-pem.txt"), "hello").unwrap();
        Dir(dir)
    }
    fn file(&self) -> PathBuf {
        self.0.join("ssegate.toml")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `src` as `test.toml`, with no environment variable set and no file but the config (a [`MapSource`]).
fn load(src: &str) -> Result<Config, ConfigErrors> {
    Config::from_str_with(Path::new("test.toml"), src, &MapSource::new())
}

fn errors(src: &str) -> Vec<String> {
    match load(src) {
        Ok(c) => panic!("expected errors, got {c:#?}"),
        Err(e) => e.0,
    }
}

/// The single error of `src`, which must start with `test.toml:{line}:{col}: ` and contain `needle`.
#[track_caller]
fn one_error(src: &str, line: usize, col: usize, needle: &str) {
    let errs = errors(src);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let prefix = format!("test.toml:{line}:{col}: ");
    assert!(errs[0].starts_with(&prefix), "expected {prefix:?}, got {:?}", errs[0]);
    assert!(errs[0].contains(needle), "expected {needle:?} in {:?}", errs[0]);
}

const MINIMAL: &str = "[server]\nlisten = [\"127.0.0.1:8080\"]\n\n[[route]]\nname = \"r\"\npath_prefix = \"/r\"\nupstream = \"http://127.0.0.1:9000\"\n";

/// `MINIMAL` with `extra` lines appended to the route (starting on line 8).
fn route_with(extra: &str) -> String {
    format!("{MINIMAL}{extra}\n")
}
