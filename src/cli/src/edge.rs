//! `sluice edge`: flags, config file, signals.

use anyhow::Context;
use clap::Args;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tracing::{info, warn};

use sluice_edge::config::{RawLimits, RawTimeouts, defaults, read_keys};
use sluice_edge::{IoDriver, RawConfig};
use sluice_proto::mux::MuxConfig;

/// Exit status for a configuration that does not validate.
const EXIT_CONFIG: u8 = 2;

/// Every setting of the configuration file is also a flag; a flag wins over the file.
#[derive(Debug, Args)]
#[command(
    after_help = "Once listening, it prints one line to stdout: `sluice edge ready \
listen=ADDR[,ADDR] tunnel_listen=ADDR[,ADDR] admin=ADDR|none workers=N driver=io_uring|epoll` \
(tunnel_listen: where tunnels connect). Signals: SIGHUP reloads the Fernet keys; SIGTERM or \
SIGINT drains and stops (a second one stops at once). Logs go to stderr, filtered by SLUICE_LOG \
(e.g. SLUICE_LOG=debug)."
)]
pub(crate) struct EdgeArgs {
    /// TOML configuration file (see deploy/edge.toml); flags override its values.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    #[arg(long, value_name = "ADDR", help = with_default(
        "Address for browsers, repeatable; it takes tunnels too unless --tunnel-listen is given",
        defaults::LISTEN,
    ))]
    listen: Vec<SocketAddr>,
    /// Address for tunnels only (dual-port mode), repeatable. `--peer-listen`, its name
    /// before, still works.
    #[arg(long, value_name = "ADDR", visible_alias = "peer-listen")]
    tunnel_listen: Vec<SocketAddr>,
    /// File of Fernet keys, one per line; any of them may verify a token; re-read on SIGHUP.
    #[arg(long, value_name = "FILE")]
    fernet_keys: Option<PathBuf>,
    /// Worker threads, each pinned to a CPU; 0 (as in a config file) means one per CPU, which
    /// is resolved before the edge starts [default: one per CPU].
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

    #[arg(long, value_name = "N", help_heading = "Limits", help = with_default("Most tunnels connected at once, all workers together", defaults::MAX_TUNNELS))]
    max_tunnels: Option<usize>,
    #[arg(long, value_name = "N", help_heading = "Limits", help = with_default("Most browser connections per tunnel", MuxConfig::server().max_channels))]
    max_channels_per_tunnel: Option<usize>,
    #[arg(long, value_name = "N", help_heading = "Limits", help = with_default("Most browser connections at once, all workers together", defaults::MAX_CONNECTIONS))]
    max_connections: Option<usize>,
    #[arg(long, value_name = "N", help_heading = "Limits", help = with_default("Most connections still in their hello or tunnel handshake, all workers together", defaults::MAX_PENDING_HANDSHAKES))]
    max_pending_handshakes: Option<usize>,
    #[arg(long, value_name = "BYTES", help_heading = "Limits", help = with_default("Largest ClientHello, in bytes", defaults::MAX_HELLO_LEN))]
    max_hello_len: Option<usize>,
    #[arg(long, value_name = "BYTES", help_heading = "Limits", help = with_default("Largest frame payload accepted from a tunnel", MuxConfig::server().max_frame_size))]
    max_frame_size: Option<u32>,
    #[arg(long, value_name = "BYTES", help_heading = "Limits", help = with_default("Undelivered bytes of a channel at which its tunnel is sent PAUSE", MuxConfig::server().incoming_high))]
    channel_pause_bytes: Option<usize>,
    #[arg(long, value_name = "BYTES", help_heading = "Limits", help = with_default("... and at which RESUME", MuxConfig::server().incoming_low))]
    channel_resume_bytes: Option<usize>,
    #[arg(long, value_name = "BYTES", help_heading = "Limits", help = with_default("Undelivered bytes of a channel above which it is closed", MuxConfig::server().channel_incoming_max))]
    channel_queue_max: Option<usize>,
    #[arg(long, value_name = "BYTES", help_heading = "Limits", help = with_default("Undelivered bytes of a tunnel above which its largest channel is closed", MuxConfig::server().tunnel_incoming_max))]
    tunnel_queue_max: Option<usize>,
    #[arg(long, value_name = "BYTES", help_heading = "Limits", help = with_default("Bytes queued towards a tunnel above which the browser is not read", MuxConfig::server().outgoing_high))]
    channel_send_high: Option<usize>,
    #[arg(long, value_name = "BYTES", help_heading = "Limits", help = with_default("... and at or below which it is read again", MuxConfig::server().outgoing_low))]
    channel_send_low: Option<usize>,

    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, help_heading = "Timeouts", help = with_default("Time for a browser's ClientHello to arrive", humantime::format_duration(defaults::HELLO_TIMEOUT)))]
    hello_timeout: Option<Duration>,
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, help_heading = "Timeouts", help = with_default("Time for a tunnel's token and challenge answer", humantime::format_duration(defaults::HANDSHAKE_TIMEOUT)))]
    handshake_timeout: Option<Duration>,
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, help_heading = "Timeouts", help = with_default("A tunnel silent this long is dropped", humantime::format_duration(defaults::TUNNEL_IDLE_TIMEOUT)))]
    tunnel_idle_timeout: Option<Duration>,
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, help_heading = "Timeouts", help = with_default("A browser connection idle both ways this long is closed", humantime::format_duration(defaults::CHANNEL_IDLE_TIMEOUT)))]
    channel_idle_timeout: Option<Duration>,
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, help_heading = "Timeouts", help = with_default("A socket write that does not progress this long fails", humantime::format_duration(defaults::WRITE_TIMEOUT)))]
    write_timeout: Option<Duration>,
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, help_heading = "Timeouts", help = with_default("How long shutdown waits for browser connections to finish", humantime::format_duration(defaults::SHUTDOWN_GRACE)))]
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
            tunnel_listen: list(&self.tunnel_listen),
            fernet_keys: self.fernet_keys.clone(),
            workers: self.workers,
            pin_workers: self.no_pin_workers.then_some(false),
            admin: self.admin,
            trust_proxy_protocol: self.trust_proxy_protocol.then_some(true),
            trim_memory: self.no_trim_memory.then_some(false),
            // Listener by listener only in the file (`[[listeners]]`).
            listeners: None,
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
    // A closed stdout must not stop an edge whose workers are already serving.
    let _ = writeln!(std::io::stdout().lock(), "{}", ready_line(&edge));
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

