//! `sluice connect`: run a connector.

use anyhow::{Context, bail};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tracing::{info, warn};

use sluice_connector::CredentialsFile;
use sluice_connector::access::parse_network;
use sluice_connector::tls::{load_certs, load_key, server_config};
use sluice_connector::{
    AccessList, Backoff, Connector, CredentialSource, Credentials, Fingerprints, State, Timeouts,
};
use sluice_proto::crypto::CipherKind;

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  passthrough, the home server terminates TLS and gets the caller's address in a PROXY v2 header:
    sluice connect --edge edge.example.net:443 --credentials creds.json --to 127.0.0.1:8443 --proxy-protocol v2
  terminate here, plain HTTP with X-Forwarded-For behind:
    sluice connect --edge edge.example.net:443 --credentials creds.json \\
      --terminate --cert fullchain.pem --key key.pem --to-http 127.0.0.1:8123

The connector reconnects after any failure (exponential backoff with full jitter), re-reads its \
credentials (file or command) before each connection and before the token expires, and switches \
to the new token's tunnel once idle.

aes-gcm: SniTun's AES-GCM nonce is a counter that restarts at zero on every connection, so using \
one key on two connections repeats nonces and exposes the tunnel's authentication key. The \
connector therefore never reconnects with an aes-gcm key it already used (it waits for fresh \
credentials) unless --allow-gcm-key-reuse is given. aes-gcm-siv has no such problem.

Control endpoint (--control 127.0.0.1:PORT, loopback only, no authentication): \
POST /connect, POST /disconnect, GET /state; `sluice ctl --control ADDR connect|disconnect|state` \
calls it. SIGINT or SIGTERM stops the connector.")]
pub(crate) struct ConnectArgs {
    /// The edge (HOST:PORT); resolved again at each connection.
    #[arg(long, value_name = "HOST:PORT")]
    edge: String,
    /// Credentials file from `sluice token issue`; re-read before each connection and before
    /// the token expires.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "credentials_command"
    )]
    credentials: Option<PathBuf>,
    /// Shell command printing a credentials document, run instead of reading a file.
    #[arg(long, value_name = "COMMAND", conflicts_with = "credentials")]
    credentials_command: Option<String>,

    /// Passthrough: the local TLS server that gets each browser's TLS bytes as they are.
    #[arg(
        long,
        value_name = "HOST:PORT",
        required_unless_present = "terminate",
        conflicts_with = "terminate"
    )]
    to: Option<String>,
    /// Terminate TLS here with --cert/--key and send plain HTTP/1.1 to --to-http.
    #[arg(long, requires_all = ["cert", "key", "to_http"])]
    terminate: bool,
    /// Certificate chain (PEM, leaf first) to serve; in passthrough mode, only shown (its
    /// fingerprints).
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, value_name = "FILE", requires = "terminate")]
    key: Option<PathBuf>,
    /// Terminate mode: the local HTTP server.
    #[arg(long, value_name = "HOST:PORT", requires = "terminate")]
    to_http: Option<String>,
    /// Send a PROXY protocol header with the caller's address on each connection to the local
    /// server (either mode); only v2.
    #[arg(long, value_name = "VERSION", value_parser = ["v2"])]
    proxy_protocol: Option<String>,
    /// Terminate mode: do not add X-Forwarded-For, X-Forwarded-Proto and Forwarded.
    #[arg(long)]
    no_forwarded_headers: bool,

    /// Only callers in this network may connect (repeatable; an address is a /32 or /128).
    #[arg(long, value_name = "NET")]
    allow: Vec<String>,
    /// Callers in this network may not connect (repeatable; wins over --allow).
    #[arg(long, value_name = "NET")]
    block: Vec<String>,

    /// Serve the control endpoint here (loopback only).
    #[arg(long, value_name = "ADDR")]
    control: Option<SocketAddr>,
    /// Start disconnected; connect through the control endpoint.
    #[arg(long)]
    start_disconnected: bool,
    /// Allow one aes-gcm key on several connections (see below). Dangerous.
    #[arg(long)]
    allow_gcm_key_reuse: bool,

    /// Fetch new credentials this long before the token expires.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "5m")]
    refresh_before: Duration,
    /// Ceiling of the first reconnect delay (doubling after each failure).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "1s")]
    backoff_initial: Duration,
    /// Largest reconnect delay ceiling.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "2m")]
    backoff_max: Duration,
    /// Time to connect to the edge, and again for the handshake.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "10s")]
    connect_timeout: Duration,
}

pub(crate) fn run(args: ConnectArgs) -> anyhow::Result<ExitCode> {
    // One thread: a connector carries a handful of channels, and keeping every task on one
    // thread avoids cross-CPU wakeups between the tunnel and channel tasks (about 50 µs each on
    // a VM). Measured with sluice-loadgen latency through edge and connector: about 10 % more
    // requests per second at saturation and a lower median at a fixed rate; bulk unchanged.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(connect(args))
}

