//! Credentials files and sources: where the connector gets the credentials document
//! ([`Credentials`], in `sluice_proto::token`) each time it connects and before they expire.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;

pub use sluice_proto::token::{Credentials, CredentialsError};

use crate::Error;

/// Longest credentials document read from a file or a command.
const MAX_CREDENTIALS_LEN: usize = 64 * 1024;
/// How long a credentials command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Reading and writing credentials files (the document itself is
/// [`sluice_proto::token::Credentials`]).
pub trait CredentialsFile: Sized {
    /// Reads a credentials file.
    fn load(path: &Path) -> Result<Self, Error>;
    /// Writes a credentials file, readable by its owner only (it holds the tunnel's key). The
    /// file is replaced atomically, so a connector re-reading it never sees half of it.
    fn save(&self, path: &Path) -> Result<(), Error>;
}

impl CredentialsFile for Credentials {
    fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Credentials(format!("cannot read {}: {e}", path.display())))?;
        Self::from_json(&text)
            .map_err(|e| Error::Credentials(format!("{}: {}", path.display(), strip(&e))))
    }

    fn save(&self, path: &Path) -> Result<(), Error> {
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
}

impl From<CredentialsError> for Error {
    fn from(e: CredentialsError) -> Self {
        Error::Credentials(e.0)
    }
}

fn strip(e: &CredentialsError) -> String {
    e.0.clone()
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
