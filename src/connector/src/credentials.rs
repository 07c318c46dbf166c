//! The credentials file: a token and what the connector must know that the token hides.
//!
//! The token is sealed with the edge's Fernet key, so the connector cannot read it; a session
//! master (here `sluice token issue`) hands the AES key, IV, host names, protocol version,
//! cipher and expiry alongside it, as Nabu Casa's API does for Home Assistant. One JSON file:
//!
//! ```json
//! {"token": "gAAAAA...", "aes_key": "<64 hex>", "aes_iv": "<32 hex>",
//!  "hostname": "home.example.net", "alias": ["ha.example.org"],
//!  "protocol_version": 0, "cipher": "aes-cbc", "valid": 1767225600.0}
//! ```
//!
//! `alias`, `protocol_version` and `cipher` may be left out (none, 0, `aes-cbc`).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};
use tokio::io::AsyncReadExt;

use sluice_proto::Hostname;
use sluice_proto::crypto::{CipherKind, IV_LEN, KEY_LEN};
use sluice_proto::limits::MAX_TOKEN_LEN;
use sluice_proto::token::TokenClaims;
use sluice_proto::version::ProtocolVersion;

use crate::Error;

/// Longest credentials document read from a file or a command.
const MAX_CREDENTIALS_LEN: usize = 64 * 1024;
/// How long a credentials command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// A token with its key material: everything needed to open one tunnel.
#[derive(Clone, PartialEq)]
pub struct Credentials {
    token: String,
    claims: TokenClaims,
}

#[derive(Serialize, Deserialize)]
struct Raw {
    token: String,
    aes_key: String,
    aes_iv: String,
    hostname: String,
    #[serde(default)]
    alias: Vec<String>,
    #[serde(default)]
    protocol_version: u64,
    #[serde(default = "default_cipher")]
    cipher: String,
    valid: f64,
}

fn default_cipher() -> String {
    CipherKind::AesCbc.name().to_owned()
}

impl Credentials {
    /// Pairs a minted token with the claims it was minted from.
    pub fn new(token: String, claims: TokenClaims) -> Result<Self, Error> {
        let bad = |why: &str| Err(Error::Credentials(why.to_owned()));
        if !token.starts_with("gA") || token.len() > MAX_TOKEN_LEN {
            return bad("the token is not a Fernet token (it must start with \"gA\")");
        }
        if !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'='))
        {
            return bad("the token is not urlsafe base64");
        }
        if !claims.valid.is_finite() {
            return bad("`valid` is not a finite number");
        }
        Ok(Self { token, claims })
    }

    /// Parses the JSON document.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        let raw: Raw = serde_json::from_str(text)
            .map_err(|e| Error::Credentials(format!("not a credentials document: {e}")))?;
        let name = |n: &str| {
            Hostname::parse(n.as_bytes())
                .map_err(|e| Error::Credentials(format!("host name {n:?}: {e}")))
        };
        let claims = TokenClaims {
            valid: raw.valid,
            hostname: name(&raw.hostname)?,
            aliases: raw
                .alias
                .iter()
                .map(|a| name(a))
                .collect::<Result<_, _>>()?,
            aes_key: hex_array::<KEY_LEN>(&raw.aes_key, "aes_key")?,
            aes_iv: hex_array::<IV_LEN>(&raw.aes_iv, "aes_iv")?,
            protocol_version: ProtocolVersion::from_number(raw.protocol_version).ok_or_else(
                || {
                    Error::Credentials(format!(
                        "protocol_version {} is not 0, 1 or 2",
                        raw.protocol_version
                    ))
                },
            )?,
            cipher: CipherKind::from_name(&raw.cipher).ok_or_else(|| {
                Error::Credentials(format!(
                    "cipher {:?} is not aes-cbc, aes-gcm or aes-gcm-siv",
                    raw.cipher
                ))
            })?,
        };
        Self::new(raw.token.trim().to_owned(), claims)
    }

    /// The JSON document (pretty-printed, with a trailing newline).
    pub fn to_json(&self) -> String {
        let c = &self.claims;
        let raw = Raw {
            token: self.token.clone(),
            aes_key: hex::encode(c.aes_key),
            aes_iv: hex::encode(c.aes_iv),
            hostname: c.hostname.as_str().to_owned(),
            alias: c.aliases.iter().map(|a| a.as_str().to_owned()).collect(),
            protocol_version: c.protocol_version.number().into(),
            cipher: c.cipher.name().to_owned(),
            valid: c.valid,
        };
        // Serializing plain strings and numbers cannot fail.
        let mut text = serde_json::to_string_pretty(&raw).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Reads a credentials file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Credentials(format!("cannot read {}: {e}", path.display())))?;
        Self::from_json(&text)
            .map_err(|e| Error::Credentials(format!("{}: {}", path.display(), strip(&e))))
    }

    /// Writes a credentials file, readable by its owner only (it holds the tunnel's key). The
    /// file is replaced atomically, so a connector re-reading it never sees half of it.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        use std::io::Write;
        let fail =
            |e: std::io::Error| Error::Credentials(format!("cannot write {}: {e}", path.display()));
        let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
        tmp_name.push(format!(".tmp{}", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options.open(&tmp).and_then(|mut file| {
            file.write_all(self.to_json().as_bytes())?;
            file.sync_all()
        });
        match written.and_then(|()| std::fs::rename(&tmp, path)) {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(fail(e))
            }
        }
    }

    /// The token, exactly as it is sent to the edge.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// What the token grants: host names, key, IV, version, cipher, expiry.
    pub fn claims(&self) -> &TokenClaims {
        &self.claims
    }

    /// The primary host name.
    pub fn hostname(&self) -> &Hostname {
        &self.claims.hostname
    }

    /// When the token expires.
    pub fn expires_at(&self) -> SystemTime {
        self.claims.expires_at()
    }

    /// Time left before the token expires (zero once it has).
    pub fn remaining(&self, now: SystemTime) -> Duration {
        self.expires_at()
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token and the key are secrets; TokenClaims' Debug already hides the key.
        f.debug_struct("Credentials")
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}

