//! Command line.
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::logging::LogFormat;

/// Streaming gateway: any upstream stream format in, clean Server-Sent Events out.
#[derive(Debug, Parser)]
#[command(name = "ssegate", version, about)]
pub struct Cli {
    /// Log line format.
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Run {
        /// The configuration file.
        #[arg(long, default_value = "config/ssegate.toml")]
        config: PathBuf,
        /// Take over the listening sockets of a running ssegate (graceful upgrade).
        #[arg(short, long)]
        upgrade: bool,
        /// Detach and run in the background (writes `pid_file`).
        #[arg(short, long)]
        daemon: bool,
    },
    /// Run the gateway in front of a built-in mock LLM and serve a demo page.
    Demo {
        /// Where the gateway listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Where the admin endpoints (/metrics) listen.
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin: std::net::SocketAddr,
    },
    /// Validate a configuration file and make the running gateway (the process in its `pid_file`) apply
    /// it (SIGHUP); exit 1, signalling nothing, when the file is invalid or no gateway runs.
    Reload {
        /// The configuration file.
        #[arg(long, default_value = "config/ssegate.toml")]
        config: PathBuf,
    },
    /// Validate a configuration file: print every error as file:line:col: message; exit 1 on error.
    Check {
        /// The configuration file.
        #[arg(long, default_value = "config/ssegate.toml")]
        config: PathBuf,
    },
}
