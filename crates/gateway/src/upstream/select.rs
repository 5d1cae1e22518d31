//! Choosing one backend of a pool: weighted round robin, least active streams per weight, weighted random,
//! and a consistent (rendezvous) hash of a request header. Pure over "which backends may be chosen"
//! (`ok`) and "how many streams each has" (`active`): availability, backups and attempts already made are
//! the pool's business ([`super::pool`]).
//!
//! Written here rather than taken from `pingora-load-balancing`: its `Backends` / `LoadBalancer` own
//! the backend set behind an async discovery and select by `SocketAddr`, while a pool here is a fixed
//! list of URLs with per-backend headers, TLS and names, that must skip backends that are ejected,
//! already tried, or in the other tier (backups). Rendezvous hashing gives the same stickiness as its
//! Ketama ring with a loop over at most 64 backends and no ring to rebuild.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::config::Balance;

/// The selection state of one pool.
#[derive(Debug)]
pub struct Selector {
    balance: Balance,
    weights: Vec<u32>,
    /// Hash seeds per backend (its name), for rendezvous hashing.
    seeds: Vec<u64>,
    /// Smooth weighted round-robin order over one full cycle (sum of weights entries).
    order: Vec<u8>,
    next: AtomicUsize,
    rng: AtomicU64,
}

