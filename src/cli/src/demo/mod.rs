//! `sluice demo`: an edge, a connector and an HTTPS origin in one process, on loopback.
//!
//! Everything is real: a fresh CA and certificate (rcgen), a Fernet key and a token, the edge
//! (`sluice_edge::start`), the connector (passthrough with a PROXY v2 header), a small
//! HTTPS origin that shows the caller's address, and a session master with a demo account
//! (minting with the edge's key; the demo's own token is still minted locally). It checks the
//! chain itself with one request, then prints `curl` commands and serves until stopped.

mod origin;
mod pki;

use anyhow::{Context, bail};
use clap::Args;
use rand::rngs::OsRng;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use sluice_connector::CredentialsFile;
use sluice_connector::tls::{provider, server_config};
use sluice_connector::{Connector, CredentialSource, Credentials, Fingerprints};
use sluice_edge::EdgeConfig;
use sluice_master::accounts::{AccountError, Lifetimes};
use sluice_master::config::server_tls;
use sluice_master::store::StoreError;
use sluice_master::{Accounts, EdgeAddress, Master, MasterConfig, MasterHandle};
use sluice_proto::Hostname;
use sluice_proto::token::{FernetKey, Issuer, TokenRequest};

use crate::connect::shutdown_signal;

/// The demo's host name (`.test` is reserved: it never resolves, hence `--resolve`).
const NAME: &str = "demo.sluice.test";
/// The demo session master's name.
const MASTER: &str = "master.sluice.test";
/// The demo account.
const DEMO_EMAIL: &str = "demo@sluice.test";

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Address of the demo edge (browsers and the tunnel share it); port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Folder for the CA, certificate and credentials [default: a new folder in the temp dir].
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub(crate) fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if !args.listen.ip().is_loopback() {
        bail!("the demo listens on loopback only");
    }
    let dir = match args.dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("sluice-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let pki = pki::Pki::new(&dir, NAME, MASTER)?;

    // The session master's part: a Fernet key for the edge, a token for the connector.
    let fernet = FernetKey::generate(&mut OsRng);
    let mut request = TokenRequest::new(Hostname::parse(NAME.as_bytes())?);
    request.valid_for = Duration::from_secs(24 * 3600);
    let issued = Issuer::new(std::slice::from_ref(&fernet))?.issue(
        &request,
        SystemTime::now(),
        &mut OsRng,
    )?;
    let creds = Credentials::new(issued.token, issued.claims)?;
    creds.save(&dir.join("credentials.json"))?;

    let mut edge_config = EdgeConfig::for_keys(vec![fernet.clone()]);
    edge_config.listen = vec![args.listen];
    let edge = sluice_edge::start(edge_config).context("the edge did not start")?;
    let edge_addr = edge.listen_addrs()[0];

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        let master = start_master(&pki, fernet, edge_addr, &dir).await?;
        let result = serve(&pki, creds, edge_addr, &dir, master.local_addr()).await;
        master.shutdown().await?;
        result
    });
    drop(rt);
    edge.shutdown();
    result
}

/// A session master on loopback with the demo account (its password in `DIR/demo-password`).
async fn start_master(
    pki: &pki::Pki,
    fernet: FernetKey,
    edge: SocketAddr,
    dir: &std::path::Path,
) -> anyhow::Result<MasterHandle> {
    let state_dir = dir.join("master");
    let accounts = Accounts::open(&state_dir, Lifetimes::default()).await?;
    let password = sluice_master::accounts::random_password();
    match accounts.add(DEMO_EMAIL, &password, "demo").await {
        Ok(_) => std::fs::write(dir.join("demo-password"), format!("{password}\n"))?,
        // A --dir reused from an earlier demo keeps its account and password.
        Err(AccountError::Store(StoreError::AccountExists(_))) => {}
        Err(e) => return Err(e.into()),
    }
    let tls = server_tls(vec![pki.master_der.clone()], pki.master_key.clone_key())?;
    let edge = EdgeAddress {
        host: edge.ip().to_string(),
        port: edge.port(),
    };
    let config = MasterConfig::new(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        tls,
        "sluice.test".parse()?,
        edge,
        vec![fernet],
        state_dir,
    );
    Ok(Master::start_with(config, accounts).await?)
}

