//! `sluice`: the command-line front of the Sluice edge, connector and tools.

mod edge;
mod logging;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Remote access to home servers: a TLS-passthrough edge and multiplexed tunnels, compatible
/// with SniTun.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an edge: route browsers by SNI into the tunnels of connectors.
    Edge(Box<edge::EdgeArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init();
    let result = match cli.command {
        Command::Edge(args) => edge::run(*args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sluice: {e:#}");
            ExitCode::from(1)
        }
    }
}
