//! `sluice edge`: flags, config file, signals.

use anyhow::Context;
use clap::Args;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tracing::{info, warn};

use sluice_edge::config::{RawLimits, RawTimeouts, read_keys};
use sluice_edge::{IoDriver, RawConfig};

/// Exit status for a configuration that does not validate.
const EXIT_CONFIG: u8 = 2;

/// Every setting of the configuration file is also a flag; a flag wins over the file.
#[derive(Debug, Args)]
#[command(
    after_help = "Signals: SIGHUP reloads the Fernet keys; SIGTERM or SIGINT drains and stops \
(a second one stops at once). Logs go to stderr, filtered by SLUICE_LOG (e.g. SLUICE_LOG=debug)."
)]
pub(crate) struct EdgeArgs {
    /// TOML configuration file (see deploy/edge.toml); flags override its values.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address for browsers, repeatable; it takes tunnels too unless --peer-listen is given.
    /// [default: 127.0.0.1:8443]
    #[arg(long, value_name = "ADDR")]
    listen: Vec<SocketAddr>,
    /// Address for tunnels only (dual-port mode), repeatable.
    #[arg(long, value_name = "ADDR")]
    peer_listen: Vec<SocketAddr>,
    /// File of Fernet keys, one per line; any of them may verify a token; re-read on SIGHUP.
    #[arg(long, value_name = "FILE")]
    fernet_keys: Option<PathBuf>,
    /// Worker threads, each pinned to a CPU [default: one per CPU].
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Do not pin workers to CPUs.
    #[arg(long)]
    no_pin_workers: bool,
    /// Address for the admin endpoint (/metrics, /healthz) [default: none].
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,
    /// Require a PROXY protocol v1/v2 header on every connection and use its source address
    /// as the caller's. Only behind a balancer you trust.
    #[arg(long)]
    trust_proxy_protocol: bool,
    /// Keep the memory glibc holds after a burst instead of giving it back (by default the
    /// edge trims its arenas when they hold over 16 MiB free).
    #[arg(long)]
    no_trim_memory: bool,
    /// I/O driver: auto (io_uring, else epoll), io-uring, or epoll [default: auto].
    #[arg(long, value_name = "DRIVER")]
    io: Option<IoDriver>,

    /// Most tunnels connected at once, all workers together [default: 100000].
    #[arg(long, value_name = "N", help_heading = "Limits")]
    max_tunnels: Option<usize>,
    /// Most browser connections per tunnel [default: 1024].
    #[arg(long, value_name = "N", help_heading = "Limits")]
    max_channels_per_tunnel: Option<usize>,
    /// Most browser connections at once, all workers together [default: 1000000].
    #[arg(long, value_name = "N", help_heading = "Limits")]
    max_connections: Option<usize>,
    /// Most connections still in their hello or tunnel handshake, all workers together
    /// [default: 10000].
    #[arg(long, value_name = "N", help_heading = "Limits")]
    max_pending_handshakes: Option<usize>,
    /// Largest ClientHello, in bytes [default: 16384].
    #[arg(long, value_name = "BYTES", help_heading = "Limits")]
    max_hello_len: Option<usize>,
    /// Largest frame payload accepted from a tunnel [default: 8388608].
    #[arg(long, value_name = "BYTES", help_heading = "Limits")]
    max_frame_size: Option<u32>,
    /// Undelivered bytes of a channel at which its tunnel is sent PAUSE [default: 524288].
    #[arg(long, value_name = "BYTES", help_heading = "Limits")]
    channel_pause_bytes: Option<usize>,
    /// ... and at which RESUME [default: 131072].
    #[arg(long, value_name = "BYTES", help_heading = "Limits")]
    channel_resume_bytes: Option<usize>,
    /// Undelivered bytes of a channel above which it is closed [default: 8388608].
    #[arg(long, value_name = "BYTES", help_heading = "Limits")]
    channel_queue_max: Option<usize>,
    /// Undelivered bytes of a tunnel above which its largest channel is closed [default: 33554432].
    #[arg(long, value_name = "BYTES", help_heading = "Limits")]
    tunnel_queue_max: Option<usize>,
    /// Bytes queued towards a tunnel above which the browser is not read [default: 262144].
    #[arg(long, value_name = "BYTES", help_heading = "Limits")]
    channel_send_high: Option<usize>,
    /// ... and at or below which it is read again [default: 65536].
    #[arg(long, value_name = "BYTES", help_heading = "Limits")]
    channel_send_low: Option<usize>,

