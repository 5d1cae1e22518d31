//! `ssegate`: parse the command line, then hand over to the library.
use std::process::ExitCode;

use clap::Parser;
use ssegate::cli::{Cli, Command};
use ssegate::config::Config;
use ssegate::server::{self, RunOptions};

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
        Command::Run { config, upgrade, daemon } => {
            ssegate::logging::init(cli.log_format);
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(errors) => {
                    eprintln!("{errors}");
                    return ExitCode::FAILURE;
                }
            };
            match server::run(config, RunOptions { upgrade, daemon }) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ssegate: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
