//! Fleets of home servers: many tunnels to one edge, spread over the load threads, each with
//! the built-in origin ([`crate::tunnel`]).

use anyhow::{Context, Result, bail};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_proto::crypto::CipherKind;
use sluice_proto::token::FernetKey;
use sluice_proto::version::ProtocolVersion;

use crate::admin;
use crate::creds::{Creds, host_name, parse_cipher, parse_version, read_keys};
use crate::tunnel::{Fleet, Stop};

/// Tunnels in flight through their handshake at once, per thread.
const CONNECTING_AT_ONCE: usize = 32;

/// Flags of the tunnels a process runs.
#[derive(Debug, Clone, clap::Args)]
pub struct TunnelArgs {
    /// The edge's tunnel address (its listen address in single-port mode). `--peer-edge`, its
    /// name before, still works.
    #[arg(long, value_name = "ADDR", visible_alias = "peer-edge")]
    pub tunnel_edge: Option<SocketAddr>,
    /// Fernet key file (one per line; the first mints the tokens), as the edge's.
    #[arg(long, value_name = "FILE")]
    pub fernet_keys: Option<PathBuf>,
    /// Tunnels to open; tunnel `i` serves host name `i` of the pattern.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub tunnels: usize,
    /// Multiplexer protocol version of the tokens (0, 1 or 2).
    #[arg(long, default_value = "2", value_parser = parse_version)]
    pub protocol: ProtocolVersion,
    /// Tunnel cipher of the tokens.
    #[arg(long, default_value = "aes-cbc", value_parser = parse_cipher)]
    pub cipher: CipherKind,
    /// The built-in origin terminates TLS (browsers must use --tls).
    #[arg(long)]
    pub tunnel_tls: bool,
}

/// What every thread needs to open its share of the tunnels.
#[derive(Debug, Clone)]
pub struct Plan {
    edge: SocketAddr,
    key: FernetKey,
    version: ProtocolVersion,
    cipher: CipherKind,
    hosts: String,
    tls: Option<Arc<rustls::ServerConfig>>,
    /// Tunnels in all.
    pub count: usize,
}

impl Plan {
    /// Checks the flags; `None` when no tunnels are asked for.
    pub fn new(a: &TunnelArgs, hosts: &str) -> Result<Option<Self>> {
        if a.tunnels == 0 {
            return Ok(None);
        }
        let (Some(edge), Some(keys)) = (a.tunnel_edge, &a.fernet_keys) else {
            bail!("--tunnels needs --tunnel-edge and --fernet-keys");
        };
        let key = read_keys(keys)?.swap_remove(0);
        let tls = if a.tunnel_tls {
            let suffix = hosts.split_once('.').map_or(hosts, |(_, s)| s);
            Some(crate::tls::server_config(&[
                format!("*.{suffix}"),
                "localhost".into(),
            ])?)
        } else {
            None
        };
        Ok(Some(Self {
            edge,
            key,
            version: a.protocol,
            cipher: a.cipher,
            hosts: hosts.to_owned(),
            tls,
            count: a.tunnels,
        }))
    }

    /// The edge's tunnel address.
    pub fn edge(&self) -> SocketAddr {
        self.edge
    }

    /// Credentials for tunnel `i`.
    pub fn creds(&self, i: usize, rng: &mut StdRng) -> Result<Creds> {
        Creds::mint(
            &self.key,
            &host_name(&self.hosts, i),
            self.version,
            self.cipher,
            rng,
        )
    }

    /// Opens this thread's share (`i ≡ t mod threads`) and returns once all are up (or failed).
    pub async fn open_share(
        &self,
        t: usize,
        threads: usize,
        fleet: &Rc<Fleet>,
        stop: &Rc<Stop>,
    ) -> Result<usize> {
        let mut rng = StdRng::from_entropy();
        let mine: Vec<usize> = (t..self.count).step_by(threads).collect();
        let mut failed = 0;
        for batch in mine.chunks(CONNECTING_AT_ONCE) {
            let mut set = tokio::task::JoinSet::new();
            for &i in batch {
                let creds = self.creds(i, &mut rng)?;
                let (fleet, edge, tls, stop) =
                    (fleet.clone(), self.edge, self.tls.clone(), stop.clone());
                set.spawn_local(async move { fleet.launch(edge, &creds, tls, stop).await });
            }
            while let Some(r) = set.join_next().await {
                if !matches!(r, Ok(Ok(()))) {
                    failed += 1;
                }
            }
        }
        Ok(mine.len() - failed)
    }

    /// Opens tunnel `i` so that it sits on edge worker `worker`, reconnecting until it does
    /// (the kernel's `SO_REUSEPORT` hash picks the worker); the edge's `/metrics` tell.
    pub async fn place(
        &self,
        i: usize,
        worker: usize,
        admin_addr: SocketAddr,
        fleet: &Rc<Fleet>,
    ) -> Result<Rc<Stop>> {
        let mut rng = StdRng::from_entropy();
        const METRIC: &str = "sluice_tunnel_connections_total";
        for _ in 0..64 {
            let before = admin::per_worker(&admin::scrape(admin_addr)?, METRIC, &[]);
            let stop = Rc::new(Stop::default());
            let creds = self.creds(i, &mut rng)?;
            fleet
                .launch(self.edge, &creds, self.tls.clone(), stop.clone())
                .await
                .context("tunnel handshake")?;
            let deadline = Instant::now() + Duration::from_secs(3);
            let mut after = before.clone();
            while Instant::now() < deadline {
                after = admin::per_worker(&admin::scrape(admin_addr)?, METRIC, &[]);
                if after.iter().sum::<f64>() > before.iter().sum::<f64>() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let got = |v: &[f64]| v.get(worker).copied().unwrap_or(0.0);
            if got(&after) > got(&before) {
                return Ok(stop);
            }
            stop.stop();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("tunnel {i} never landed on worker {worker} in 64 tries")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        tunnels: TunnelArgs,
    }

    #[test]
    fn the_old_flag_still_names_the_tunnel_address() {
        for flag in ["--tunnel-edge", "--peer-edge"] {
            let cli = Cli::try_parse_from(["loadgen", flag, "127.0.0.1:9"]).unwrap();
            assert_eq!(
                cli.tunnels.tunnel_edge,
                Some("127.0.0.1:9".parse().unwrap()),
                "{flag}"
            );
        }
    }
}