    /// Time for a browser's ClientHello to arrive [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, help_heading = "Timeouts")]
    hello_timeout: Option<Duration>,
    /// Time for a tunnel's token and challenge answer [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, help_heading = "Timeouts")]
    handshake_timeout: Option<Duration>,
    /// A tunnel silent this long is dropped [default: 120s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, help_heading = "Timeouts")]
    tunnel_idle_timeout: Option<Duration>,
    /// A browser connection idle both ways this long is closed [default: 120s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, help_heading = "Timeouts")]
    channel_idle_timeout: Option<Duration>,
    /// A socket write that does not progress this long fails [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, help_heading = "Timeouts")]
    write_timeout: Option<Duration>,
    /// How long shutdown waits for browser connections to finish [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, help_heading = "Timeouts")]
    shutdown_grace: Option<Duration>,

    /// Validate the configuration, print it, and exit.
    #[arg(long)]
    check: bool,
}

impl EdgeArgs {
    fn overrides(&self) -> RawConfig {
        let list = |v: &Vec<SocketAddr>| (!v.is_empty()).then(|| v.clone());
        RawConfig {
            listen: list(&self.listen),
            peer_listen: list(&self.peer_listen),
            fernet_keys: self.fernet_keys.clone(),
            workers: self.workers,
            pin_workers: self.no_pin_workers.then_some(false),
            admin: self.admin,
            trust_proxy_protocol: self.trust_proxy_protocol.then_some(true),
            trim_memory: self.no_trim_memory.then_some(false),
            io: self.io,
            limits: RawLimits {
                max_tunnels: self.max_tunnels,
                max_channels_per_tunnel: self.max_channels_per_tunnel,
                max_connections: self.max_connections,
                max_pending_handshakes: self.max_pending_handshakes,
                max_hello_len: self.max_hello_len,
                max_frame_size: self.max_frame_size,
                channel_pause_bytes: self.channel_pause_bytes,
                channel_resume_bytes: self.channel_resume_bytes,
                channel_queue_max: self.channel_queue_max,
                tunnel_queue_max: self.tunnel_queue_max,
                channel_send_high: self.channel_send_high,
                channel_send_low: self.channel_send_low,
            },
            timeouts: RawTimeouts {
                hello: self.hello_timeout,
                handshake: self.handshake_timeout,
                tunnel_idle: self.tunnel_idle_timeout,
                channel_idle: self.channel_idle_timeout,
                write: self.write_timeout,
                shutdown_grace: self.shutdown_grace,
            },
        }
    }
}

pub(crate) fn run(args: EdgeArgs) -> anyhow::Result<ExitCode> {
    let file = match &args.config {
        Some(path) => match RawConfig::from_file(path) {
            Ok(raw) => raw,
            Err(e) => return Ok(config_error(e)),
        },
        None => RawConfig::default(),
    };
    let config = match file.overlay(args.overrides()).resolve() {
        Ok(c) => c,
        Err(e) => return Ok(config_error(e)),
    };
    if args.check {
        println!("{config:#?}");
        return Ok(ExitCode::SUCCESS);
    }
    // Signals are routed here before any worker exists, so none of them takes the default action.
    let mut signals =
        Signals::new([SIGHUP, SIGINT, SIGTERM]).context("cannot install signal handlers")?;
    let keys_path = config.fernet_keys_path.clone();
    let edge = sluice_edge::start(config).context("edge did not start")?;
    for signal in signals.forever() {
        match signal {
            SIGHUP => match keys_path.as_deref().map(read_keys) {
                Some(Ok(keys)) => {
                    info!(keys = keys.len(), "reloading Fernet keys");
                    edge.reload_keys(keys);
                }
                Some(Err(e)) => warn!("keeping the current keys: {e}"),
                None => {}
            },
            _ => {
                info!("draining; a second signal stops at once");
                let handle = signals.handle();
                let waiter = std::thread::spawn(move || {
                    edge.shutdown();
                    // Ends the signal loop below.
                    handle.close();
                });
                for second in signals.forever() {
                    if second != SIGHUP {
                        warn!("stopping now");
                        std::process::exit(130);
                    }
                }
                let _ = waiter.join();
                info!("stopped");
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn config_error(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("sluice edge: {e}");
    ExitCode::from(EXIT_CONFIG)
}