fn strip(e: &Error) -> String {
    match e {
        Error::Credentials(s) => s.clone(),
        other => other.to_string(),
    }
}

fn hex_array<const N: usize>(text: &str, field: &str) -> Result<[u8; N], Error> {
    let bytes = hex::decode(text.trim())
        .map_err(|_| Error::Credentials(format!("`{field}` is not hex")))?;
    let len = bytes.len();
    bytes
        .try_into()
        .map_err(|_| Error::Credentials(format!("`{field}` is {len} bytes, expected {N}")))
}

/// Where the connector gets its credentials, each time it connects and before they expire.
#[derive(Debug, Clone)]
pub enum CredentialSource {
    /// Fixed credentials: they cannot be refreshed, so the tunnel ends when the token does.
    Static(Box<Credentials>),
    /// A file, re-read before each connection and when the token nears its expiry (whatever
    /// renews it, a cron job or a session master, just rewrites the file).
    File(PathBuf),
    /// A program and its arguments, run before each connection and when the token nears its
    /// expiry; it prints a credentials document on stdout and exits 0.
    Command(Vec<String>),
}

impl CredentialSource {
    /// Fetches the current credentials.
    pub async fn fetch(&self) -> Result<Credentials, Error> {
        match self {
            Self::Static(c) => Ok((**c).clone()),
            Self::File(path) => {
                let text = tokio::fs::read(path).await.map_err(|e| {
                    Error::Credentials(format!("cannot read {}: {e}", path.display()))
                })?;
                if text.len() > MAX_CREDENTIALS_LEN {
                    return Err(Error::Credentials(format!(
                        "{} is larger than {MAX_CREDENTIALS_LEN} bytes",
                        path.display()
                    )));
                }
                let text = String::from_utf8_lossy(&text);
                Credentials::from_json(&text)
                    .map_err(|e| Error::Credentials(format!("{}: {}", path.display(), strip(&e))))
            }
            Self::Command(argv) => run_command(argv).await,
        }
    }

    /// Whether fetching again can give other credentials.
    pub fn can_refresh(&self) -> bool {
        !matches!(self, Self::Static(_))
    }
}

