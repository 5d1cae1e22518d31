//! CPU time and resident memory of other processes, from `/proc`.

use std::fs;

/// Clock ticks per second of `/proc/<pid>/stat` times (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
pub const CLK_TCK: u64 = 100;

/// CPU time (user + system) of a process, in nanoseconds: the sum over its threads of
/// `/proc/<pid>/task/<tid>/schedstat` (nanosecond resolution), or `utime + stime` from
/// `/proc/<pid>/stat` (10 ms resolution) when schedstat is not available.
pub fn cpu_ns(pid: u32) -> std::io::Result<u64> {
    if let Ok(ns) = schedstat_ns(pid) {
        return Ok(ns);
    }
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    stat_ticks(&stat)
        .map(|ticks| ticks * (1_000_000_000 / CLK_TCK))
        .ok_or_else(|| std::io::Error::other(format!("cannot parse /proc/{pid}/stat")))
}

fn schedstat_ns(pid: u32) -> std::io::Result<u64> {
    let mut total = 0;
    for task in fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        // A thread may exit between read_dir and read.
        if let Ok(s) = fs::read_to_string(path) {
            total += s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    Ok(total)
}

/// `utime + stime` (fields 14 and 15) of a `/proc/<pid>/stat` line, in clock ticks.
pub fn stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may contain spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Resident set size (`VmRSS` of `/proc/<pid>/status`) in KiB.
pub fn rss_kib(pid: u32) -> std::io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    vm_rss_kib(&status).ok_or_else(|| std::io::Error::other(format!("no VmRSS in /proc/{pid}/status")))
}

/// The `VmRSS` line of a `/proc/<pid>/status` text, in KiB.
pub fn vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time summed over several processes (e.g. nginx master and worker).
pub fn cpu_ns_all(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|&p| cpu_ns(p).ok()).sum()
}

/// RSS summed over several processes, in KiB.
pub fn rss_kib_all(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|&p| rss_kib(p).ok()).sum()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn parses_stat_and_status() {
        let stat =
            "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 40 0 0 20 0 3 0 555 1000 200";
        assert_eq!(stat_ticks(stat), Some(290));
        assert_eq!(stat_ticks("garbage"), None);
        assert_eq!(vm_rss_kib("Name:\tx\nVmRSS:\t   12345 kB\nVmData: 1 kB\n"), Some(12345));
        assert_eq!(vm_rss_kib("Name:\tx\n"), None);
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(rss_kib(me).unwrap() > 0);
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(cpu_ns(me).unwrap() > 0);
    }
}
