//! `sluice ctl`: drive a running `sluice connect` through its control endpoint.

use anyhow::Context;
use clap::{Args, ValueEnum};
use std::net::SocketAddr;
use std::process::ExitCode;

#[derive(Debug, Args)]
#[command(after_help = "The endpoint speaks plain HTTP, so curl works too: \
curl -X POST http://ADDR/disconnect, curl -X POST http://ADDR/connect, curl http://ADDR/state.")]
pub(crate) struct CtlArgs {
    /// The control endpoint of `sluice connect --control ADDR`.
    #[arg(long, value_name = "ADDR")]
    control: SocketAddr,
    /// What to do.
    action: Action,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Action {
    /// Connect (or retry at once while backing off).
    Connect,
    /// Close the tunnel and stay disconnected.
    Disconnect,
    /// Print the state as JSON.
    State,
}

pub(crate) fn run(args: CtlArgs) -> anyhow::Result<ExitCode> {
    let (method, path) = match args.action {
        Action::Connect => ("POST", "/connect"),
        Action::Disconnect => ("POST", "/disconnect"),
        Action::State => ("GET", "/state"),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (status, body) = rt
        .block_on(sluice_connector::control::request(
            args.control,
            method,
            path,
        ))
        .with_context(|| format!("no answer from the control endpoint at {}", args.control))?;
    println!("{body}");
    Ok(if status == 200 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