async fn serve(
    pki: &pki::Pki,
    creds: Credentials,
    edge: SocketAddr,
    dir: &std::path::Path,
    master: SocketAddr,
) -> anyhow::Result<ExitCode> {
    let origin_tls = server_config(vec![pki.leaf_der.clone()], pki.leaf_key.clone_key())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let origin_addr = listener.local_addr()?;
    tokio::spawn(origin::serve(listener, origin_tls));

    let handle = Connector::builder(edge.to_string(), CredentialSource::Static(Box::new(creds)))
        .passthrough(origin_addr.to_string())
        .proxy_protocol(true)
        .build()?;
    handle
        .wait_until(Duration::from_secs(20), |s| s.is_connected())
        .await
        .map_err(|s| anyhow::anyhow!("the connector did not connect: {}", s.to_json()))?;

    let greeting = self_check(pki, edge).await?;
    let f = Fingerprints::of(&pki.leaf_der);
    let port = edge.port();
    println!("Sluice demo: edge on {edge}, connector connected, HTTPS origin on {origin_addr}");
    println!("files (CA, certificate, credentials): {}", dir.display());
    println!("certificate SHA-256 {}", f.sha256_hex());
    println!(
        "self-check through the edge: {}",
        greeting.lines().next().unwrap_or_default()
    );
    println!();
    println!("Try it:");
    println!(
        "  curl --resolve {NAME}:{port}:127.0.0.1 --cacert {} https://{NAME}:{port}/",
        pki.ca_path.display()
    );
    // The path of this very binary, so the line works before `sluice` is on the PATH.
    let exe = std::env::current_exe().map_or_else(|_| "sluice".into(), |p| p.display().to_string());
    println!(
        "  {exe} verify https://{NAME}:{port} --cert {} --resolve {NAME}:{port}:127.0.0.1",
        pki.leaf_path.display()
    );
    let mport = master.port();
    println!();
    println!(
        "Session master on {master}: account {DEMO_EMAIL}, password in {}",
        dir.join("demo-password").display()
    );
    println!(
        "  curl --resolve {MASTER}:{mport}:127.0.0.1 --cacert {} https://{MASTER}:{mport}/.well-known/service-discovery",
        pki.ca_path.display()
    );
    println!(
        "  {exe} master token {DEMO_EMAIL} --state-dir {}",
        dir.join("master").display()
    );
    println!();
    println!("Serving until Ctrl-C.");
    tokio::select! {
        _ = shutdown_signal() => {}
        r = handle.wait() => r?,
    }
    handle.shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(5), handle.wait()).await;
    if dir.starts_with(std::env::temp_dir()) {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(ExitCode::SUCCESS)
}

/// One request through the edge, verifying the certificate against the demo CA; returns the
/// body. The edge registers the tunnel just after the connector reports it up, so this
/// retries a few times.
async fn self_check(pki: &pki::Pki, edge: SocketAddr) -> anyhow::Result<String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der.clone())?;
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut last = None;
    for _ in 0..20 {
        let attempt = async {
            let tcp = tokio::net::TcpStream::connect(edge).await?;
            let name = rustls::pki_types::ServerName::try_from(NAME)?;
            let mut tls = connector.connect(name, tcp).await?;
            tls.write_all(format!("GET / HTTP/1.1\r\nHost: {NAME}\r\n\r\n").as_bytes())
                .await?;
            // tokio-rustls may hold the request in its buffer until flushed.
            tls.flush().await?;
            let mut reply = Vec::new();
            tls.read_to_end(&mut reply).await?;
            let text = String::from_utf8_lossy(&reply).into_owned();
            let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
            if !head.starts_with("HTTP/1.1 200") {
                bail!("unexpected answer: {head}");
            }
            Ok(body.to_owned())
        };
        match tokio::time::timeout(Duration::from_secs(5), attempt).await {
            Ok(Ok(body)) => return Ok(body),
            Ok(Err(e)) => last = Some(e),
            Err(_) => last = Some(anyhow::anyhow!("timed out")),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last
        .unwrap_or_else(|| anyhow::anyhow!("no attempt"))
        .context("self-check through the edge failed"))
}
