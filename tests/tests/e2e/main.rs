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
mod providers_bedrock;
mod providers_fixtures;
// The provider fixture streams, shared with the gateway's unit tests (the benchmarks' part is unused here).
#[allow(dead_code)]
#[path = "../../../crates/gateway/src/provider/fixtures.rs"]
mod provider_fixtures;
mod reliability_accept;
mod reliability_dns;
mod reliability_fds;
mod reliability_preface;
mod reload;
mod resume;
mod resume_redis;
mod resume_upgrade;
mod robustness;
mod security;
mod streaming;
mod streams;
mod upstreams;
