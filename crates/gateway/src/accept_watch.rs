//! Counts the traffic listeners' failed `accept()` calls, which only pingora sees.
//!
//! pingora 0.9's accept loop (`pingora-core` `services/listening.rs`, `run_endpoint`) handles an `accept()`
//! error by logging `Accept() failed {error}` at `error` (through the `log` crate) and, for `EMFILE` (24,
//! "too many open files") — and, with ssegate's pingora-core patch, `ENFILE`, `ENOBUFS` and `ENOMEM` —
//! sleeping one second before trying again: no busy loop, the waiting connection stays in the kernel's
//! backlog and is accepted once the resource is free. It offers no hook to
//! count the failures, so ssegate watches that log record on its way into `tracing`: [`CountingLog`] wraps
//! the `log` → `tracing` bridge and counts each such record in `ssegate_accept_errors_total{listener=
//! "traffic"}`. The record's target and text are pingora's: an upgrade of pingora that changes them is
//! caught by `reliability_fds::out_of_descriptors_accepts_wait_open_streams_go_on_and_service_recovers`.

use tracing_log::log;

use crate::metrics::listener::{accept_failed, Listener};

/// The module whose record is watched.
const TARGET: &str = "pingora_core::services::listening";
/// How its accept-failure record starts.
const PREFIX: &str = "Accept() failed";

/// `tracing_log::LogTracer`, counting pingora's accept failures on the way.
#[derive(Debug)]
pub struct CountingLog(pub tracing_log::LogTracer);

/// Whether `record` is pingora's report of a failed `accept()`.
pub fn is_accept_failure(record: &log::Record<'_>) -> bool {
    if record.level() != log::Level::Error || record.target() != TARGET {
        return false;
    }
    match record.args().as_str() {
        Some(s) => s.starts_with(PREFIX),
        None => record.args().to_string().starts_with(PREFIX),
    }
}

impl log::Log for CountingLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if is_accept_failure(record) {
            accept_failed(Listener::Traffic);
        }
        self.0.log(record);
    }

    fn flush(&self) {
        self.0.flush();
    }
}

/// Installs [`CountingLog`] as the `log` logger with `max` as `log`'s level (an error when one is set).
pub fn install(max: log::LevelFilter) -> Result<(), log::SetLoggerError> {
    log::set_boxed_logger(Box::new(CountingLog(tracing_log::LogTracer::new())))?;
    log::set_max_level(max);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(level: log::Level, target: &str, args: std::fmt::Arguments<'_>) -> bool {
        is_accept_failure(&log::Record::builder().level(level).target(target).args(args).build())
    }

    #[test]
    fn only_pingoras_accept_failure_record_is_counted() {
        let e = "AcceptError context: Fail to accept() cause: Too many open files (os error 24)";
        assert!(check(log::Level::Error, TARGET, format_args!("Accept() failed {e}")));
        assert!(!check(log::Level::Warn, TARGET, format_args!("Accept() failed {e}")));
        assert!(!check(log::Level::Error, "pingora_core::server", format_args!("Accept() failed {e}")));
        assert!(!check(log::Level::Error, TARGET, format_args!("Downstream handshake error: {e}")));
    }
}
