//! TLS for the browsers and the origins: a throwaway certificate, a client that does not verify
//! it (the load generator measures the path, not the PKI), and the ClientHellos of raw mode.
//!
//! ECDSA P-256 and X25519 by default, as `shared/machine.md` §5 advises: a full handshake then
//! costs the origin about 125 µs and leaves the most room on a 2-core machine. `--kx mlkem`
//! makes hellos look like today's browsers' (X25519MLKEM768, about 1.5 KB).

use anyhow::{Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, ServerConfig, SignatureScheme,
};
use std::sync::Arc;

/// Key exchange offered by the browsers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kx {
    /// X25519 only: the cheapest full handshake.
    X25519,
    /// X25519MLKEM768 first, as current browsers send.
    Mlkem,
}

fn provider(kx: Kx) -> Arc<CryptoProvider> {
    let mut p = aws_lc_rs::default_provider();
    p.kx_groups = match kx {
        Kx::X25519 => vec![aws_lc_rs::kx_group::X25519],
        Kx::Mlkem => vec![
            aws_lc_rs::kx_group::X25519MLKEM768,
            aws_lc_rs::kx_group::X25519,
        ],
    };
    Arc::new(p)
}

/// A server configuration with a fresh self-signed certificate for `names`, no session
/// tickets (every handshake is a full one).
pub fn server_config(names: &[String]) -> Result<Arc<ServerConfig>> {
    let ck = rcgen::generate_simple_self_signed(names.to_vec()).context("certificate")?;
    let cert = CertificateDer::from(ck.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let mut config = ServerConfig::builder_with_provider(provider(Kx::Mlkem))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)?;
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    Ok(Arc::new(config))
}

/// A client configuration that accepts any certificate and never resumes.
pub fn client_config(kx: Kx) -> Result<Arc<ClientConfig>> {
    let p = provider(kx);
    let verifier = Arc::new(AnyCert(p.clone()));
    let mut config = ClientConfig::builder_with_provider(p)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// The bytes a real rustls client sends first for `host`: its ClientHello record.
pub fn client_hello(config: &Arc<ClientConfig>, host: &str) -> Result<Vec<u8>> {
    let name = ServerName::try_from(host.to_owned()).context("server name")?;
    let mut conn = ClientConnection::new(config.clone(), name)?;
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out)?;
    }
    Ok(out)
}

#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // The CertificateVerify signature is checked, as a browser would: that is part of the
        // handshake's cost. Only the chain is not.
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
