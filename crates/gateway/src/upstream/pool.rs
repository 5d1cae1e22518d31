//! The runtime state of a route's pool: per backend its active streams, its passive-ejection window and
//! its active-check verdict; and the one question the exchange asks per attempt: which backend next,
//! given the ones already tried. Primaries first; backups only when no primary is available.
//!
//! Everything here runs once per attempt, never per event.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pingora::connectors::http::Connector;

use tokio::time::Instant;

use super::select::Selector;
use crate::config::{Backend, Health, Passive, Pool};
use crate::metrics::{BackendMetrics, Failovers};

/// The set of backends an exchange already tried (indexes < 64).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tried(u64);

impl Tried {
    pub fn add(&mut self, i: usize) {
        self.0 |= 1 << i;
    }
    pub fn has(self, i: usize) -> bool {
        self.0 & (1 << i) != 0
    }
}

/// One backend's live state.
#[derive(Debug)]
pub struct BackendState {
    pub cfg: Backend,
    pub metrics: BackendMetrics,
    /// Streams in progress on this backend.
    active: AtomicUsize,
    /// Milliseconds since the pool's epoch until which the backend is ejected (0: not ejected).
    ejected_until: AtomicU64,
    /// Failures in the current `fail_timeout` window: (count, window start in ms since the epoch).
    fails: Mutex<(u32, u64)>,
    /// The active health check's verdict (true until a check says otherwise).
    healthy: AtomicBool,
    /// Active checks: when the next is due, whether one runs, consecutive passes and failures.
    check: Mutex<CheckState>,
    /// The peer its streams share.
    pub peers: super::PeerCache,
}

#[derive(Debug, Default)]
struct CheckState {
    next: Option<Instant>,
    running: bool,
    passes: u32,
    fails: u32,
}

impl BackendState {
    /// The request for this backend from the one built for the route (`route` = the route's first
    /// primary upstream, whose base path the forwarded path starts with): this backend's base path,
    /// `Host`, and its `headers` over the route's `upstream_headers`. Changed in place: the request is built
    /// once per attempt and not kept after it is sent (pingora keeps the copy it wrote).
    pub fn request_head(
        &self,
        mut head: pingora::http::RequestHeader,
        route: &crate::config::Upstream,
    ) -> pingora::Result<pingora::http::RequestHeader> {
        let up = &self.cfg.upstream;
        if up.base_path != route.base_path {
            let target = head.raw_path();
            let tail = target.strip_prefix(route.base_path.as_bytes()).unwrap_or(target);
            let mut path = Vec::with_capacity(up.base_path.len() + tail.len());
            path.extend_from_slice(up.base_path.as_bytes());
            path.extend_from_slice(tail);
            head.set_raw_path(&path)?;
        }
        if up.host_header != route.host_header {
            head.insert_header("host", up.host_header.as_str())?;
        }
        for h in &self.cfg.headers {
            head.insert_header(h.name.clone(), h.value.clone())?;
        }
        Ok(head)
    }
}

/// What a reported failure did to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ejected {
    No,
    /// This failure took the backend out for `fail_timeout`.
    Now,
}

/// A pool's live state.
pub struct PoolState {
    backends: Vec<BackendState>,
    selector: Selector,
    passive: Option<Passive>,
    epoch: Instant,
    pub failovers: Failovers,
    route: String,
    /// `health`: active checks (run by [`super::health`]).
    pub health: Option<Health>,
    /// The route's connector and `connect_timeout`, for the checks.
    pub connector: Arc<Connector>,
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for PoolState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolState")
            .field("route", &self.route)
            .field("backends", &self.backends)
            .finish_non_exhaustive()
    }
}

impl PoolState {
    /// The live state of `route`'s `pool`; checks connect through `connector`.
    pub fn new(route: &str, pool: &Pool, connector: Arc<Connector>, connect_timeout: Duration) -> PoolState {
        let weights = pool.backends.iter().map(|b| b.weight).collect();
        let names: Vec<&str> = pool.backends.iter().map(|b| b.name.as_str()).collect();
        let backends = pool
            .backends
            .iter()
            .map(|b| BackendState {
                cfg: b.clone(),
                metrics: BackendMetrics::new(route, &b.name),
                active: AtomicUsize::new(0),
                ejected_until: AtomicU64::new(0),
                fails: Mutex::new((0, 0)),
                healthy: AtomicBool::new(true),
                check: Mutex::new(CheckState::default()),
                peers: super::PeerCache::default(),
            })
            .collect::<Vec<_>>();
        // Like nginx: a lone backend is never ejected (there is nothing to fail over to).
        let passive = pool.passive.filter(|_| backends.len() > 1);
        PoolState {
            selector: Selector::new(pool.balance.clone(), weights, &names),
            backends,
            passive,
            epoch: Instant::now(),
            failovers: Failovers::new(route),
            route: route.to_owned(),
            health: pool.health.clone(),
            connector,
            connect_timeout,
        }
    }

