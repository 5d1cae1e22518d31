//! The fuzz targets on stable Rust, without libFuzzer: for each target, the seeds (`corpus/<target>/`
//! when present, plus the fixtures of `crates/frame/tests/fixtures/`), then pseudo-random inputs (fresh
//! from the target's generator, or mutated seeds) until its time is up. A failing input is written to
//! `artifacts/<target>/crash-<n>` (replay it with `--replay FILE`) and the run exits with status 1.
//!
//! ```sh
//! cargo run --release --manifest-path fuzz/Cargo.toml --example stable -- --seconds 10 [TARGET...]
//! cargo run --release --manifest-path fuzz/Cargo.toml --example stable -- --replay fuzz/artifacts/json/crash-0 json
//! ```
//!
//! Options: `--seconds N` per target (default 10), `--seed N` (default: from the clock, printed).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ssegate_frame::testing::Rng;
use ssegate_frame_fuzz::{mutate, target, Target, TARGETS};

fn main() -> ExitCode {
    let mut seconds = 10u64;
    let mut seed = None;
    let mut replay = None;
    let mut names = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = args.next().and_then(|s| s.parse().ok()).unwrap_or(seconds),
            "--seed" => seed = args.next().and_then(|s| s.parse().ok()),
            "--replay" => replay = args.next().map(PathBuf::from),
            "-h" | "--help" => {
                println!("usage: stable [--seconds N] [--seed N] [--replay FILE] [TARGET...]");
                return ExitCode::SUCCESS;
            }
            name => match target(name) {
                Some(t) => names.push(t),
                None => {
                    eprintln!("unknown target {name:?}; targets: decode, encode, json, eventstream");
                    return ExitCode::from(2);
                }
            },
        }
    }
    let targets = if names.is_empty() { TARGETS.to_vec() } else { names };
    if let Some(file) = replay {
        let Ok(input) = std::fs::read(&file) else {
            eprintln!("cannot read {}", file.display());
            return ExitCode::from(2);
        };
        for t in &targets {
            (t.run)(&input);
            println!("{}: {} passes", t.name, file.display());
        }
        return ExitCode::SUCCESS;
    }
    let seed = seed
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64));
    println!("seed {seed} (repeat with --seed {seed}), {seconds} s per target");
    let mut ok = true;
    for t in targets {
        ok &= run(t, Duration::from_secs(seconds), seed);
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs `t` on its seeds, then on generated and mutated inputs until `time` has passed. False on the
/// first failure (which is saved as an artifact).
fn run(t: Target, time: Duration, seed: u64) -> bool {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let seeds = seeds(t.name, dir);
    let mut rng = Rng::new(seed ^ t.name.len() as u64);
    let start = Instant::now();
    let mut n = 0u64;
    let next = |rng: &mut Rng, n: u64| -> Vec<u8> {
        if let Some(s) = seeds.get(n as usize) {
            return s.clone();
        }
        if seeds.is_empty() || rng.below(2) == 0 {
            return (t.generate)(rng);
        }
        let mut input = seeds.get(rng.below(seeds.len())).cloned().unwrap_or_default();
        for _ in 0..=rng.below(4) {
            mutate(rng, &mut input);
        }
        input
    };
    while n < seeds.len() as u64 || start.elapsed() < time {
        let input = next(&mut rng, n);
        if catch_unwind(AssertUnwindSafe(|| (t.run)(&input))).is_err() {
            let saved = save(dir, t.name, &input);
            eprintln!("{}: FAILED on input #{n} ({} bytes), saved to {saved}", t.name, input.len());
            return false;
        }
        n += 1;
    }
    println!(
        "{}: {n} inputs in {:.1} s ({} seeds), no failure",
        t.name,
        start.elapsed().as_secs_f64(),
        seeds.len()
    );
    true
}

/// `corpus/<name>/*` and the frame crate's fixtures shaped for the target.
fn seeds(name: &str, dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let files = |d: PathBuf| -> Vec<Vec<u8>> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(d)
            .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        paths.sort();
        paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
    };
    out.extend(files(dir.join("corpus").join(name)));
    let fixtures = files(dir.join("../crates/frame/tests/fixtures"));
    for fixture in fixtures {
        match name {
            // Every format selector (0..8), split in the middle.
            "decode" => out.extend((0u8..8).map(|sel| [&[sel, 0x80][..], &fixture].concat())),
            "json" => out.extend(fixture.split(|&c| c == b'\n').map(<[u8]>::to_vec)),
            _ => out.push(fixture),
        }
    }
    out
}

/// Writes `input` to `artifacts/<name>/crash-<n>` (the first free `n`) and returns the path.
fn save(dir: &Path, name: &str, input: &[u8]) -> String {
    let dir = dir.join("artifacts").join(name);
    let _ = std::fs::create_dir_all(&dir);
    let path = (0..).map(|i| dir.join(format!("crash-{i}"))).find(|p| !p.exists()).unwrap_or_default();
    match std::fs::write(&path, input) {
        Ok(()) => path.display().to_string(),
        Err(e) => format!("(not saved: {e}) {input:?}"),
    }
}
