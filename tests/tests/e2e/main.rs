//! The end-to-end tests: one test executable (one link on a small machine) with a module per area. Each
//! test starts the real `ssegate` binary (see `ssegate_tests::gateway`) against mock upstreams.

mod cli;
mod disconnect;
mod errors;
mod formats;
mod harness;
mod headers;
mod http_edge;
mod load;
mod metrics;
mod outputs;
mod pools;
mod protocols;
mod providers;
mod reload;
mod resume;
mod resume_redis;
mod robustness;
mod security;
mod streaming;
mod upstreams;