    pub fn backends(&self) -> &[BackendState] {
        &self.backends
    }

    pub fn backend(&self, i: usize) -> &BackendState {
        &self.backends[i]
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Whether backend `i` may be chosen now (not ejected, not failed by its health checks).
    pub fn available(&self, i: usize) -> bool {
        let b = &self.backends[i];
        b.healthy.load(Ordering::Relaxed) && b.ejected_until.load(Ordering::Relaxed) <= self.now_ms()
    }

    /// The next backend for a request that already tried `tried`: a primary if any is available, else a
    /// backup; `None` when none is left. `key`: the hash header's value.
    pub fn select(&self, key: Option<&[u8]>, tried: Tried) -> Option<usize> {
        let now = self.now_ms();
        let usable = |i: usize| {
            let b = &self.backends[i];
            !tried.has(i) && b.healthy.load(Ordering::Relaxed) && self.back_from_ejection(b, now)
        };
        let active = |i: usize| self.backends[i].active.load(Ordering::Relaxed);
        let primaries_up = (0..self.backends.len()).any(|i| !self.backends[i].cfg.backup && usable(i));
        let tier = |i: usize| self.backends[i].cfg.backup != primaries_up && usable(i);
        self.selector.pick(key, tier, active)
    }

    /// Whether `b` is not (or no longer) ejected at `now`; the first to see an ejection expire marks the
    /// backend up again.
    fn back_from_ejection(&self, b: &BackendState, now: u64) -> bool {
        let until = b.ejected_until.load(Ordering::Relaxed);
        if until == 0 {
            return true;
        }
        if until > now {
            return false;
        }
        if b.ejected_until.compare_exchange(until, 0, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            b.metrics.set_up(b.healthy.load(Ordering::Relaxed));
        }
        true
    }

    /// Whether [`PoolState::select`] would find a backend (without moving the round-robin position).
    pub fn any_left(&self, tried: Tried) -> bool {
        let now = self.now_ms();
        (0..self.backends.len()).any(|i| {
            let b = &self.backends[i];
            !tried.has(i) && b.healthy.load(Ordering::Relaxed) && self.back_from_ejection(b, now)
        })
    }

    /// A stream on backend `i` starts; it ends when the guard drops.
    pub fn stream(&self, i: usize) -> StreamGuard<'_> {
        let b = &self.backends[i];
        b.active.fetch_add(1, Ordering::Relaxed);
        StreamGuard(&b.active)
    }

    /// An attempt on backend `i` failed: `max_fails` failures within `fail_timeout` eject it for
    /// `fail_timeout`.
    pub fn failed(&self, i: usize) -> Ejected {
        let Some(p) = self.passive else { return Ejected::No };
        let b = &self.backends[i];
        let now = self.now_ms();
        let window = p.fail_timeout.as_millis() as u64;
        let Ok(mut fails) = b.fails.lock() else { return Ejected::No };
        if fails.0 == 0 || now.saturating_sub(fails.1) > window {
            *fails = (0, now);
        }
        fails.0 += 1;
        if fails.0 >= p.max_fails {
            *fails = (0, now);
            b.ejected_until.store(now + window, Ordering::Relaxed);
            b.metrics.ejected(false);
            b.metrics.set_up(false);
            tracing::warn!(backend = %b.cfg.name, max_fails = p.max_fails, "backend ejected after repeated failures");
            return Ejected::Now;
        }
        Ejected::No
    }

    /// The active check's verdict on backend `i`; returns whether it changed.
    pub fn set_healthy(&self, i: usize, healthy: bool) -> bool {
        let b = &self.backends[i];
        let changed = b.healthy.swap(healthy, Ordering::Relaxed) != healthy;
        if changed {
            if !healthy {
                b.metrics.ejected(true);
            }
            b.metrics.set_up(healthy && self.back_from_ejection(b, self.now_ms()));
        }
        changed
    }

    /// The backends whose active check is due at `now`, marked as running.
    pub fn due_checks(&self, now: Instant) -> Vec<usize> {
        let Some(h) = &self.health else { return Vec::new() };
        let mut due = Vec::new();
        for (i, b) in self.backends.iter().enumerate() {
            let Ok(mut c) = b.check.lock() else { continue };
            if !c.running && c.next.is_none_or(|n| n <= now) {
                c.running = true;
                c.next = Some(now + h.interval);
                due.push(i);
            }
        }
        due
    }