impl Selector {
    /// A selector over backends with `weights` and `names` (same order).
    pub fn new(balance: Balance, weights: Vec<u32>, names: &[&str]) -> Selector {
        let order = smooth_order(&weights);
        let seeds = names
            .iter()
            .map(|n| {
                let mut h = DefaultHasher::new();
                n.hash(&mut h);
                h.finish()
            })
            .collect();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.as_nanos() as u64);
        Selector { balance, weights, seeds, order, next: AtomicUsize::new(0), rng: AtomicU64::new(seed) }
    }

    /// One backend among those `ok` accepts; `key` is the hash header's value (when the balance hashes).
    pub fn pick(
        &self,
        key: Option<&[u8]>,
        ok: impl Fn(usize) -> bool,
        active: impl Fn(usize) -> usize,
    ) -> Option<usize> {
        match (&self.balance, key) {
            (Balance::RoundRobin, _) | (Balance::Hash(_), None) => self.round_robin(&ok),
            (Balance::LeastStreams, _) => self.least_streams(&ok, &active),
            (Balance::Random, _) => self.random(&ok),
            (Balance::Hash(_), Some(key)) => self.rendezvous(key, &ok),
        }
    }

    fn round_robin(&self, ok: &impl Fn(usize) -> bool) -> Option<usize> {
        let n = self.order.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n).map(|k| usize::from(self.order[(start + k) % n])).find(|&i| ok(i))
    }

    fn least_streams(&self, ok: &impl Fn(usize) -> bool, active: &impl Fn(usize) -> usize) -> Option<usize> {
        let n = self.weights.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut best: Option<(usize, u64)> = None;
        for k in 0..n {
            let i = (start + k) % n;
            if !ok(i) {
                continue;
            }
            let a = active(i) as u64;
            // a_i / w_i < a_b / w_b  <=>  a_i * w_b < a_b * w_i
            let better = match best {
                None => true,
                Some((b, ab)) => a * u64::from(self.weights[b]) < ab * u64::from(self.weights[i]),
            };
            if better {
                best = Some((i, a));
            }
        }
        best.map(|(i, _)| i)
    }

    fn random(&self, ok: &impl Fn(usize) -> bool) -> Option<usize> {
        let total: u64 = (0..self.weights.len()).filter(|&i| ok(i)).map(|i| u64::from(self.weights[i])).sum();
        if total == 0 {
            return None;
        }
        let mut r = self.rand() % total;
        for i in (0..self.weights.len()).filter(|&i| ok(i)) {
            let w = u64::from(self.weights[i]);
            if r < w {
                return Some(i);
            }
            r -= w;
        }
        None
    }

    /// Weighted rendezvous hashing: the backend with the highest `-w / ln(u)` for `u = hash(key, backend)`.
    fn rendezvous(&self, key: &[u8], ok: &impl Fn(usize) -> bool) -> Option<usize> {
        let mut best: Option<(usize, f64)> = None;
        for i in (0..self.weights.len()).filter(|&i| ok(i)) {
            let mut h = DefaultHasher::new();
            self.seeds[i].hash(&mut h);
            key.hash(&mut h);
            // 53 bits into (0, 1).
            let u = ((h.finish() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            let score = -f64::from(self.weights[i]) / u.ln();
            if best.is_none_or(|(_, s)| score > s) {
                best = Some((i, score));
            }
        }
        best.map(|(i, _)| i)
    }

    /// splitmix64 over an atomic counter: cheap, lock-free, good enough to spread load.
    fn rand(&self) -> u64 {
        let mut z =
            self.rng.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The smooth weighted round-robin sequence (nginx's): over one cycle each backend appears `weight`
/// times, spread out rather than in runs.
fn smooth_order(weights: &[u32]) -> Vec<u8> {
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        for (c, &w) in current.iter_mut().zip(weights) {
            *c += i64::from(w);
        }
        let Some((best, _)) = current.iter().enumerate().max_by_key(|&(i, c)| (*c, std::cmp::Reverse(i)))
        else {
            break;
        };
        current[best] -= total;
        out.push(best as u8);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(sel: &Selector, n: usize, picks: usize, ok: impl Fn(usize) -> bool) -> Vec<usize> {
        let mut c = vec![0; n];
        for _ in 0..picks {
            c[sel.pick(None, &ok, |_| 0).unwrap()] += 1;
        }
        c
    }

    #[test]
    fn weighted_round_robin_is_exact_per_cycle_and_smooth() {
        let sel = Selector::new(Balance::RoundRobin, vec![3, 1, 1], &["a", "b", "c"]);
        assert_eq!(count(&sel, 3, 1000, |_| true), vec![600, 200, 200]);
        assert_eq!(smooth_order(&[3, 1, 1]), vec![0, 1, 0, 2, 0]);
        // Unavailable backends are skipped; the others share.
        let c = count(&sel, 3, 1000, |i| i != 0);
        assert_eq!(c[0], 0);
        assert!((c[1] as i64 - 500).abs() <= 100, "{c:?}");
    }

    #[test]
    fn weighted_random_within_ten_percent() {
        let sel = Selector::new(Balance::Random, vec![3, 1], &["a", "b"]);
        let c = count(&sel, 2, 1000, |_| true);
        assert!((c[0] as i64 - 750).abs() <= 75, "{c:?}");
        assert_eq!(count(&sel, 2, 100, |i| i == 1), vec![0, 100]);
    }

    #[test]
    fn least_streams_prefers_the_least_loaded_per_weight() {
        let sel = Selector::new(Balance::LeastStreams, vec![1, 2, 1], &["a", "b", "c"]);
        let active = [2usize, 3, 1];
        // a: 2/1, b: 3/2 = 1.5, c: 1/1 -> c
        assert_eq!(sel.pick(None, |_| true, |i| active[i]), Some(2));
        assert_eq!(sel.pick(None, |i| i != 2, |i| active[i]), Some(1));
        assert_eq!(sel.pick(None, |_| false, |i| active[i]), None);
    }

    #[test]
    fn consistent_hash_is_sticky_and_moves_only_the_removed_backends_keys() {
        let h = Balance::Hash(http::HeaderName::from_static("x-user-id"));
        let sel = Selector::new(h, vec![1, 1, 1], &["a", "b", "c"]);
        for user in 0..100 {
            let key = format!("user-{user}");
            let first = sel.pick(Some(key.as_bytes()), |_| true, |_| 0).unwrap();
            for _ in 0..100 {
                assert_eq!(sel.pick(Some(key.as_bytes()), |_| true, |_| 0), Some(first));
            }
            // Without its backend, a key moves; keys of other backends stay put.
            let without = sel.pick(Some(key.as_bytes()), |i| i != 1, |_| 0).unwrap();
            if first != 1 {
                assert_eq!(without, first);
            }
        }
        let mut c = [0; 3];
        for user in 0..3000 {
            c[sel.pick(Some(format!("u{user}").as_bytes()), |_| true, |_| 0).unwrap()] += 1;
        }
        assert!(c.iter().all(|&n| (n as i64 - 1000).abs() <= 100), "{c:?}");
    }

    #[test]
    fn hash_without_key_is_round_robin() {
        let h = Balance::Hash(http::HeaderName::from_static("x-user-id"));
        let sel = Selector::new(h, vec![1, 1], &["a", "b"]);
        assert_eq!(count(&sel, 2, 10, |_| true), vec![5, 5]);
    }
}
