//! The master's configuration: [`RawMasterConfig`] is what a TOML file and the command line
//! give (every field optional, the flags laid over the file), [`RawMasterConfig::resolve`]
//! reads the files it names and checks the rest into a [`MasterConfig`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use sluice_proto::Hostname;
use sluice_proto::token::FernetKey;
use sluice_proto::version::ProtocolVersion;

use crate::accounts::{DEFAULT_REFRESH_VALIDITY, DEFAULT_SESSION_VALIDITY, Lifetimes};
use crate::error::MasterError;
use crate::protocol::HaThresholds;

/// How long a tunnel token is valid unless configured: Home Assistant reuses its AES key and
/// IV until `valid` passes, so it is kept to hours.
pub const DEFAULT_TUNNEL_TOKEN_VALIDITY: Duration = Duration::from_secs(3 * 3600);
/// The longest tunnel-token validity accepted.
pub const MAX_TUNNEL_TOKEN_VALIDITY: Duration = Duration::from_secs(24 * 3600);
/// The `throttling` of every token reply unless configured: the figure Nabu Casa's own tests
/// use (the client sleeps 1/N s after each frame of 8 KiB or more).
pub const DEFAULT_THROTTLING: u32 = 400;
/// How often the master looks for new version blocks (the CLI adds them from another process).
pub const DEFAULT_BLOCK_LIST_POLL: Duration = Duration::from_secs(30);
/// The port an edge listens on when `--edge` names none (Home Assistant can dial no other).
pub const DEFAULT_EDGE_PORT: u16 = 443;

/// The edge instances should dial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeAddress {
    /// A host name or an IP address (`register`'s `server`).
    pub host: String,
    /// Its tunnel port: Home Assistant always dials 443; Sluice's connector reads it from
    /// `register`'s `server_port`.
    pub port: u16,
}

impl std::str::FromStr for EdgeAddress {
    type Err = String;

    /// `HOST[:PORT]`, `[V6]:PORT` or a bare IPv6 address.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not HOST[:PORT]");
        if let Ok(ip) = s.parse::<std::net::IpAddr>() {
            return Ok(Self {
                host: ip.to_string(),
                port: DEFAULT_EDGE_PORT,
            });
        }
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(Self {
                host: addr.ip().to_string(),
                port: addr.port(),
            });
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| bad())?),
            None => (s, DEFAULT_EDGE_PORT),
        };
        let host = Hostname::parse(host.as_bytes()).map_err(|e| format!("{}: {e}", bad()))?;
        Ok(Self {
            host: host.as_str().to_owned(),
            port,
        })
    }
}

/// The most edges offered for pings.
pub const MAX_PING_EDGES: usize = 64;

/// An edge offered for the client's pings (`remote_ping_targets`): the address it pings,
/// where it is, and what `register` then tells it to dial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingTarget {
    /// The address the client pings (and names in its results).
    pub ip: std::net::IpAddr,
    /// Where it is, as shown to the client (`location`).
    pub location: String,
    /// What to dial when this one answers fastest.
    pub edge: EdgeAddress,
}

/// A `[[ping_edges]]` table of the file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPingTarget {
    /// The address the client pings.
    pub ip: std::net::IpAddr,
    /// Where it is.
    pub location: String,
    /// `HOST[:PORT]` to dial.
    pub edge: String,
}

/// Everything the master runs with.
#[derive(Debug, Clone)]
pub struct MasterConfig {
    /// The HTTPS listener (port 0 picks one; the handle says which).
    pub listen: SocketAddr,
    /// The server certificate and key.
    pub tls: Arc<rustls::ServerConfig>,
    /// The zone instances get their names in (`<random>.zone`).
    pub zone: Hostname,
    /// The edge instances are sent to, unless their pings chose one of `ping_edges`.
    pub edge: EdgeAddress,
    /// Edges offered for pings; `register` sends an instance to the one it reached fastest.
    pub ping_edges: Vec<PingTarget>,
    /// The edges' Fernet keys; the first one mints.
    pub fernet_keys: Vec<FernetKey>,
    /// Where the database and the JWT signing key live.
    pub state_dir: PathBuf,
    /// The host (and port) the discovery document's URLs name; none: the one each request
    /// was sent to.
    pub public_host: Option<String>,
    /// How long a tunnel token is valid.
    pub tunnel_token_validity: Duration,
    /// How long id, access and refresh tokens are valid.
    pub lifetimes: Lifetimes,
    /// `throttling` in token replies.
    pub throttling: u32,
    /// The highest protocol version the edges speak.
    pub edge_protocol: ProtocolVersion,
    /// Which Home Assistant releases speak which protocol.
    pub ha: HaThresholds,
    /// How often the block list is read for new blocks, whose connected instances are then
    /// told to re-check (`evaluate_remote_security`).
    pub block_list_poll: Duration,
}