async fn run_command(argv: &[String]) -> Result<Credentials, Error> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| Error::Config("the credentials command is empty".into()))?;
    let fail = |why: String| Error::Credentials(format!("credentials command {program:?}: {why}"));
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| fail("no stdout".into()))?;
    let run = async {
        let mut out = Vec::new();
        (&mut stdout)
            .take(MAX_CREDENTIALS_LEN as u64 + 1)
            .read_to_end(&mut out)
            .await?;
        let status = child.wait().await?;
        Ok::<_, std::io::Error>((out, status))
    };
    let (out, status) = tokio::time::timeout(COMMAND_TIMEOUT, run)
        .await
        .map_err(|_| fail(format!("did not finish within {COMMAND_TIMEOUT:?}")))?
        .map_err(|e| fail(e.to_string()))?;
    if !status.success() {
        return Err(fail(format!("exited with {status}")));
    }
    if out.len() > MAX_CREDENTIALS_LEN {
        return Err(fail(format!(
            "printed more than {MAX_CREDENTIALS_LEN} bytes"
        )));
    }
    Credentials::from_json(&String::from_utf8_lossy(&out)).map_err(|e| fail(strip(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{"token": "gAAAAABlU_EA8PHy", "aes_key": "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f",
        "aes_iv": "404142434445464748494a4b4c4d4e4f", "hostname": "A.Example.Test", "valid": 4102444800.0}"#;

    #[test]
    fn reads_the_minimal_document_with_snitun_defaults() {
        let c = Credentials::from_json(DOC).unwrap();
        assert_eq!(c.hostname().as_str(), "a.example.test");
        assert_eq!(c.claims().protocol_version, ProtocolVersion::V0);
        assert_eq!(c.claims().cipher, CipherKind::AesCbc);
        assert!(c.claims().aliases.is_empty());
        assert_eq!(c.claims().aes_iv[0], 0x40);
        assert!(!format!("{c:?}").contains("gAAAA"), "Debug hides the token");
    }

    #[test]
    fn round_trips() {
        let mut c = Credentials::from_json(DOC).unwrap();
        c.claims.aliases = vec![Hostname::parse(b"b.example.test").unwrap()];
        c.claims.protocol_version = ProtocolVersion::V2;
        c.claims.cipher = CipherKind::AesGcmSiv;
        let back = Credentials::from_json(&c.to_json()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn refuses_what_would_break_the_tunnel() {
        let cases = [
            (DOC.replace("\"gAAAAABlU_EA8PHy\"", "\"hello\""), "Fernet"),
            (DOC.replace("3e3f\"", "3e\""), "31 bytes"),
            (DOC.replace("4e4f\"", "4e4g\""), "not hex"),
            (
                DOC.replace("\"valid\"", "\"cipher\": \"rot13\", \"valid\""),
                "rot13",
            ),
            (
                DOC.replace("\"valid\"", "\"protocol_version\": 3, \"valid\""),
                "not 0, 1 or 2",
            ),
            (DOC.replace("A.Example.Test", "10.0.0.1"), "host name"),
            (DOC.replace(", \"valid\": 4102444800.0", ""), "valid"),
        ];
        for (doc, why) in cases {
            let e = Credentials::from_json(&doc).unwrap_err().to_string();
            assert!(e.contains(why), "{e} should mention {why}");
        }
    }

    #[tokio::test]
    async fn fetches_from_a_command_and_reports_its_failures() {
        let echo = CredentialSource::Command(vec![
            "sh".into(),
            "-c".into(),
            format!("printf '%s' '{DOC}'"),
        ]);
        assert_eq!(
            echo.fetch().await.unwrap().hostname().as_str(),
            "a.example.test"
        );
        let fails = CredentialSource::Command(vec!["sh".into(), "-c".into(), "exit 3".into()]);
        assert!(
            fails
                .fetch()
                .await
                .unwrap_err()
                .to_string()
                .contains("exit")
        );
        let missing = CredentialSource::File("/nonexistent/creds.json".into());
        assert!(matches!(missing.fetch().await, Err(Error::Credentials(_))));
    }
}
