//! Active health checks: a background service that, every [`TICK`], asks each pool of the current gateway
//! which backends are due (`health.interval`) and probes them: `GET health.path` with the backend's
//! `Host` and `headers`, 2xx within `health.timeout` passes. The verdicts (`healthy` passes / `unhealthy`
//! failures in a row) are kept by [`PoolState`]. The pools are read from the gateway on every tick, so a
//! gateway built from a new config is checked from its first tick on.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::http::RequestHeader;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::time::Instant;

use super::pool::PoolState;
use super::{connect, peer_with_timeout};

/// How often due checks are looked for.
pub const TICK: Duration = Duration::from_millis(100);

/// The background service; `pools` returns the pools that have `health` (of the gateway in use now).
pub struct HealthChecks<F> {
    pub pools: F,
}

impl<F> std::fmt::Debug for HealthChecks<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HealthChecks")
    }
}

#[async_trait]
impl<F> BackgroundService for HealthChecks<F>
where
    F: Fn() -> Vec<Arc<PoolState>> + Send + Sync + 'static,
{
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                r = shutdown.changed() => {
                    if r.is_err() || *shutdown.borrow() {
                        return;
                    }
                }
            }
            let now = Instant::now();
            for pool in (self.pools)() {
                for i in pool.due_checks(now) {
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        let ok = probe(&pool, i).await;
                        pool.checked(i, ok);
                    });
                }
            }
        }
    }
}

/// One check of backend `i`: whether it answered 2xx within the timeout.
async fn probe(pool: &PoolState, i: usize) -> bool {
    let Some(h) = &pool.health else { return true };
    let b = pool.backend(i);
    let run = async {
        let peer = peer_with_timeout(&b.cfg.upstream, pool.connect_timeout).await.ok()?;
        let (mut up, _) = connect(&pool.connector, &peer).await.ok()?;
        let path = format!("{}{}", b.cfg.upstream.base_path, h.path);
        let mut req = RequestHeader::build("GET", path.as_bytes(), None).ok()?;
        req.insert_header("host", b.cfg.upstream.host_header.as_str()).ok()?;
        req.insert_header("user-agent", "ssegate-health-check").ok()?;
        for hdr in &b.cfg.headers {
            req.insert_header(hdr.name.clone(), hdr.value.clone()).ok()?;
        }
        let answered = async {
            up.write_request_header(Box::new(req)).await?;
            up.finish_request_body().await?;
            up.read_response_header().await
        }
        .await;
        let ok = answered.is_ok() && up.response_header().is_some_and(|r| r.status.is_success());
        up.shutdown().await;
        Some(ok)
    };
    matches!(tokio::time::timeout(h.timeout, run).await, Ok(Some(true)))
}