async fn connect(args: ConnectArgs) -> anyhow::Result<ExitCode> {
    let source = match (&args.credentials, &args.credentials_command) {
        (Some(path), _) => {
            let creds = Credentials::load(path)?;
            describe(&creds, args.allow_gcm_key_reuse);
            CredentialSource::File(path.clone())
        }
        (None, Some(cmd)) => CredentialSource::Command(vec!["sh".into(), "-c".into(), cmd.clone()]),
        (None, None) => bail!("--credentials or --credentials-command is required"),
    };
    let mut access = AccessList::open();
    for net in &args.allow {
        access = access.allow([parse_network(net)?]);
    }
    for net in &args.block {
        access = access.block([parse_network(net)?]);
    }
    if let Some(addr) = args.control
        && !addr.ip().is_loopback()
    {
        bail!(
            "--control {addr}: the control endpoint has no authentication; bind it to a loopback address"
        );
    }
    let mut builder = Connector::builder(args.edge.clone(), source)
        .proxy_protocol(args.proxy_protocol.is_some())
        .forwarded_headers(!args.no_forwarded_headers)
        .access_list(access.clone())
        .refresh_before(args.refresh_before)
        .danger_allow_gcm_key_reuse(args.allow_gcm_key_reuse)
        .autoconnect(!args.start_disconnected)
        .backoff(Backoff {
            initial: args.backoff_initial,
            max: args.backoff_max,
            ..Backoff::default()
        })
        .timeouts(Timeouts {
            connect: args.connect_timeout,
            handshake: args.connect_timeout,
            ..Timeouts::default()
        });
    if let Some(path) = &args.cert {
        let certs = load_certs(path)?;
        let f = Fingerprints::of(&certs[0]);
        println!(
            "certificate {} (the one browsers must see):",
            path.display()
        );
        println!("  SHA-256 fingerprint {}", f.sha256_hex());
        println!(
            "  SHA-1 fingerprint   {}   (as Home Assistant shows it)",
            f.sha1_hex()
        );
        if args.terminate {
            let key = load_key(args.key.as_ref().context("--key is required")?)?;
            let http = args.to_http.clone().context("--to-http is required")?;
            builder = builder.terminate(server_config(certs, key)?, http);
        }
    }
    if let Some(to) = &args.to {
        builder = builder.passthrough(to.clone());
    }
    println!(
        "connector: edge {}, {}, callers allowed: {access}",
        args.edge,
        match (&args.to, &args.to_http) {
            (Some(to), _) => format!("passthrough to {to}"),
            (None, Some(http)) => format!("TLS terminated here, HTTP to {http}"),
            _ => String::new(),
        }
    );
    let handle = builder.build()?;
    if let Some(addr) = args.control {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot bind the control endpoint to {addr}"))?;
        println!("control endpoint on http://{}", listener.local_addr()?);
        tokio::spawn(sluice_connector::control::serve(handle.clone(), listener));
    }
    tokio::spawn(log_states(handle.subscribe()));
    let stopped = tokio::select! {
        r = handle.wait() => r,
        _ = shutdown_signal() => {
            info!("stopping");
            handle.shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), handle.wait()).await;
            Ok(())
        }
    };
    stopped?;
    Ok(ExitCode::SUCCESS)
}

fn describe(creds: &Credentials, allow_gcm: bool) {
    let c = creds.claims();
    println!(
        "credentials for {}{} (protocol {}, {}), token valid until {}",
        c.hostname,
        if c.aliases.is_empty() {
            String::new()
        } else {
            format!(
                " and {}",
                c.aliases
                    .iter()
                    .map(|a| a.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        c.protocol_version,
        c.cipher,
        humantime::format_rfc3339_seconds(creds.expires_at())
    );
    if c.cipher == CipherKind::AesGcm && !allow_gcm {
        warn!(
            "aes-gcm credentials: this key is used for one connection only; to reconnect, the \
             file must hold fresh credentials (or use aes-gcm-siv)"
        );
    }
}

async fn log_states(mut rx: tokio::sync::watch::Receiver<State>) {
    loop {
        let state = rx.borrow_and_update().clone();
        match &state {
            State::Connected { hostname, .. } => info!(%hostname, "connected"),
            State::BackingOff {
                until,
                attempt,
                error,
            } => {
                let left = until.saturating_duration_since(std::time::Instant::now());
                info!(attempt, retry_in = ?left, %error, "backing off");
            }
            other => info!(state = other.name(), "state"),
        }
        if matches!(state, State::Stopped(_)) || rx.changed().await.is_err() {
            return;
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
