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

use crate::config::{Resume, Server, StoreKind};
use store::Store;

/// The store a route's `resume` table names (one per process and kind, shared by the routes).
pub fn store_for(resume: &Resume, server: &Server) -> Arc<dyn Store> {
    match resume.store {
        StoreKind::Memory => memory::global(server.resume_memory_max_bytes),
    }
}
