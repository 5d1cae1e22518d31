//! Resumable streams (route `resume`): the store seam ([`store`]) and its stores.

pub mod memory;
pub mod redis;
pub mod store;
