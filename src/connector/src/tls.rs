//! Certificates: loading PEM files, the terminate-mode TLS config, fingerprints, and the probe
//! behind `sluice verify` (what certificate does the public address present?).

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;

use crate::Error;

/// The crypto provider every TLS object here uses, named explicitly so that a process that
/// links another provider too cannot make rustls' process-wide default ambiguous.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// SHA-256 and SHA-1 of a certificate's DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprints {
    /// SHA-256 of the DER certificate.
    pub sha256: [u8; 32],
    /// SHA-1 of the DER certificate (what Home Assistant shows as the Remote UI fingerprint).
    pub sha1: [u8; 20],
}

impl Fingerprints {
    /// Fingerprints of a DER certificate.
    pub fn of(der: &[u8]) -> Self {
        Self {
            sha256: Sha256::digest(der).into(),
            sha1: Sha1::digest(der).into(),
        }
    }

    /// SHA-256 as lowercase hex without separators.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }

    /// SHA-1 as lowercase hex without separators, as Home Assistant shows it.
    pub fn sha1_hex(&self) -> String {
        hex::encode(self.sha1)
    }
}

impl fmt::Debug for Fingerprints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{} sha1:{}", self.sha256_hex(), self.sha1_hex())
    }
}

/// Reads a PEM file of certificates, leaf first.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            Error::Config(format!(
                "cannot read certificates from {}: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "{} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// Reads a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        Error::Config(format!(
            "cannot read a private key from {}: {e}",
            path.display()
        ))
    })
}

/// The TLS configuration of terminate mode: the chain and key, HTTP/1.1 only (the connector
/// rewrites HTTP/1 request heads to add the caller's address).
pub fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| Error::Config(format!("certificate and key do not make a TLS server: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Connects to `addr` as a TLS client asking for `name`, completes the handshake (which proves
/// the server holds the key of the certificate it shows), and returns the chain it presented.
/// Nothing is trusted or refused on the way: the caller compares.
pub async fn peer_certificates(
    addr: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<Vec<CertificateDer<'static>>, Error> {
    let provider = provider();
    let recorder = Arc::new(Recorder {
        seen: Mutex::new(Vec::new()),
        schemes: provider.signature_verification_algorithms,
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    let server_name = ServerName::try_from(name.to_owned())
        .map_err(|_| Error::Config(format!("{name:?} is not a valid TLS server name")))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let handshake = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| Error::Connect(format!("{addr}: {e}")))?;
        connector
            .connect(server_name, tcp)
            .await
            .map_err(|e| Error::Connect(format!("TLS handshake with {addr}: {e}")))
    };
    let _tls = tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| Error::Connect(format!("{addr}: no TLS handshake within {timeout:?}")))??;
    let seen = recorder.seen.lock().map(|s| s.clone()).unwrap_or_default();
    if seen.is_empty() {
        return Err(Error::Connect(format!("{addr} presented no certificate")));
    }
    Ok(seen)
}

/// A verifier that trusts nothing and refuses nothing: it records the chain, and checks only
/// the handshake signatures, so the peer must hold the presented certificate's key.
#[derive(Debug)]
struct Recorder {
    seen: Mutex<Vec<CertificateDer<'static>>>,
    schemes: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut seen) = self.seen.lock() {
            *seen = std::iter::once(end_entity)
                .chain(intermediates)
                .map(|c| c.clone().into_owned())
                .collect();
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.schemes)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.schemes)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_lowercase_hex() {
        let f = Fingerprints::of(b"abc");
        assert_eq!(
            f.sha256_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(f.sha1_hex(), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }
}
