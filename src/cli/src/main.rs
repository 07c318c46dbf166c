//! `sluice`: the command-line front of the Sluice edge, connector and tools.

mod connect;
mod ctl;
mod demo;
mod edge;
mod logging;
mod master;
mod token;
mod verify;

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
    /// Run a connector: dial an edge and serve its channels to a home server.
    Connect(Box<connect::ConnectArgs>),
    /// Connect or disconnect a running connector, or show its state.
    Ctl(ctl::CtlArgs),
    /// Run the session master (accounts, instances, tunnel tokens), or manage its accounts.
    Master(Box<master::MasterArgs>),
    /// Make Fernet keys, and mint tokens into credentials files.
    Token(token::TokenArgs),
    /// Check that the certificate served at a public address is the local one.
    Verify(verify::VerifyArgs),
    /// Run an edge, a connector and an HTTPS origin on loopback, and print a curl command.
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init();
    let result = match cli.command {
        Command::Edge(args) => edge::run(*args),
        Command::Connect(args) => connect::run(*args),
        Command::Ctl(args) => ctl::run(args),
        Command::Master(args) => master::run(*args),
        Command::Token(args) => token::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Demo(args) => demo::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sluice: {e:#}");
            ExitCode::from(1)
        }
    }
}
