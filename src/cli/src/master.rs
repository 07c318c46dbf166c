//! `sluice master`: run the session master, and the operator's commands on its state
//! directory (accounts, token sets for enrolling a device).

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use sluice_master::accounts::Lifetimes;
use sluice_master::{Accounts, Master, RawMasterConfig, Versions};

#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "\
Examples:
  sluice master --listen 0.0.0.0:8443 --tls-cert master.pem --tls-key master-key.pem \\
    --zone ui.example.net --edge edge.example.net --fernet-keys fernet.keys --state-dir /var/lib/sluice-master
  printf '%s\\n' 'a long password' | sluice master account add owner@example.net --state-dir /var/lib/sluice-master
  sluice master token owner@example.net --state-dir /var/lib/sluice-master > auth.json

Every flag of the first form can also be set in the --config TOML file (the same names with \
underscores: tls_cert, fernet_keys, ...); flags win. The state directory holds the SQLite \
database and the JWT signing key (made on first start, mode 0600). SIGHUP re-reads the Fernet \
key file (the first key mints); SIGINT or SIGTERM stops."
)]
pub(crate) struct MasterArgs {
    #[command(subcommand)]
    command: Option<MasterCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum MasterCommand {
    /// Add, list or disable accounts.
    Account(AccountArgs),
    /// Print a token set (`{"id_token","access_token","refresh_token"}`) for an account.
    Token(TokenArgs),
    /// Block insecure Home Assistant versions from remote access (HTTP 409 on snitun_token).
    Versions(VersionsArgs),
}

#[derive(Debug, Args)]
struct VersionsArgs {
    #[command(subcommand)]
    command: VersionsCommand,
}

#[derive(Debug, Subcommand)]
enum VersionsCommand {
    /// Block a version spec (`<=2021.1.4`, `<2022.1`, `==2023.5.2`); a new spec clears every
    /// owner's override.
    Block {
        /// The versions to block.
        spec: String,
        /// Why, as the owner is told.
        #[arg(long, value_name = "TEXT")]
        reason: String,
        #[arg(long, value_name = "DIR")]
        state_dir: PathBuf,
    },
    /// List the blocked specs: spec, reason.
    List {
        #[arg(long, value_name = "DIR")]
        state_dir: PathBuf,
    },
    /// Remove a block.
    Unblock {
        /// The spec, as blocked.
        spec: String,
        #[arg(long, value_name = "DIR")]
        state_dir: PathBuf,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    /// TOML file with any of the settings below (flags win).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The HTTPS listener.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Server certificate chain (PEM, leaf first).
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// The zone instances are named in (`<random>.ZONE`).
    #[arg(long, value_name = "ZONE")]
    zone: Option<String>,
    /// The edge instances dial (Home Assistant always dials port 443).
    #[arg(long, value_name = "HOST[:PORT]")]
    edge: Option<String>,
    /// The edges' Fernet key file (one key a line; the first one mints).
    #[arg(long, value_name = "FILE")]
    fernet_keys: Option<PathBuf>,
    /// Database and signing key.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// The host[:port] the discovery document's URLs name (default: the one each request
    /// was sent to).
    #[arg(long, value_name = "HOST[:PORT]")]
    public_host: Option<String>,
}

#[derive(Debug, Args)]
struct AccountArgs {
    #[command(subcommand)]
    command: AccountCommand,
}

#[derive(Debug, Subcommand)]
enum AccountCommand {
    /// Add an account; its password is read from the first line of stdin.
    Add {
        /// The account's email address.
        email: String,
        #[arg(long, value_name = "DIR")]
        state_dir: PathBuf,
    },
    /// List accounts: email, enabled or disabled, id.
    List {
        #[arg(long, value_name = "DIR")]
        state_dir: PathBuf,
    },
    /// Disable an account: its tokens are refused from now on.
    Disable {
        /// The account's email address.
        email: String,
        #[arg(long, value_name = "DIR")]
        state_dir: PathBuf,
    },
}

#[derive(Debug, Args)]
struct TokenArgs {
    /// The account's email address.
    email: String,
    #[arg(long, value_name = "DIR")]
    state_dir: PathBuf,
    /// How long the id and access tokens last. Default: as long as a refresh token (30 days),
    /// because Home Assistant renews its tokens only through Cognito, never against this
    /// master: a token set pasted into it lasts exactly this long.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    valid_for: Option<Duration>,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")
}

pub(crate) fn run(args: MasterArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        None => serve(args.run),
        Some(MasterCommand::Account(a)) => runtime()?.block_on(account(a.command)),
        Some(MasterCommand::Token(t)) => runtime()?.block_on(token(t)),
        Some(MasterCommand::Versions(v)) => runtime()?.block_on(versions(v.command)),
    }
}

fn serve(args: RunArgs) -> anyhow::Result<ExitCode> {
    let file = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            RawMasterConfig::from_toml(&text).with_context(|| path.display().to_string())?
        }
        None => RawMasterConfig::default(),
    };
    let flags = RawMasterConfig {
        listen: args.listen,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        zone: args.zone,
        edge: args.edge,
        fernet_keys: args.fernet_keys,
        state_dir: args.state_dir,
        public_host: args.public_host,
        ..RawMasterConfig::default()
    };
    let raw = file.overlay(flags);
    let keys_path = raw.fernet_keys.clone();
    let config = raw.resolve()?;
    runtime()?.block_on(async {
        // Signals are taken over before the master starts and says where it listens: a reload
        // or a stop sent as soon as the line appears is handled, never the default (death), and
        // the streams live across reloads so no SIGTERM is missed between two turns.
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
        let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        let mut master = Master::start(config).await?;
        eprintln!(
            "sluice master: listening on https://{}",
            master.local_addr()
        );
        loop {
            tokio::select! {
                _ = term.recv() => {
                    master.shutdown().await?;
                    break;
                }
                _ = interrupt.recv() => {
                    master.shutdown().await?;
                    break;
                }
                result = master.wait() => {
                    result?;
                    break;
                }
                _ = hangup.recv() => reload_keys(&master, keys_path.as_deref()),
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// SIGHUP: mint with the key file's first key from now on; a file that does not parse keeps
/// the keys in use.
fn reload_keys(master: &sluice_master::MasterHandle, path: Option<&std::path::Path>) {
    let Some(path) = path else { return };
    let keys = std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|text| sluice_master::config::parse_fernet_keys(&text))
        .and_then(|keys| {
            master.reload_keys(&keys).map_err(|e| e.to_string())?;
            Ok(keys.len())
        });
    match keys {
        Ok(n) => eprintln!(
            "sluice master: reloaded {n} Fernet keys from {}",
            path.display()
        ),
        Err(e) => eprintln!(
            "sluice master: keeping the keys in use, {} is unusable: {e}",
            path.display()
        ),
    }
}

async fn account(command: AccountCommand) -> anyhow::Result<ExitCode> {
    match command {
        AccountCommand::Add { email, state_dir } => {
            let mut password = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut password)
                .context("reading the password from stdin")?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                bail!("no password on stdin (its first line is the password)");
            }
            let accounts = Accounts::open(&state_dir, Lifetimes::default()).await?;
            let added = accounts.add(&email, password, "cli").await?;
            eprintln!("added {} ({})", added.email, added.id);
        }
        AccountCommand::List { state_dir } => {
            let accounts = Accounts::open(&state_dir, Lifetimes::default()).await?;
            for a in accounts.list().await? {
                let state = if a.disabled { "disabled" } else { "enabled" };
                println!("{}\t{state}\t{}", a.email, a.id);
            }
        }
        AccountCommand::Disable { email, state_dir } => {
            let accounts = Accounts::open(&state_dir, Lifetimes::default()).await?;
            let a = accounts.disable(&email, "cli").await?;
            eprintln!("disabled {}", a.email);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn versions(command: VersionsCommand) -> anyhow::Result<ExitCode> {
    let open = |dir: &PathBuf| {
        let dir = dir.clone();
        async move {
            let accounts = Accounts::open(&dir, Lifetimes::default()).await?;
            anyhow::Ok(Versions::new(accounts.store().clone()))
        }
    };
    match command {
        VersionsCommand::Block {
            spec,
            reason,
            state_dir,
        } => {
            let cleared = open(&state_dir).await?.block(&spec, &reason, "cli").await?;
            eprintln!("blocked {spec}");
            for name in cleared {
                eprintln!("cleared the override of {name}");
            }
        }
        VersionsCommand::List { state_dir } => {
            for b in open(&state_dir).await?.list().await? {
                println!("{}\t{}", b.spec, b.reason);
            }
        }
        VersionsCommand::Unblock { spec, state_dir } => {
            if !open(&state_dir).await?.unblock(&spec, "cli").await? {
                bail!("{spec} is not blocked");
            }
            eprintln!("unblocked {spec}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn token(args: TokenArgs) -> anyhow::Result<ExitCode> {
    let accounts = Accounts::open(&args.state_dir, Lifetimes::default()).await?;
    let valid_for = args.valid_for.unwrap_or(Lifetimes::default().refresh);
    let set = accounts.token_set_for(&args.email, Some(valid_for)).await?;
    println!("{}", serde_json::to_string(&set)?);
    Ok(ExitCode::SUCCESS)
}
