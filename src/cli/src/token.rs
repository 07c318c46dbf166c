//! `sluice token`: Fernet keys for the edge, and credentials for connectors.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use rand::rngs::OsRng;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use sluice_connector::Credentials;
use sluice_connector::CredentialsFile;
use sluice_edge::config::read_keys;
use sluice_proto::Hostname;
use sluice_proto::crypto::CipherKind;
use sluice_proto::token::{FernetKey, Issuer, TokenRequest};
use sluice_proto::version::ProtocolVersion;

#[derive(Debug, Args)]
pub(crate) struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a new Fernet key (urlsafe base64), for the edge's --fernet-keys file (one per line;
    /// the first one mints, any one verifies).
    NewKey,
    /// Mint a token and write the credentials file a connector reads.
    Issue(Box<IssueArgs>),
}

#[derive(Debug, Args)]
#[command(after_help = "\
Ciphers: aes-cbc (SniTun's default, the only one before SniTun 0.46), aes-gcm-siv (authenticated, \
safe when a key is used on many connections), aes-gcm (authenticated, but its nonce is a counter \
that restarts at zero on every connection: a connector that reconnects with the key in this file \
repeats nonces, which exposes the tunnel's authentication key; refused unless \
--allow-gcm-key-reuse, for setups that issue fresh credentials for every connection, e.g. \
`sluice connect --credentials-command 'sluice token issue ... --out -'`).

Protocol versions: 0 (every SniTun, IPv4 callers only), 1 (adds flow control, SniTun 0.42+), \
2 (encrypted caller address with IPv6, SniTun 0.46+ and Sluice). The default is 2. An older SniTun \
server needs --protocol-version 0: SniTun 0.40.0 and before ignore the token's version and speak \
only protocol 0, so with a protocol-2 token the tunnel comes up but no browser gets through \
(the connector then says so and names this fix).")]
struct IssueArgs {
    /// File of Fernet keys, one per line (the edge's --fernet-keys); the first one mints.
    #[arg(long, value_name = "FILE")]
    fernet_keys: PathBuf,
    /// The host name browsers use (the SNI the edge routes on).
    #[arg(long, value_name = "NAME")]
    hostname: String,
    /// A further host name routed to the same connector, repeatable.
    #[arg(long, value_name = "NAME")]
    alias: Vec<String>,
    /// Multiplexer protocol version: 0, 1 or 2 (2 needs SniTun 0.46+ or Sluice; see below).
    #[arg(long, value_name = "N", default_value_t = 2)]
    protocol_version: u64,
    /// Tunnel cipher: aes-cbc, aes-gcm-siv or aes-gcm.
    #[arg(long, value_name = "NAME", default_value = "aes-cbc")]
    cipher: String,
    /// How long the token is valid (e.g. 12h, 30days).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "30days")]
    valid_for: Duration,
    /// Where to write the credentials (mode 0600, replaced atomically); `-` for stdout.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Allow aes-gcm although its key may be reused across connections (see below).
    #[arg(long)]
    allow_gcm_key_reuse: bool,
}

pub(crate) fn run(args: TokenArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        TokenCommand::NewKey => {
            println!("{}", FernetKey::generate(&mut OsRng).to_base64());
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Issue(a) => issue(*a),
    }
}

fn issue(a: IssueArgs) -> anyhow::Result<ExitCode> {
    let keys = read_keys(&a.fernet_keys).map_err(|e| anyhow::anyhow!("{e}"))?;
    let name = |n: &str| Hostname::parse(n.as_bytes()).with_context(|| format!("host name {n:?}"));
    let version = ProtocolVersion::from_number(a.protocol_version)
        .with_context(|| format!("protocol version {} is not 0, 1 or 2", a.protocol_version))?;
    let cipher = CipherKind::from_name(&a.cipher).with_context(|| {
        format!(
            "cipher {:?} is not aes-cbc, aes-gcm-siv or aes-gcm",
            a.cipher
        )
    })?;
    if cipher == CipherKind::AesGcm && !a.allow_gcm_key_reuse {
        bail!(
            "refusing aes-gcm: its nonce counter restarts on every connection, and a connector \
             reuses this file's key when it reconnects, which repeats nonces. Use aes-gcm-siv \
             (safe with a reused key), or pass --allow-gcm-key-reuse if every connection gets \
             freshly issued credentials"
        );
    }
    if a.valid_for.is_zero() {
        bail!("--valid-for must be positive");
    }
    let request = TokenRequest {
        hostname: name(&a.hostname)?,
        aliases: a.alias.iter().map(|n| name(n)).collect::<Result<_, _>>()?,
        protocol_version: version,
        cipher,
        valid_for: a.valid_for,
    };
    let issued = Issuer::new(&keys)?.issue(&request, SystemTime::now(), &mut OsRng)?;
    let creds = Credentials::new(issued.token, issued.claims)?;
    if a.out.as_os_str() == "-" {
        print!("{}", creds.to_json());
    } else {
        creds.save(&a.out)?;
        eprintln!(
            "wrote {} for {} (protocol {}, {}), valid until {}",
            a.out.display(),
            creds.hostname(),
            version,
            cipher,
            humantime::format_rfc3339_seconds(creds.expires_at())
        );
    }
    Ok(ExitCode::SUCCESS)
}
