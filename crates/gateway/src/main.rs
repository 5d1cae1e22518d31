//! `ssegate`: parse the command line, then hand over to the library.
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use ssegate::cli::{Cli, Command};
use ssegate::config::{Config, ConfigErrors};
use ssegate::server::{self, RunOptions};

/// mimalloc instead of glibc's malloc: under connection churn glibc's heap grows (fragmentation) while the
/// heap in use stays flat; mimalloc's RSS stays flat (benches/README.md, "RSS growth under churn").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => match Config::load(&config) {
            Ok(c) => {
                println!("{}: ok ({} routes)", config.display(), c.routes.len());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::FAILURE
            }
        },
        Command::Reload { config } => match Config::load(&config) {
            Ok(c) => match ssegate::reload::signal_running(&c) {
                Ok(pid) => {
                    println!(
                        "{}: ok ({} routes); sent SIGHUP to ssegate (pid {pid}); it logs the result and sets \
                         ssegate_config_last_reload_successful",
                        config.display(),
                        c.routes.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("ssegate reload: {e}");
                    ExitCode::FAILURE
                }
            },
            Err(errors) => {
                eprintln!("{errors}");
                eprintln!("ssegate reload: the config is invalid; the running gateway was not signalled");
                ExitCode::FAILURE
            }
        },
        Command::Demo { listen, admin } => {
            ssegate::logging::init(cli.log_format);
            match ssegate::demo::prepare(&ssegate::demo::DemoOptions { listen, admin }) {
                Ok(src) => start(Config::from_str_at(Path::new("<demo>"), &src), RunOptions::default()),
                Err(e) => {
                    eprintln!("ssegate demo: cannot start the mock upstream: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run { config, upgrade, daemon } => {
            ssegate::logging::init(cli.log_format);
            start(Config::load(&config), RunOptions { upgrade, daemon })
        }
    }
}

fn start(config: Result<Config, ConfigErrors>, opts: RunOptions) -> ExitCode {
    let config = match config {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    match server::run(config, opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ssegate: {e}");
            ExitCode::FAILURE
        }
    }
}
