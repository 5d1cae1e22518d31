//! Listener metrics: `ssegate_accept_errors_total{listener}`, the `accept()` calls that failed (typically
//! `EMFILE`: the process is out of file descriptors). `listener` is `traffic` (pingora's accept loop, seen
//! through its log record: see [`crate::accept_watch`]) or `admin` (ssegate's own loop). Created at 0.

use std::sync::OnceLock;

use prometheus::IntCounter;

use super::counter_vec;

/// Which accept loop failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Traffic,
    Admin,
}

impl Listener {
    pub const ALL: [Listener; 2] = [Listener::Traffic, Listener::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Listener::Traffic => "traffic",
            Listener::Admin => "admin",
        }
    }
}

fn family() -> &'static [IntCounter; 2] {
    static FAMILY: OnceLock<[IntCounter; 2]> = OnceLock::new();
    FAMILY.get_or_init(|| {
        let v = counter_vec(
            "ssegate_accept_errors_total",
            "Failed accept() calls on a listener (typically EMFILE: out of file descriptors), by listener.",
            &["listener"],
        );
        Listener::ALL.map(|l| v.with_label_values(&[l.as_str()]))
    })
}

/// Creates the series at 0.
pub(super) fn init() {
    let _ = family();
}

/// One failed `accept()`.
pub fn accept_failed(listener: Listener) {
    family()[listener as usize].inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_failures_are_counted_per_listener() {
        let before = family().clone().map(|c| c.get());
        accept_failed(Listener::Admin);
        accept_failed(Listener::Traffic);
        accept_failed(Listener::Traffic);
        let after = family().clone().map(|c| c.get());
        assert_eq!((after[0] - before[0], after[1] - before[1]), (2, 1));
    }
}