/// The one stdout line of a started edge, for scripts and tests (documented in the README and
/// `--help`): `sluice edge ready listen=ADDR[,ADDR] tunnel_listen=ADDR[,ADDR] admin=ADDR|none
/// workers=N driver=io_uring|epoll`. `tunnel_listen` is where tunnels connect: the tunnel-only
/// addresses in dual-port mode, else the browser ones.
fn ready_line(edge: &sluice_edge::EdgeHandle) -> String {
    let join = |addrs: &[SocketAddr]| {
        addrs
            .iter()
            .map(SocketAddr::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let tunnels = match edge.tunnel_addrs() {
        [] => edge.listen_addrs(),
        dedicated => dedicated,
    };
    format!(
        "sluice edge ready listen={} tunnel_listen={} admin={} workers={} driver={}",
        join(edge.listen_addrs()),
        join(tunnels),
        edge.admin_addr()
            .map_or_else(|| "none".to_owned(), |a| a.to_string()),
        edge.drivers().len(),
        driver_label(edge.drivers()),
    )
}

/// A flag's help with its default, taken from the edge's one table of defaults (so `--help`
/// cannot disagree with what an unset flag resolves to).
fn with_default(text: &str, default: impl std::fmt::Display) -> String {
    format!("{text} [default: {default}]")
}

fn config_error(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("sluice edge: {e}");
    ExitCode::from(EXIT_CONFIG)
}

/// The workers' I/O driver, or `mixed` when a fallback happened on some workers only.
fn driver_label(drivers: &[sluice_edge::Driver]) -> &'static str {
    match drivers.split_first() {
        None => "none",
        Some((first, rest)) if rest.iter().all(|d| d == first) => first.name(),
        Some(_) => "mixed",
    }
}