impl MasterConfig {
    /// A configuration for tests and embedding: `listen`, TLS, zone, edge, keys and state
    /// directory given, everything else at its default.
    pub fn new(
        listen: SocketAddr,
        tls: Arc<rustls::ServerConfig>,
        zone: Hostname,
        edge: EdgeAddress,
        fernet_keys: Vec<FernetKey>,
        state_dir: PathBuf,
    ) -> Self {
        Self {
            listen,
            tls,
            zone,
            edge,
            ping_edges: Vec::new(),
            fernet_keys,
            state_dir,
            public_host: None,
            tunnel_token_validity: DEFAULT_TUNNEL_TOKEN_VALIDITY,
            lifetimes: Lifetimes::default(),
            throttling: DEFAULT_THROTTLING,
            edge_protocol: ProtocolVersion::LATEST,
            ha: HaThresholds::default(),
            block_list_poll: DEFAULT_BLOCK_LIST_POLL,
        }
    }
}

/// The file and the flags: every field optional. Durations are humantime (`3h`, `30days`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMasterConfig {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--tls-cert`: PEM, the leaf first.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`: PEM.
    pub tls_key: Option<PathBuf>,
    /// `--zone`.
    pub zone: Option<String>,
    /// `--edge`: `HOST[:PORT]`.
    pub edge: Option<String>,
    /// `--fernet-keys`: the edges' key file, one key a line, the first mints.
    pub fernet_keys: Option<PathBuf>,
    /// `--state-dir`.
    pub state_dir: Option<PathBuf>,
    /// The host the discovery URLs name.
    pub public_host: Option<String>,
    /// How long a tunnel token is valid (at most a day).
    #[serde(default, with = "humantime_serde")]
    pub tunnel_token_validity: Option<Duration>,
    /// How long id and access tokens are valid.
    #[serde(default, with = "humantime_serde")]
    pub session_validity: Option<Duration>,
    /// How long a refresh token is valid.
    #[serde(default, with = "humantime_serde")]
    pub refresh_validity: Option<Duration>,
    /// `throttling` in token replies.
    pub throttling: Option<u32>,
    /// The highest protocol version the edges speak (0, 1 or 2; default 2).
    pub edge_protocol_version: Option<u64>,
    /// The first Home Assistant release whose client speaks protocol 1.
    pub ha_protocol_v1_from: Option<String>,
    /// The first Home Assistant release whose client honours protocol 2 (hass-nabucasa 2.3.0+).
    pub ha_protocol_v2_from: Option<String>,
    /// How often the block list is read for new blocks.
    #[serde(default, with = "humantime_serde")]
    pub block_list_poll: Option<Duration>,
    /// Edges offered for pings (file only).
    pub ping_edges: Option<Vec<RawPingTarget>>,
}

fn config(why: impl Into<String>) -> MasterError {
    MasterError::Config(why.into())
}

