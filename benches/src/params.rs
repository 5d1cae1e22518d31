//! The mock upstream's per-request parameters.
//!
//! Given in the query string (`/api/chat?n=200&pace_ms=10`) and/or in a path segment `/_/<params>/` in
//! front of the real path (`/_/n=200&pace_ms=10/api/chat`) for clients that cannot add a query string
//! (LiteLLM appends `/api/chat` to a configured base URL). Query values win. Defaults come from the mock's
//! command line.

/// How messages are cut into writes (each write is one HTTP chunk).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunking {
    /// One message per write.
    Whole,
    /// Every message split across three writes.
    Split,
    /// `batch` messages per write.
    Batch,
}

/// The largest write a request may ask for (`size` × messages per write): the mock assembles a write in
/// memory, and loadgen's decoder takes events up to this size.
pub const MAX_WRITE: u64 = 16 << 20;

/// Parameters of one mock response.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Messages to send (not counting the format's end marker).
    pub n: u64,
    /// Time between writes in milliseconds (0: as fast as the socket takes them).
    pub pace_ms: f64,
    /// Target size of one message in bytes (the text is padded up to it; never shorter than the fixed part).
    pub size: usize,
    /// How messages are cut into writes.
    pub chunk: Chunking,
    /// Messages per write with `Chunking::Batch`.
    pub batch: u64,
    /// Delay after the response head before the first message, in milliseconds.
    pub first_ms: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params { n: 200, pace_ms: 10.0, size: 100, chunk: Chunking::Whole, batch: 1, first_ms: 0 }
    }
}

impl Params {
    /// Applies `k=v&k=v` pairs; unknown keys and bad values are errors.
    pub fn apply(&mut self, pairs: &str) -> Result<(), String> {
        for pair in pairs.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let bad = || format!("bad value {v:?} for {k}");
            match k {
                "n" => self.n = v.parse().map_err(|_| bad())?,
                "pace_ms" => {
                    self.pace_ms = v.parse().map_err(|_| bad())?;
                    if !(0.0..=3_600_000.0).contains(&self.pace_ms) {
                        return Err(bad());
                    }
                }
                "size" => self.size = v.parse().map_err(|_| bad())?,
                "chunk" => {
                    self.chunk = match v {
                        "whole" => Chunking::Whole,
                        "split" => Chunking::Split,
                        "batch" => Chunking::Batch,
                        _ => return Err(bad()),
                    }
                }
                "batch" => {
                    self.batch = v.parse().map_err(|_| bad())?;
                    if self.batch == 0 {
                        return Err(bad());
                    }
                    self.chunk = Chunking::Batch;
                }
                "first_ms" => {
                    self.first_ms = v.parse().map_err(|_| bad())?;
                    if self.first_ms > 3_600_000 {
                        return Err(bad());
                    }
                }
                _ => return Err(format!("unknown parameter {k:?}")),
            }
        }
        Ok(())
    }

    /// Messages per write.
    pub fn per_write(&self) -> u64 {
        if self.chunk == Chunking::Batch {
            self.batch
        } else {
            1
        }
    }
}

/// Splits a request target into the real path and the parameters (defaults, then the path segment, then
/// the query).
pub fn parse_target(target: &str, defaults: &Params) -> Result<(String, Params), String> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut params = defaults.clone();
    let mut path = path.to_string();
    if let Some(rest) = path.strip_prefix("/_/") {
        let (seg, tail) = rest.split_once('/').unwrap_or((rest, ""));
        params.apply(seg)?;
        path = format!("/{tail}");
    }
    params.apply(query)?;
    if (params.size as u64).saturating_mul(params.per_write()) > MAX_WRITE {
        return Err(format!("size × messages per write is above {MAX_WRITE} bytes"));
    }
    Ok((path, params))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn query_and_path_segment() {
        let d = Params::default();
        let (path, p) = parse_target("/api/chat", &d).unwrap();
        assert_eq!((path.as_str(), &p), ("/api/chat", &d));
        let (path, p) = parse_target("/_/n=5&pace_ms=0.5&size=300/api/chat?n=7&chunk=split", &d).unwrap();
        assert_eq!(path, "/api/chat");
        assert_eq!((p.n, p.pace_ms, p.size, p.chunk), (7, 0.5, 300, Chunking::Split));
        let (_, p) = parse_target("/raw?batch=16&first_ms=3", &d).unwrap();
        assert_eq!((p.chunk, p.per_write(), p.first_ms), (Chunking::Batch, 16, 3));
        assert!(parse_target("/x?bogus=1", &d).is_err());
        assert!(parse_target("/x?n=-1", &d).is_err());
        assert!(parse_target("/x?batch=0", &d).is_err());
        // Bounded: a request cannot make the mock allocate without limit or overflow its clock.
        assert!(parse_target("/x?first_ms=18446744073709551615", &d).is_err());
        assert!(parse_target("/x?size=99999999999", &d).is_err());
        assert!(parse_target("/_/size=1048576/x?batch=17", &d).is_err());
        assert!(parse_target("/x?size=1048576&batch=16", &d).is_ok());
    }
}
