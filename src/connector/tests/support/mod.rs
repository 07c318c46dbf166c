//! Test support: certificates, tokens, an in-process edge, origins that record what they see,
//! and curl. Everything on 127.0.0.1 with port 0; every wait bounded.

#![allow(dead_code)]

pub mod hostile;
pub mod origin;

use rand::RngCore;
use rand::rngs::OsRng;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sluice_connector::tls::server_config;
use sluice_connector::{Backoff, ConnectorHandle, Credentials, State};
use sluice_edge::{EdgeConfig, EdgeHandle};
use sluice_proto::Hostname;
use sluice_proto::crypto::CipherKind;
use sluice_proto::token::{FernetKey, TokenRequest};
use sluice_proto::version::ProtocolVersion;

pub const HOST: &str = "home.sluice.test";

/// Logs to the test output when `SLUICE_LOG` is set.
pub fn init_logs() {
    if let Ok(filter) = std::env::var("SLUICE_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
}

/// A temporary folder, removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let mut rnd = [0u8; 6];
        OsRng.fill_bytes(&mut rnd);
        let dir = std::env::temp_dir().join(format!("sluice-{tag}-{}", hex::encode(rnd)));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A test CA and the leaves it signs.
pub struct Pki {
    pub dir: TempDir,
    issuer: Issuer<'static, KeyPair>,
    pub ca_der: CertificateDer<'static>,
    pub ca_path: PathBuf,
    leaves: std::sync::atomic::AtomicUsize,
}

/// A leaf certificate.
pub struct Leaf {
    pub der: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

impl Leaf {
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        server_config(vec![self.der.clone()], self.key.clone_key()).unwrap()
    }
}

impl Pki {
    pub fn new() -> Self {
        let dir = TempDir::new("pki");
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name
            .push(DnType::CommonName, "Sluice connector test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = ca.self_signed(&key).unwrap();
        let ca_path = dir.path("ca.pem");
        std::fs::write(&ca_path, cert.pem()).unwrap();
        Self {
            ca_der: cert.der().clone(),
            issuer: Issuer::new(ca, key),
            ca_path,
            dir,
            leaves: Default::default(),
        }
    }

    pub fn leaf(&self, name: &str) -> Leaf {
        let mut p = CertificateParams::new(vec![name.to_owned()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        let n = self
            .leaves
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cert_path = self.dir.path(&format!("leaf{n}.pem"));
        let key_path = self.dir.path(&format!("leaf{n}.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        Leaf {
            der: cert.der().clone(),
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            cert_path,
            key_path,
        }
    }
}

/// Mints credentials for `HOST` valid for `valid_for`.
pub fn mint(
    key: &FernetKey,
    version: ProtocolVersion,
    cipher: CipherKind,
    valid_for: Duration,
) -> Credentials {
    let request = TokenRequest {
        protocol_version: version,
        cipher,
        valid_for,
        ..TokenRequest::new(Hostname::parse(HOST.as_bytes()).unwrap())
    };
    let issued = sluice_proto::token::Issuer::new(std::slice::from_ref(key))
        .unwrap()
        .issue(&request, SystemTime::now(), &mut OsRng)
        .unwrap();
    Credentials::new(issued.token, issued.claims).unwrap()
}

/// An edge on 127.0.0.1 (port 0 unless `addr` is given, for a restart on the same port).
pub fn edge(key: &FernetKey, addr: Option<SocketAddr>) -> EdgeHandle {
    let mut config = EdgeConfig::for_keys(vec![key.clone()]);
    if let Some(addr) = addr {
        config.listen = vec![addr];
    }
    sluice_edge::start(config).expect("edge starts")
}

/// Waits until the edge has registered `n` tunnels in all (bounded: 10 s).
pub async fn registered(edge: &EdgeHandle, n: u64) {
    use std::sync::atomic::Ordering;
    for _ in 0..500 {
        if edge
            .metrics()
            .total(|w| w.tunnels_accepted.load(Ordering::Relaxed))
            >= n
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the edge did not register tunnel {n} within 10 s");
}

/// A TCP echo server counting its connections.
pub struct Echo {
    pub addr: SocketAddr,
    pub accepted: Arc<std::sync::atomic::AtomicUsize>,
    pub closed: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Echo {
    pub async fn start() -> Self {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let closed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (a, c) = (accepted.clone(), closed.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                let c = c.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    c.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Self {
            addr,
            accepted,
            closed,
            task,
        }
    }
}

/// Polls `cond` every 20 ms for at most `secs` seconds.
pub async fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..secs * 50 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

/// Backoff fast enough for tests.
pub fn quick_backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(400),
        stable_after: Duration::from_secs(60),
    }
}

/// Waits until the connector is connected.
pub async fn connected(handle: &ConnectorHandle) {
    if let Err(s) = handle
        .wait_until(Duration::from_secs(20), State::is_connected)
        .await
    {
        panic!("not connected within 20 s: {s:?}");
    }
}

/// What curl got.
pub struct Got {
    pub ok: bool,
    pub status: String,
    pub body: Vec<u8>,
    pub stderr: String,
}

/// A failed download names curl's error and how far it got, not the megabytes it got.
impl std::fmt::Debug for Got {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let head = &self.body[..self.body.len().min(200)];
        f.debug_struct("Got")
            .field("ok", &self.ok)
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .field("body_head", &String::from_utf8_lossy(head))
            .field("stderr", &self.stderr)
            .finish()
    }
}

impl Got {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `curl` for `https://HOST:port{path}` through `127.0.0.1:port`, verifying against `ca`.
pub fn curl(port: u16, path: &str, ca: &Path, extra: &[&str]) -> Got {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60", "-o", "-", "-w", "\n%{http_code}"])
        .arg("--resolve")
        .arg(format!("{HOST}:{port}:127.0.0.1"))
        .arg("--cacert")
        .arg(ca)
        .args(extra)
        .arg(format!("https://{HOST}:{port}{path}"))
        .output()
        .expect("curl runs");
    let mut body = out.stdout;
    let split = body.iter().rposition(|&b| b == b'\n').unwrap_or(0);
    let status = String::from_utf8_lossy(&body[split..]).trim().to_owned();
    body.truncate(split);
    Got {
        ok: out.status.success() && status == "200",
        status,
        body,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs a blocking closure (curl) off the runtime.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// Curls once, off the runtime, and insists on success. (No retries: a retry would hide a
/// stalled transfer. Tests wait for the edge to register the tunnel first.)
pub async fn curl_ok(port: u16, path: &str, ca: &Path, extra: &[&str]) -> Got {
    let (ca, path, extra) = (
        ca.to_owned(),
        path.to_owned(),
        extra.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
    );
    let got = blocking(move || {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        curl(port, &path, &ca, &extra)
    })
    .await;
    assert!(got.ok, "curl failed: {got:?}");
    got
}

/// The pattern `/big/<MiB>` serves: byte `i` is `i % 251`.
pub fn pattern_sha256(len: usize) -> String {
    use sha2::{Digest, Sha256};
    let block: Vec<u8> = (0..251 * 256).map(|i| (i % 251) as u8).collect();
    let mut h = Sha256::new();
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len());
        h.update(&block[..n]);
        left -= n;
    }
    hex::encode(h.finalize())
}

/// A TLS connection to `HOST` through 127.0.0.1:`port`, trusting only `ca`: a browser that
/// writes raw HTTP.
pub async fn tls_client(
    port: u16,
    ca: &CertificateDer<'static>,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(sluice_connector::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let connect = async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let name = rustls::pki_types::ServerName::try_from(HOST).unwrap();
        connector.connect(name, tcp).await
    };
    tokio::time::timeout(Duration::from_secs(20), connect)
        .await
        .expect("TLS through the edge within 20 s")
        .expect("TLS through the edge")
}

/// Reads from `s` until what was read contains `want` (or EOF), within 20 s.
pub async fn read_until<S: tokio::io::AsyncRead + Unpin>(s: &mut S, want: &[u8]) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let read = async {
        let mut chunk = [0u8; 4096];
        while !got.windows(want.len()).any(|w| w == want) {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(20), read).await;
    got
}
