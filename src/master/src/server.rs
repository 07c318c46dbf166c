//! Starting and stopping the master: the HTTPS listener (rustls) serving the API.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use sluice_proto::token::{FernetKey, Issuer};
use tokio::task::JoinHandle;

use crate::accounts::Accounts;
use crate::api::{self, Shared};
use crate::config::MasterConfig;
use crate::error::MasterError;
use crate::relayer::Relayer;
use crate::versions::Versions;

/// How long a shutdown lets requests in flight finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The session master.
#[derive(Debug)]
pub struct Master;

/// A running master.
#[derive(Debug)]
pub struct MasterHandle {
    addr: SocketAddr,
    handle: Handle<SocketAddr>,
    /// None once `wait` saw the server end.
    task: Option<JoinHandle<std::io::Result<()>>>,
    /// The block-list watcher, stopped with the server.
    watcher: JoinHandle<()>,
    accounts: Accounts,
    versions: Versions,
    relayer: Relayer,
    shared: Arc<Shared>,
}

impl Master {
    /// Opens the state directory (database, signing key), binds `config.listen` and serves
    /// the API on the current tokio runtime until the handle shuts it down.
    pub async fn start(config: MasterConfig) -> Result<MasterHandle, MasterError> {
        let accounts = Accounts::open(&config.state_dir, config.lifetimes).await?;
        Self::start_with(config, accounts).await
    }

    /// The same over accounts the caller opened (a test's in-memory store).
    pub async fn start_with(
        config: MasterConfig,
        accounts: Accounts,
    ) -> Result<MasterHandle, MasterError> {
        let issuer = Issuer::new(&config.fernet_keys)
            .map_err(|e| MasterError::Config(format!("fernet_keys: {e}")))?;
        let listen = config.listen;
        let listen_err = |source| MasterError::Listen {
            addr: listen,
            source,
        };
        let listener = std::net::TcpListener::bind(listen).map_err(listen_err)?;
        listener.set_nonblocking(true).map_err(listen_err)?;
        let addr = listener.local_addr().map_err(listen_err)?;
        let versions = Versions::new(accounts.store().clone());
        let relayer = Relayer::new();
        let shared = Arc::new(Shared {
            accounts: accounts.clone(),
            versions: versions.clone(),
            relayer: relayer.clone(),
            logins: Default::default(),
            issuer: std::sync::RwLock::new(issuer),
            zone: config.zone,
            edge: config.edge,
            ping_edges: config.ping_edges,
            public_host: config.public_host,
            tunnel_token_validity: config.tunnel_token_validity,
            throttling: config.throttling,
            edge_protocol: config.edge_protocol,
            ha: config.ha,
        });
        let app = api::router(shared.clone());
        let handle = Handle::new();
        let server = axum_server::tls_rustls::from_tcp_rustls(
            listener,
            RustlsConfig::from_config(config.tls),
        )
        .map_err(listen_err)?
        .handle(handle.clone());
        let known = specs(&versions).await?;
        let watcher = tokio::spawn(watch_blocks(
            versions.clone(),
            relayer.clone(),
            known,
            config.block_list_poll,
        ));
        let task =
            tokio::spawn(server.serve(app.into_make_service_with_connect_info::<SocketAddr>()));
        tracing::info!(%addr, "session master listening");
        Ok(MasterHandle {
            addr,
            handle,
            task: Some(task),
            watcher,
            accounts,
            versions,
            relayer,
            shared,
        })
    }
}

impl MasterHandle {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The accounts it serves.
    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// The instances' relayer connections, to ask them things.
    pub fn relayer(&self) -> &Relayer {
        &self.relayer
    }

    /// Mints with `keys[0]` from now on (the key file was edited: a rotation adds the new
    /// key on the edges first, then puts it first here). Refuses an empty list.
    pub fn reload_keys(&self, keys: &[FernetKey]) -> Result<(), MasterError> {
        let issuer =
            Issuer::new(keys).map_err(|e| MasterError::Config(format!("fernet_keys: {e}")))?;
        *self.shared.issuer.write().expect("issuer lock") = issuer;
        Ok(())
    }

    /// The version block list it enforces.
    pub fn versions(&self) -> &Versions {
        &self.versions
    }

    /// Stops accepting, lets requests in flight finish (at most [`SHUTDOWN_GRACE`]), and
    /// returns when the server has stopped.
    pub async fn shutdown(mut self) -> Result<(), MasterError> {
        self.watcher.abort();
        self.handle.graceful_shutdown(Some(SHUTDOWN_GRACE));
        self.wait().await
    }

    /// Waits until the server stops (after a shutdown, or by itself on an I/O error); at
    /// once if it has already been seen to stop.
    pub async fn wait(&mut self) -> Result<(), MasterError> {
        let Some(task) = self.task.as_mut() else {
            return Ok(());
        };
        let result = task.await;
        self.task = None;
        let addr = self.addr;
        match result {
            Ok(result) => result.map_err(|source| MasterError::Listen { addr, source }),
            Err(e) => Err(MasterError::Listen {
                addr,
                source: std::io::Error::other(e),
            }),
        }
    }
}

/// How long a connected instance is given to take an `evaluate_remote_security`.
const EVALUATE_TIMEOUT: Duration = Duration::from_secs(30);

async fn specs(versions: &Versions) -> Result<BTreeSet<String>, crate::versions::VersionError> {
    Ok(versions.list().await?.into_iter().map(|b| b.spec).collect())
}

/// Reads the block list every `every`; when a spec appears that is not in `known`, tells
/// every instance on the relayer to re-check its version (`cloud` /
/// `evaluate_remote_security`: Home Assistant disconnects and asks for a fresh token, which
/// gets the 409 if it is blocked).
async fn watch_blocks(
    versions: Versions,
    relayer: Relayer,
    mut known: BTreeSet<String>,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = match specs(&versions).await {
            Ok(now) => now,
            Err(e) => {
                tracing::warn!(error = %e, "reading the block list failed");
                continue;
            }
        };
        let new = now.iter().any(|s| !known.contains(s));
        known = now;
        if !new {
            continue;
        }
        for account in relayer.connected_accounts() {
            let relayer = relayer.clone();
            tokio::spawn(async move {
                let ask = serde_json::json!({"action": "evaluate_remote_security"});
                if let Err(e) = relayer.ask(&account, "cloud", ask, EVALUATE_TIMEOUT).await {
                    tracing::info!(%account, error = %e, "evaluate_remote_security not taken");
                }
            });
        }
    }
}
