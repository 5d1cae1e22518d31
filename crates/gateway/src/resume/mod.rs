//! Resumable streams (route `resume`): every event of a stream gets `id: <stream>.<seq>` and is recorded in
//! a store while the original client is served directly; a client that reconnects (`Last-Event-ID` on the
//! route's URL, or `GET <path_prefix>/_streams/<stream>`) replays what it missed from the store and
//! follows the live tail, without a second upstream request.
//!
//! - [`store`]: the seam (owner's [`store::Writer`], reader's [`store::Reader`]); [`memory`] one store.
//! - [`id`]: the ids readers send back, and the key hash that binds a stream to the key that started it.
//! - [`follow`]: a resume request, served from the store.
//! - the owner's side lives in the exchange (`exchange/record.rs`, `exchange/detach.rs`).

pub mod follow;
pub mod id;
pub mod memory;
pub mod redis;
pub mod store;

use std::sync::Arc;

use crate::config::{Config, Resume, StoreKind};
use store::Store;

/// The store a route's `resume` table names (one per process and kind, shared by the routes); `None` when it
/// cannot be made (logged: the route then serves its streams without resume).
pub fn store_for(resume: &Resume, config: &Config) -> Option<Arc<dyn Store>> {
    match resume.store {
        StoreKind::Memory => Some(memory::global(config.server.resume_memory_max_bytes)),
        StoreKind::Redis => {
            // Validation guarantees the table; a URL the client refuses was refused by `check` already.
            let r = config.redis.as_ref()?;
            match redis::shared(r) {
                Ok(store) => Some(store),
                Err(e) => {
                    tracing::error!(url = %r.shown, error = %e, "resume store redis unavailable");
                    None
                }
            }
        }
    }
}
