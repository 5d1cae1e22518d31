//! The leaf of validation: [`Cx`] holds the file being validated and every problem found so far (each with
//! its byte offset, printed as `file:line:col: message`), resolves relative paths against the config's
//! directory, and makes every read of the outside world (environment variables, files) through a
//! [`Source`]. Section modules report through it and never touch `std::env` or `std::fs` themselves.

use std::collections::BTreeMap;
use std::env::VarError;
use std::fmt;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

/// Where a config's outside inputs come from: environment variables (`auth.keys_env`, `${env:NAME}`) and
/// files (the config file, `auth.keys_file`, `${file:PATH}`, the TLS cert and key, `ca_file`).
/// [`System`] is the real process environment and file system; [`MapSource`] is an in-memory one for
/// tests. Paths given to it are already resolved against the config file's directory.
pub trait Source {
    /// The value of the environment variable `name`.
    fn env(&self, name: &str) -> Result<String, VarError>;
    /// Whether `path` (symlinks followed) is a regular file; `Err` when it cannot be inspected (missing,
    /// no permission). Asked before reading the TLS cert / key and `ca_file`, so that a directory, FIFO or
    /// device given there is refused instead of read.
    fn is_file(&self, path: &Path) -> io::Result<bool>;
    /// The whole content of the file at `path`.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
}

/// The process environment and the real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct System;

impl Source for System {
    fn env(&self, name: &str) -> Result<String, VarError> {
        std::env::var(name)
    }

    fn is_file(&self, path: &Path) -> io::Result<bool> {
        std::fs::metadata(path).map(|m| m.is_file())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }
}

/// An in-memory [`Source`] (for tests): variables and files are exactly those added; every other
/// variable is unset and every other path is missing (`NotFound`), except that a path under which files
/// were added is a directory (`is_file` answers `false`).
#[derive(Debug, Clone, Default)]
pub struct MapSource {
    env: BTreeMap<String, String>,
    files: BTreeMap<PathBuf, Vec<u8>>,
}

impl MapSource {
    pub fn new() -> MapSource {
        MapSource::default()
    }

    /// Sets the environment variable `name`.
    pub fn with_env(mut self, name: &str, value: &str) -> MapSource {
        self.env.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Adds a file at `path` (as the config refers to it after resolution: absolute, or joined to the
    /// config file's directory).
    pub fn with_file(mut self, path: impl Into<PathBuf>, content: impl Into<Vec<u8>>) -> MapSource {
        self.files.insert(path.into(), content.into());
        self
    }
}

impl Source for MapSource {
    fn env(&self, name: &str) -> Result<String, VarError> {
        self.env.get(name).cloned().ok_or(VarError::NotPresent)
    }

    fn is_file(&self, path: &Path) -> io::Result<bool> {
        if self.files.contains_key(path) {
            Ok(true)
        } else if self.files.keys().any(|f| f.starts_with(path)) {
            Ok(false)
        } else {
            Err(io::ErrorKind::NotFound.into())
        }
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.files.get(path).cloned().ok_or_else(|| io::ErrorKind::NotFound.into())
    }
}

/// Everything wrong with a config file; `Display` prints one `file:line:col: message` per line.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for ConfigErrors {}

/// The text of the file at `path` read through `source` (same error as `std::fs::read_to_string`).
pub(super) fn read_to_string(source: &dyn Source, path: &Path) -> io::Result<String> {
    String::from_utf8(source.read(path)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "stream did not contain valid UTF-8"))
}

/// Validation context: the file, its text, where outside inputs come from, and every error found so far
/// (byte offset, message).
pub(super) struct Cx<'a> {
    path: &'a Path,
    dir: PathBuf,
    src: &'a str,
    source: &'a dyn Source,
    errors: Vec<(Option<usize>, String)>,
}

impl<'a> Cx<'a> {
    pub(super) fn new(path: &'a Path, src: &'a str, source: &'a dyn Source) -> Self {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Cx { path, dir, src, source, errors: Vec::new() }
    }

    /// The config file's path.
    pub(super) fn path(&self) -> &Path {
        self.path
    }

    /// Reports `msg` at the start of `span`.
    pub(super) fn err(&mut self, span: Range<usize>, msg: impl Into<String>) {
        self.errors.push((Some(span.start), msg.into()));
    }

    /// Reports `msg` without a position (printed as `file: message`, before every positioned one).
    pub(super) fn err_unplaced(&mut self, msg: impl Into<String>) {
        self.errors.push((None, msg.into()));
    }

