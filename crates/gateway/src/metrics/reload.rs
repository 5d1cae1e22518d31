//! Config reload metrics (`ssegate_config_*`), and the end of a removed route's series.
//!
//! A route removed by a reload is *retired*: its series leave `/metrics` at once. Streams that started
//! on it before the reload go on counting into handles no longer exported, except the per-stream-end
//! series (`streams_total`, `stream_duration_seconds`), which a stream ending reports again; those leave
//! when the last handle of the route is dropped (every request that started before the reload ended).
//! A route of the same name added again gets its series back (at zero); its old streams' counts are lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::{Gauge, IntCounter, IntGauge};

use super::{counter_vec, families, gauge, register};

/// `ssegate_config_*`, created and registered once.
struct ReloadFamilies {
    /// `result="success"`, `result="error"`.
    success: IntCounter,
    error: IntCounter,
    last_successful: IntGauge,
    last_success_time: Gauge,
}

#[allow(clippy::expect_used)]
fn reload_families() -> &'static ReloadFamilies {
    static F: OnceLock<ReloadFamilies> = OnceLock::new();
    F.get_or_init(|| {
        let total = counter_vec(
            "ssegate_config_reloads_total",
            "Config reloads (SIGHUP), by result: success (applied) or error (refused; the old config serves on).",
            &["result"],
        );
        let f = ReloadFamilies {
            success: total.with_label_values(&["success"]),
            error: total.with_label_values(&["error"]),
            last_successful: gauge(
                "ssegate_config_last_reload_successful",
                "1 when the last config reload was applied (or none was tried since the start), 0 when it failed.",
            ),
            last_success_time: register(
                Gauge::new(
                    "ssegate_config_last_reload_success_timestamp_seconds",
                    "Unix time of the last config applied (the start, or the last successful reload).",
                )
                .expect("valid metric definition"),
            ),
        };
        f.last_successful.set(1);
        f.last_success_time.set(now());
        f
    })
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Registers the reload metrics: the config read at the start counts as the last successful one.
pub fn config_loaded() {
    let _ = reload_families();
}

/// A reload was applied. The gauges are set before the counter moves: a scrape that sees the new count
/// sees the state it counts.
pub fn reload_succeeded() {
    let f = reload_families();
    f.last_successful.set(1);
    f.last_success_time.set(now());
    f.success.inc();
}

/// A reload was refused (invalid config, or a change that needs a restart).
pub fn reload_failed() {
    let f = reload_families();
    f.last_successful.set(0);
    f.error.inc();
}

// ---- the series of retired routes ------------------------------------------------------------------

/// Shared by every [`super::RouteMetrics`] of one route name; when the last one is dropped and the route
/// was retired, the route's series are removed.
#[derive(Debug)]
pub(super) struct Live {
    name: Arc<str>,
    retired: std::sync::atomic::AtomicBool,
}

type LiveMap = Mutex<HashMap<Arc<str>, Weak<Live>>>;

fn live_map() -> &'static LiveMap {
    static M: OnceLock<LiveMap> = OnceLock::new();
    M.get_or_init(LiveMap::default)
}

/// The [`Live`] of `name` (the same one while any handle of the route exists); un-retires it.
/// `create` makes the route's series under the same lock, so a concurrent removal cannot take them away.
pub(super) fn live<T>(name: &str, create: impl FnOnce(Arc<Live>) -> T) -> T {
    let mut map = live_map().lock().unwrap_or_else(PoisonError::into_inner);
    let existing = map.get(name).and_then(Weak::upgrade);
    let live = match existing {
        Some(l) => {
            l.retired.store(false, std::sync::atomic::Ordering::Relaxed);
            l
        }
        None => {
            let l = Arc::new(Live { name: Arc::from(name), retired: false.into() });
            map.insert(l.name.clone(), Arc::downgrade(&l));
            l
        }
    };
    create(live)
}

/// The route `name` was removed by a reload: its series go away now, and what streams still open on it
/// report when they end goes away with its last handle.
pub fn retire_route(name: &str) {
    let mut map = live_map().lock().unwrap_or_else(PoisonError::into_inner);
    match map.get(name).and_then(Weak::upgrade) {
        Some(l) => l.retired.store(true, std::sync::atomic::Ordering::Relaxed),
        None => {
            map.remove(name);
        }
    }
    families().forget_route(name);
}

impl Drop for Live {
    fn drop(&mut self) {
        if !self.retired.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let mut map = live_map().lock().unwrap_or_else(PoisonError::into_inner);
        // A route of the same name created meanwhile owns the series now.
        if map.get(&self.name).and_then(Weak::upgrade).is_some() {
            return;
        }
        map.remove(&self.name);
        families().forget_route(&self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(route: &str) -> bool {
        prometheus::gather()
            .iter()
            .filter(|f| f.name().starts_with("ssegate_"))
            .flat_map(|f| f.get_metric().iter())
            .any(|m| m.get_label().iter().any(|l| l.name() == "route" && l.value() == route))
    }

    #[test]
    fn a_retired_route_leaves_with_its_last_handle() {
        let m = super::super::route("t_retire");
        m.finished(None, crate::error::Outcome::Completed, std::time::Duration::from_millis(1));
        assert!(has("t_retire"));
        retire_route("t_retire");
        assert!(!has("t_retire"), "gone at once");
        // A stream that was open on it ends: reported, then gone with the last handle.
        m.finished(None, crate::error::Outcome::Completed, std::time::Duration::from_millis(1));
        drop(m);
        assert!(!has("t_retire"));
    }

    #[test]
    fn a_route_added_again_keeps_its_series() {
        let m = super::super::route("t_readd");
        retire_route("t_readd");
        let again = super::super::route("t_readd");
        assert!(has("t_readd"), "back at zero");
        drop(m);
        assert!(has("t_readd"));
        drop(again);
        assert!(has("t_readd"), "not retired any more");
        retire_route("t_readd");
        assert!(!has("t_readd"), "no handle: removed at once");
    }

    #[test]
    fn reload_results_are_counted() {
        reload_failed();
        let g = |n: &str| prometheus::gather().into_iter().find(|f| f.name() == n).unwrap();
        assert_eq!(g("ssegate_config_last_reload_successful").get_metric()[0].get_gauge().value(), 0.0);
        reload_succeeded();
        assert_eq!(g("ssegate_config_last_reload_successful").get_metric()[0].get_gauge().value(), 1.0);
        assert!(
            g("ssegate_config_last_reload_success_timestamp_seconds").get_metric()[0].get_gauge().value()
                > 1e9
        );
        assert_eq!(g("ssegate_config_reloads_total").get_metric().len(), 2);
    }
}