fn read(path: &Path) -> Result<String, MasterError> {
    std::fs::read_to_string(path).map_err(|source| MasterError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Parses a Fernet key file: one urlsafe-base64 key a line, `#` comments and blank lines
/// skipped, at least one key (the format the edge's `--fernet-keys` reads).
pub fn parse_fernet_keys(text: &str) -> Result<Vec<FernetKey>, String> {
    sluice_proto::token::parse_key_file(text).map_err(|e| e.to_string())
}

/// A rustls server configuration from PEM files (HTTP/2 and HTTP/1.1 offered by ALPN).
pub fn load_tls(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, MasterError> {
    let certs = CertificateDer::pem_slice_iter(read(cert)?.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| config(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(config(format!("{} holds no certificate", cert.display())));
    }
    let key_der = PrivateKeyDer::from_pem_slice(read(key)?.as_bytes())
        .map_err(|e| config(format!("{}: {e}", key.display())))?;
    server_tls(certs, key_der)
}

/// A rustls server configuration from DER (what tests hold), on aws-lc-rs.
pub fn server_tls(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, MasterError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| config(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| config(format!("TLS certificate and key: {e}")))?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(tls))
}

impl RawMasterConfig {
    /// Parses a TOML file's text.
    pub fn from_toml(text: &str) -> Result<Self, MasterError> {
        toml::from_str(text).map_err(|e| config(e.to_string()))
    }

    /// `self` with every field `over` sets replaced (the flags over the file).
    pub fn overlay(self, over: Self) -> Self {
        Self {
            listen: over.listen.or(self.listen),
            tls_cert: over.tls_cert.or(self.tls_cert),
            tls_key: over.tls_key.or(self.tls_key),
            zone: over.zone.or(self.zone),
            edge: over.edge.or(self.edge),
            fernet_keys: over.fernet_keys.or(self.fernet_keys),
            state_dir: over.state_dir.or(self.state_dir),
            public_host: over.public_host.or(self.public_host),
            tunnel_token_validity: over.tunnel_token_validity.or(self.tunnel_token_validity),
            session_validity: over.session_validity.or(self.session_validity),
            refresh_validity: over.refresh_validity.or(self.refresh_validity),
            throttling: over.throttling.or(self.throttling),
            edge_protocol_version: over.edge_protocol_version.or(self.edge_protocol_version),
            ha_protocol_v1_from: over.ha_protocol_v1_from.or(self.ha_protocol_v1_from),
            ha_protocol_v2_from: over.ha_protocol_v2_from.or(self.ha_protocol_v2_from),
            block_list_poll: over.block_list_poll.or(self.block_list_poll),
            ping_edges: over.ping_edges.or(self.ping_edges),
        }
    }

    /// Reads the files named and checks every value.
    pub fn resolve(self) -> Result<MasterConfig, MasterError> {
        let need = |what: &str| config(format!("{what} is required"));
        let listen = self.listen.ok_or_else(|| need("listen"))?;
        let tls = load_tls(
            &self.tls_cert.ok_or_else(|| need("tls_cert"))?,
            &self.tls_key.ok_or_else(|| need("tls_key"))?,
        )?;
        let zone = self.zone.ok_or_else(|| need("zone"))?;
        let zone =
            Hostname::parse(zone.as_bytes()).map_err(|e| config(format!("zone {zone:?}: {e}")))?;
        let edge: EdgeAddress = self
            .edge
            .ok_or_else(|| need("edge"))?
            .parse()
            .map_err(|e| config(format!("edge: {e}")))?;
        let keys_path = self.fernet_keys.ok_or_else(|| need("fernet_keys"))?;
        let fernet_keys = parse_fernet_keys(&read(&keys_path)?)
            .map_err(|e| config(format!("{}: {e}", keys_path.display())))?;
        let state_dir = self.state_dir.ok_or_else(|| need("state_dir"))?;
        let mut out = MasterConfig::new(listen, tls, zone, edge, fernet_keys, state_dir);
        out.public_host = self.public_host;
        if let Some(v) = self.tunnel_token_validity {
            if v.is_zero() || v > MAX_TUNNEL_TOKEN_VALIDITY {
                return Err(config(
                    "tunnel_token_validity must be more than 0 and at most 24h",
                ));
            }
            out.tunnel_token_validity = v;
        }
        out.lifetimes = Lifetimes {
            session: self.session_validity.unwrap_or(DEFAULT_SESSION_VALIDITY),
            refresh: self.refresh_validity.unwrap_or(DEFAULT_REFRESH_VALIDITY),
        };
        if out.lifetimes.session.is_zero() || out.lifetimes.refresh.is_zero() {
            return Err(config(
                "session_validity and refresh_validity must be positive",
            ));
        }
        if let Some(t) = self.throttling {
            out.throttling = t;
        }
        if let Some(n) = self.edge_protocol_version {
            out.edge_protocol = ProtocolVersion::from_number(n)
                .ok_or_else(|| config(format!("edge_protocol_version {n} is not 0, 1 or 2")))?;
        }
        let ping_edges = self.ping_edges.unwrap_or_default();
        if ping_edges.len() > MAX_PING_EDGES {
            return Err(config(format!("more than {MAX_PING_EDGES} ping_edges")));
        }
        for p in ping_edges {
            let edge = p
                .edge
                .parse()
                .map_err(|e| config(format!("ping_edges {}: {e}", p.ip)))?;
            out.ping_edges.push(PingTarget {
                ip: p.ip,
                location: p.location,
                edge,
            });
        }
        if let Some(p) = self.block_list_poll {
            if p.is_zero() {
                return Err(config("block_list_poll must be positive"));
            }
            out.block_list_poll = p;
        }
        let ha = |v: Option<String>| {
            v.map(|s| s.parse::<crate::protocol::HaVersion>().map_err(config))
                .transpose()
        };
        out.ha = HaThresholds {
            v1_from: ha(self.ha_protocol_v1_from)?,
            v2_from: ha(self.ha_protocol_v2_from)?,
        };
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_addresses_parse() {
        let e = |s: &str| s.parse::<EdgeAddress>();
        assert_eq!(e("edge.example.net").unwrap().port, 443);
        assert_eq!(
            e("edge.example.net:8443").unwrap(),
            EdgeAddress {
                host: "edge.example.net".into(),
                port: 8443
            }
        );
        assert_eq!(e("127.0.0.1:9").unwrap().host, "127.0.0.1");
        assert_eq!(e("::1").unwrap().port, 443);
        assert_eq!(e("[::1]:7").unwrap().port, 7);
        assert!(e("bad host:1").is_err());
        assert!(e("edge:notaport").is_err());
    }

    #[test]
    fn flags_win_over_the_file() {
        let file = RawMasterConfig::from_toml(
            "zone = \"ui.example.net\"\nedge = \"a.example.net\"\ntunnel_token_validity = \"2h\"\n",
        )
        .unwrap();
        let flags = RawMasterConfig {
            edge: Some("b.example.net".into()),
            ..RawMasterConfig::default()
        };
        let both = file.overlay(flags);
        assert_eq!(both.edge.as_deref(), Some("b.example.net"));
        assert_eq!(both.zone.as_deref(), Some("ui.example.net"));
        assert_eq!(both.tunnel_token_validity, Some(Duration::from_secs(7200)));
        assert!(RawMasterConfig::from_toml("no_such_setting = 1").is_err());
    }

    #[test]
    fn ping_edges_come_from_the_file() {
        let raw = RawMasterConfig::from_toml(
            "[[ping_edges]]\nip = \"192.0.2.1\"\nlocation = \"Frankfurt\"\nedge = \"fra.example.net\"\n",
        )
        .unwrap();
        let p = &raw.ping_edges.unwrap()[0];
        assert_eq!(
            (p.location.as_str(), p.edge.as_str()),
            ("Frankfurt", "fra.example.net")
        );
        let bad =
            "[[ping_edges]]\nip = \"not an ip\"\nlocation = \"x\"\nedge = \"e.example.net\"\n";
        assert!(RawMasterConfig::from_toml(bad).is_err());
    }

    #[test]
    fn the_deploy_example_parses() {
        let text = include_str!("../../../deploy/master.toml");
        let raw = RawMasterConfig::from_toml(text).unwrap();
        assert_eq!(raw.zone.as_deref(), Some("ui.example.net"));
        assert_eq!(
            raw.tunnel_token_validity,
            Some(Duration::from_secs(3 * 3600))
        );
        assert!(raw.edge.unwrap().parse::<EdgeAddress>().is_ok());
    }

    #[test]
    fn key_files_parse() {
        let k = FernetKey::parse("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=").unwrap();
        let text = format!("# keys\n\n{}\n", k.to_base64());
        assert_eq!(parse_fernet_keys(&text).unwrap().len(), 1);
        assert!(parse_fernet_keys("# nothing\n").is_err());
        assert!(parse_fernet_keys("nope\n").unwrap_err().contains("line 1"));
    }
}
