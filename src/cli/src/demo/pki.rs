//! A throwaway certificate authority and a leaf for the demo host name (rcgen, ECDSA P-256).

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::path::{Path, PathBuf};

/// The demo's CA and leaf, in memory and as PEM files.
pub(crate) struct Pki {
    pub(crate) ca_der: CertificateDer<'static>,
    pub(crate) ca_path: PathBuf,
    pub(crate) leaf_der: CertificateDer<'static>,
    pub(crate) leaf_key: PrivateKeyDer<'static>,
    pub(crate) leaf_path: PathBuf,
    /// The session master's certificate (its own key: the home server's never leaves it).
    pub(crate) master_der: CertificateDer<'static>,
    pub(crate) master_key: PrivateKeyDer<'static>,
}

impl Pki {
    /// A fresh CA, a leaf for `name` and one for `master`, written to `dir` (`ca.pem`,
    /// `leaf.pem`, `leaf.key`, `master.pem`, `master.key`).
    pub(crate) fn new(dir: &Path, name: &str, master: &str) -> anyhow::Result<Self> {
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.distinguished_name
            .push(DnType::CommonName, "Sluice demo CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let ca_cert = ca.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca, ca_key);

        let leaf_for = |name: &str| -> anyhow::Result<(rcgen::Certificate, KeyPair)> {
            let mut leaf = CertificateParams::new(vec![name.to_owned()])?;
            leaf.distinguished_name.push(DnType::CommonName, name);
            leaf.is_ca = IsCa::ExplicitNoCa;
            leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            leaf.use_authority_key_identifier_extension = true;
            let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
            Ok((leaf.signed_by(&key, &issuer)?, key))
        };
        let (leaf_cert, leaf_key) = leaf_for(name)?;
        let (master_cert, master_key) = leaf_for(master)?;

        let write = |file: &str, text: &str| -> anyhow::Result<PathBuf> {
            let path = dir.join(file);
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            Ok(path)
        };
        let ca_path = write("ca.pem", &ca_cert.pem())?;
        let leaf_path = write("leaf.pem", &leaf_cert.pem())?;
        write("leaf.key", &leaf_key.serialize_pem())?;
        write("master.pem", &master_cert.pem())?;
        write("master.key", &master_key.serialize_pem())?;
        Ok(Self {
            ca_der: ca_cert.der().clone(),
            ca_path,
            leaf_der: leaf_cert.der().clone(),
            leaf_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            leaf_path,
            master_der: master_cert.der().clone(),
            master_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(master_key.serialize_der())),
        })
    }
}