    /// The result of an active check of backend `i`: `healthy` passes in a row bring it back, `unhealthy`
    /// failures in a row take it out.
    pub fn checked(&self, i: usize, ok: bool) {
        let Some(h) = &self.health else { return };
        let b = &self.backends[i];
        let verdict = {
            let Ok(mut c) = b.check.lock() else { return };
            c.running = false;
            if ok {
                c.passes = c.passes.saturating_add(1);
                c.fails = 0;
                (c.passes >= h.healthy).then_some(true)
            } else {
                c.fails = c.fails.saturating_add(1);
                c.passes = 0;
                (c.fails >= h.unhealthy).then_some(false)
            }
        };
        if let Some(up) = verdict {
            if self.set_healthy(i, up) {
                if up {
                    tracing::info!(route = %self.route, backend = %b.cfg.name, "backend passes its health checks again");
                } else {
                    tracing::warn!(route = %self.route, backend = %b.cfg.name, "backend failed its health checks");
                }
            }
        }
    }

    /// How long from now until backend `i` is back from passive ejection (zero when it is not ejected).
    pub fn ejected_for(&self, i: usize) -> Duration {
        let until = self.backends[i].ejected_until.load(Ordering::Relaxed);
        Duration::from_millis(until.saturating_sub(self.now_ms()))
    }
}

/// One active stream on a backend (for `least_streams`).
#[derive(Debug)]
pub struct StreamGuard<'a>(&'a AtomicUsize);

impl Drop for StreamGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Balance, Retry, RetryOn};

    fn pool(backups: &[bool], passive: Option<Passive>) -> PoolState {
        let backends = backups
            .iter()
            .enumerate()
            .map(|(i, &backup)| Backend {
                name: format!("b{i}"),
                upstream: crate::config::Upstream {
                    tls: false,
                    host: "127.0.0.1".into(),
                    port: 1000 + i as u16,
                    base_path: String::new(),
                    host_header: format!("127.0.0.1:{}", 1000 + i),
                    ca_file: None,
                },
                weight: 1,
                backup,
                headers: Vec::new(),
            })
            .collect();
        PoolState::new(
            "pool-test",
            &Pool {
                backends,
                balance: Balance::RoundRobin,
                health: None,
                passive,
                retry: Retry { attempts: 2, on: RetryOn::default(), first_event_timeout: None },
            },
            Arc::new(Connector::new(None)),
            Duration::from_secs(1),
        )
    }

    #[test]
    fn backups_only_when_no_primary_is_available() {
        let p = pool(&[false, false, true], None);
        for _ in 0..10 {
            assert_ne!(p.select(None, Tried::default()), Some(2));
        }
        p.set_healthy(0, false);
        p.set_healthy(1, false);
        assert_eq!(p.select(None, Tried::default()), Some(2));
        p.set_healthy(2, false);
        assert_eq!(p.select(None, Tried::default()), None);
    }

    #[test]
    fn active_checks_take_out_and_bring_back_with_thresholds() {
        let mut p = pool(&[false, false], None);
        p.health = Some(Health {
            path: "/health".into(),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
            healthy: 2,
            unhealthy: 2,
        });
        let now = Instant::now();
        assert_eq!(p.due_checks(now), vec![0, 1]);
        assert!(p.due_checks(now).is_empty(), "running, and not due again before the interval");
        p.checked(0, false);
        assert!(p.available(0));
        assert_eq!(p.due_checks(now + Duration::from_secs(5)), vec![0]);
        p.checked(0, false);
        assert!(!p.available(0));
        p.checked(0, true);
        assert!(!p.available(0));
        p.checked(0, true);
        assert!(p.available(0));
    }

    #[test]
    fn tried_backends_are_not_revisited() {
        let p = pool(&[false, false], None);
        let mut tried = Tried::default();
        let a = p.select(None, tried).unwrap();
        tried.add(a);
        let b = p.select(None, tried).unwrap();
        assert_ne!(a, b);
        tried.add(b);
        assert_eq!(p.select(None, tried), None);
    }

    #[test]
    fn passive_ejection_after_max_fails() {
        let p = pool(&[false, false], Some(Passive { max_fails: 2, fail_timeout: Duration::from_secs(30) }));
        assert_eq!(p.failed(0), Ejected::No);
        assert!(p.available(0));
        assert_eq!(p.failed(0), Ejected::Now);
        assert!(!p.available(0));
        assert!(p.ejected_for(0) > Duration::from_secs(29));
        for _ in 0..5 {
            assert_eq!(p.select(None, Tried::default()), Some(1));
        }
        // A lone backend is never ejected.
        let one = pool(&[false], Some(Passive { max_fails: 1, fail_timeout: Duration::from_secs(30) }));
        assert_eq!(one.failed(0), Ejected::No);
        assert!(one.available(0));
    }
}
