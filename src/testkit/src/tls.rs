//! A throwaway certificate authority and leaf certificates for the TLS origin.
//!
//! All keys are ECDSA P-256. The CA is `CA:TRUE` with `keyCertSign`; each leaf is
//! `basicConstraints CA:FALSE`, `extendedKeyUsage=serverAuth`, `keyUsage=digitalSignature`,
//! with its DNS names as SANs (and the first as CN), signed by the CA. PEM files go to a run
//! folder, so that curl can be pointed at them (`--cacert`).
//!
//! ```
//! let ca = sluice_testkit::TestCa::new().unwrap();
//! let leaf = ca.leaf(&["a.example.test", "b.example.test"]).unwrap();
//! assert!(ca.ca_pem_path().is_file() && leaf.cert_path.is_file() && leaf.key_path.is_file());
//! let _server = leaf.server_config().unwrap(); // a rustls::ServerConfig for an origin
//! let _client = ca.client_config().unwrap(); // a rustls::ClientConfig that trusts only this CA
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedKey, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::{Error, Result};
use crate::rundir::{RunDir, write_file};

/// The rustls crypto provider this crate uses, named explicitly so that a workspace that also
/// enables rustls's `ring` feature cannot make the process-wide default ambiguous.
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn rcgen_err(what: &str) -> impl FnOnce(rcgen::Error) -> Error + '_ {
    move |e| Error::Other(format!("{what}: {e}"))
}

fn tls_err(what: &str) -> impl FnOnce(rustls::Error) -> Error + '_ {
    move |e| Error::Other(format!("{what}: {e}"))
}

/// A certificate authority for one test (or one test binary).
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    ca_der: CertificateDer<'static>,
    ca_pem: String,
    ca_pem_path: PathBuf,
    leaves: AtomicUsize,
    dir: RunDir,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa")
            .field("ca_pem_path", &self.ca_pem_path)
            .finish_non_exhaustive()
    }
}

impl TestCa {
    /// A fresh CA (`CN=Sluice test CA`), its PEM written to [`Self::ca_pem_path`].
    pub fn new() -> Result<Self> {
        let dir = RunDir::new("sluice-test-ca-")?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(rcgen_err("CA parameters"))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "Sluice test CA");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "sluice-testkit");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rcgen_err("CA key"))?;
        let cert = params
            .self_signed(&key)
            .map_err(rcgen_err("signing the CA"))?;
        let ca_pem = cert.pem();
        let ca_pem_path = dir.path().join("ca.pem");
        write_file(&ca_pem_path, &ca_pem)?;
        Ok(Self {
            issuer: Issuer::new(params, key),
            ca_der: cert.der().clone(),
            ca_pem,
            ca_pem_path,
            leaves: AtomicUsize::new(0),
            dir,
        })
    }

    /// The CA certificate as a PEM file (for `curl --cacert`).
    pub fn ca_pem_path(&self) -> &Path {
        &self.ca_pem_path
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA certificate, DER.
    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    /// The folder holding the PEM files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A leaf certificate for `names` (DNS SANs; the first is also the CN), with its
    /// certificate and key written as PEM files.
    pub fn leaf(&self, names: &[&str]) -> Result<Leaf> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params =
            CertificateParams::new(names.clone()).map_err(rcgen_err("leaf parameters"))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(first) = names.first() {
            params
                .distinguished_name
                .push(DnType::CommonName, first.as_str());
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rcgen_err("leaf key"))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(rcgen_err("signing the leaf"))?;
        let n = self.leaves.fetch_add(1, Ordering::Relaxed);
        let stem = names.first().map_or("leaf", String::as_str);
        let cert_path = self.dir.path().join(format!("leaf{n}-{stem}.pem"));
        let key_path = self.dir.path().join(format!("leaf{n}-{stem}.key"));
        write_file(&cert_path, &cert.pem())?;
        write_file(&key_path, &key.serialize_pem())?;
        Ok(Leaf {
            names,
            cert_path,
            key_path,
            certified: CertifiedKey {
                cert,
                signing_key: key,
            },
        })
    }

    /// A rustls client config (HTTP/1.1 ALPN) that trusts this CA only.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.ca_der.clone())
            .map_err(tls_err("adding the CA to a root store"))?;
        let mut config = rustls::ClientConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_err("TLS versions"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl TestCa {
    /// A TLS connection to `addr` for the name `host`, trusting only this CA: a browser that
    /// writes raw HTTP. Connecting and the handshake together get `timeout`.
    pub async fn connect(
        &self,
        addr: std::net::SocketAddr,
        host: &str,
        timeout: std::time::Duration,
    ) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        let name = rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| Error::Other(format!("{host:?} is not a server name: {e}")))?;
        let connector = tokio_rustls::TlsConnector::from(self.client_config()?);
        let connect = async {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            connector.connect(name, tcp).await
        };
        match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(tls)) => Ok(tls),
            Ok(Err(e)) => Err(Error::io(format!("TLS to {host} at {addr}"), e)),
            Err(_) => Err(Error::Timeout {
                what: format!("TLS to {host} at {addr}"),
                after: timeout,
                log: None,
                log_tail: String::new(),
            }),
        }
    }
}

/// A leaf certificate with its key, in memory and as PEM files.
pub struct Leaf {
    /// The DNS names it is valid for.
    pub names: Vec<String>,
    /// The certificate, PEM (the leaf alone; curl only needs the CA).
    pub cert_path: PathBuf,
    /// The private key, PKCS#8 PEM.
    pub key_path: PathBuf,
    /// The certificate and its key, as rcgen made them.
    pub certified: CertifiedKey<KeyPair>,
}

impl std::fmt::Debug for Leaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leaf")
            .field("names", &self.names)
            .field("cert_path", &self.cert_path)
            .finish_non_exhaustive()
    }
}

impl Leaf {
    /// The certificate, DER.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.certified.cert.der().clone()
    }

    /// The private key, DER (PKCS#8).
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            self.certified.signing_key.serialize_der(),
        ))
    }

    /// A rustls server config presenting this leaf, with HTTP/1.1 ALPN.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        server_config(self.cert_der(), self.key_der())
    }
}

/// A rustls server config (HTTP/1.1 ALPN) from a leaf's PEM files ([`Leaf::cert_path`],
/// [`Leaf::key_path`]), for a child process that serves a leaf its parent made.
pub fn server_config_from_files(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject as _;
    let pem_err = |path: &Path| {
        let path = path.display().to_string();
        move |e: rustls::pki_types::pem::Error| Error::Other(format!("reading {path}: {e}"))
    };
    let cert_der = CertificateDer::from_pem_file(cert).map_err(pem_err(cert))?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(pem_err(key))?;
    server_config(cert_der, key_der)
}

fn server_config(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>> {
    let mut config = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_err("TLS versions"))?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(tls_err("loading the leaf into rustls"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
