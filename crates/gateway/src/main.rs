use clap::Parser;

fn main() {
    let _cli = ssegate::cli::Cli::parse();
}