    pub(super) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// `(line, col)`, both 1-based, of a byte offset; columns count characters.
    pub(super) fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut off = offset.min(self.src.len());
        while !self.src.is_char_boundary(off) {
            off -= 1;
        }
        let before = &self.src[..off];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }

    pub(super) fn line_of(&self, offset: usize) -> usize {
        self.line_col(offset).0
    }

    pub(super) fn finish(mut self) -> ConfigErrors {
        // File order; problems without a position (there should be none) first.
        self.errors.sort_by_key(|(at, _)| *at);
        let file = self.path.display();
        ConfigErrors(
            self.errors
                .iter()
                .map(|(at, msg)| match at {
                    Some(at) => {
                        let (line, col) = self.line_col(*at);
                        format!("{file}:{line}:{col}: {msg}")
                    }
                    None => format!("{file}: {msg}"),
                })
                .collect(),
        )
    }

    pub(super) fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }

    // ---- reads (every one goes through `self.source`) -----------------------------------------------

    /// The value of the environment variable `name`; `what` (`auth.keys_env`) starts the error messages.
    pub(super) fn env_var(&mut self, what: &str, name: &str, span: Range<usize>) -> Option<String> {
        if !is_env_name(name) {
            self.err(span, format!("{what}: {name:?} is not an environment variable name"));
            return None;
        }
        match self.source.env(name) {
            Ok(v) => Some(v),
            Err(e) => {
                let why = match e {
                    VarError::NotPresent => "is not set",
                    VarError::NotUnicode(_) => "is not UTF-8",
                };
                self.err(span, format!("{what}: environment variable {name} {why}"));
                None
            }
        }
    }

    /// The resolved path of `file` and its text; `what` (`auth.keys_file`) starts the error message.
    pub(super) fn read_text(
        &mut self,
        what: &str,
        file: &str,
        span: Range<usize>,
    ) -> Option<(PathBuf, String)> {
        let path = self.resolve(file);
        match read_to_string(self.source, &path) {
            Ok(text) => Some((path, text)),
            Err(e) => {
                self.err(span, format!("{what}: cannot read {}: {e}", path.display()));
                None
            }
        }
    }

    /// Resolves every `${env:NAME}` and `${file:PATH}` in `raw` (a file's content without its trailing line
    /// breaks); `what` (`upstream_headers.X`, `redis.url`) starts the error messages.
    pub(super) fn interpolate(&mut self, what: &str, raw: &Spanned<String>) -> Option<String> {
        let src = raw.get_ref();
        let mut out = String::with_capacity(src.len());
        let mut rest = src.as_str();
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let Some(end) = after.find('}') else {
                self.err(
                    raw.span(),
                    format!("{what}: unterminated `${{` (expected ${{env:NAME}} or ${{file:PATH}})"),
                );
                return None;
            };
            let reference = &after[..end];
            if let Some(name) = reference.strip_prefix("env:") {
                let v = self.env_var(what, name, raw.span())?;
                out.push_str(&v);
            } else if let Some(file) = reference.strip_prefix("file:") {
                if file.is_empty() {
                    self.err(raw.span(), format!("{what}: empty file path in ${{file:}}"));
                    return None;
                }
                let (_, v) = self.read_text(what, file, raw.span())?;
                out.push_str(v.trim_end_matches(['\r', '\n']));
            } else {
                self.err(
                    raw.span(),
                    format!("{what}: unknown reference; expected ${{env:NAME}} or ${{file:PATH}}"),
                );
                return None;
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Some(out)
    }

    /// A path that is only used later (pid file, socket): must be non-empty; relative paths are resolved
    /// against the config file's directory. Nothing is read or checked on disk.
    pub(super) fn file_path(&mut self, key: &str, raw: Option<Spanned<String>>, default: &str) -> PathBuf {
        match raw {
            None => PathBuf::from(default),
            Some(p) if p.get_ref().is_empty() => {
                self.err(p.span(), format!("{key} must not be empty"));
                PathBuf::from(default)
            }
            Some(p) => self.resolve(p.get_ref()),
        }
    }

    /// A file that must exist, be a regular file and be readable now (relative paths resolved against the
    /// config's directory); `pem`: it must also contain a PEM block.
    pub(super) fn readable_file(
        &mut self,
        table: &str,
        key: &str,
        raw: Option<Spanned<String>>,
        header: Range<usize>,
        pem: bool,
    ) -> Option<PathBuf> {
        let Some(raw) = raw else {
            self.err(header, format!("missing key `{key}` in {table}"));
            return None;
        };
        if raw.get_ref().is_empty() {
            self.err(raw.span(), format!("{key} must not be empty"));
            return None;
        }
        let path = self.resolve(raw.get_ref());
        let shown = if path.as_os_str() == raw.get_ref().as_str() {
            format!("{:?}", raw.get_ref())
        } else {
            format!("{:?} ({})", raw.get_ref(), path.display())
        };
        match self.source.is_file(&path) {
            Err(e) => {
                self.err(raw.span(), format!("cannot read {key} file {shown}: {e}"));
                return None;
            }
            Ok(false) => {
                self.err(raw.span(), format!("{key} {shown} is not a regular file"));
                return None;
            }
            Ok(true) => {}
        }
        match self.source.read(&path) {
            Err(e) => {
                self.err(raw.span(), format!("cannot read {key} file {shown}: {e}"));
                None
            }
            Ok(bytes) if pem && !contains(&bytes, b"-----BEGIN ") => {
                self.err(raw.span(), format!("{key} file {shown} is not PEM (no \"-----BEGIN\" line)"));
                None
            }
            Ok(_) => Some(path),
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `[A-Za-z_][A-Za-z0-9_]*`
fn is_env_name(name: &str) -> bool {
    let mut b = name.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}
